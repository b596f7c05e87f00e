"""SnapshotWriter: one snapshot = one transaction, all of it or none of it; pruning keeps candles."""

from __future__ import annotations

import math
from dataclasses import replace
from types import MappingProxyType

import pytest

import ubot.models.store as store_module
from ubot.market.candles import CandleBook
from ubot.market.snapshot import GLOBAL_FIELDS, NUMERIC_FIELDS, Snapshot
from ubot.models.candle_store import CandleStore
from ubot.models.store import SnapshotWriter
from ubot.models.tables import Candle, Coin, GlobalMetric, Quote, SnapshotRecord

HOUR = 3_600_000
GLOBAL_VALUES = {
    "btc_dominance": 54.5,
    "eth_dominance": 17.25,
    "active_cryptocurrencies": 9915,
    "total_cryptocurrencies": 31735,
    "active_market_pairs": 86748,
    "active_exchanges": 751,
    "total_exchanges": 9394,
    "total_market_cap": 2.1e12,
    "total_volume_24h": 8.5e10,
    "altcoin_market_cap": 9.5e11,
    "altcoin_volume_24h": 6.0e10,
    "defi_market_cap": None,
    "defi_volume_24h": 3.0e9,
    "stablecoin_market_cap": 1.6e11,
    "stablecoin_volume_24h": 7.0e10,
    "derivatives_volume_24h": 3.5e11,
}


def counts() -> dict[str, int]:
    return {
        "coins": Coin.select().count(),
        "snapshots": SnapshotRecord.select().count(),
        "quotes": Quote.select().count(),
        "globals": GlobalMetric.select().count(),
    }


def quote_rows(snapshot_id: int) -> dict[int, dict]:
    rows = Quote.select().where(Quote.snapshot == snapshot_id).dicts()
    return {row["coin"]: row for row in rows}


def coin_rows() -> dict[int, tuple]:
    return {c.id: (c.symbol, c.name, c.slug, c.first_seen) for c in Coin.select()}


def with_price(snap: Snapshot, index: int, price: float) -> Snapshot:
    """``snap`` with one coin's price replaced (the parser never lets a null price through)."""
    columns = dict(snap.columns)
    prices = columns["price"].copy()
    prices[index] = price
    columns["price"] = prices
    return replace(snap, columns=MappingProxyType(columns))


def test_a_snapshot_lands_completely(db, cmc) -> None:
    ts = cmc.T0
    snap = cmc.snapshot(
        ts,
        [
            cmc.coin(1, 64000.5, symbol="BTC", name="Bitcoin", volume_24h=3.5e10, market_cap=1.26e12),
            cmc.coin(1027, 3100.25, symbol="ETH", name="Ethereum", ts=ts - 7000, volume_24h=None),
            cmc.coin(5, 0.5, symbol="tBTC", name="tBTC", cmc_rank=None, num_market_pairs=None),
        ],
        GLOBAL_VALUES,
    )

    snapshot_id = SnapshotWriter(db).write(snap, "simulated")

    assert snapshot_id is not None
    record = SnapshotRecord.get_by_id(snapshot_id)
    assert (record.timestamp, record.source, record.convert, record.coin_count) == (ts, "simulated", "USD", 3)
    assert coin_rows() == {
        1: ("BTC", "Bitcoin", "bitcoin", ts),
        1027: ("ETH", "Ethereum", "ethereum", ts),
        5: ("tBTC", "tBTC", "tbtc", ts),
    }
    quotes = quote_rows(snapshot_id)
    assert sorted(quotes) == [1, 5, 1027]
    for index, coin_id in enumerate(snap.ids.tolist()):
        row = quotes[coin_id]
        assert row["ts"] == snap.quote_ts_ms[index]
        for name in NUMERIC_FIELDS:
            expected = float(snap.column(name)[index])
            assert row[name] == (None if math.isnan(expected) else expected), (coin_id, name)
    assert quotes[1027]["ts"] == ts - 7000
    assert quotes[1027]["volume_24h"] is None
    assert quotes[5]["rank"] is None and quotes[5]["num_market_pairs"] is None
    assert quotes[1]["rank"] == 1 and quotes[1]["price"] == 64000.5 and quotes[1]["market_cap"] == 1.26e12
    metric = GlobalMetric.select().where(GlobalMetric.snapshot == snapshot_id).dicts().get()
    assert metric["ts"] == ts
    assert {name: metric[name] for name in GLOBAL_FIELDS} == GLOBAL_VALUES


def test_a_snapshot_without_global_metrics_writes_no_global_row(db, cmc) -> None:
    snapshot_id = SnapshotWriter(db).write(cmc.snapshot(cmc.T0, [cmc.coin(1, 1.0)]), "replay")

    assert snapshot_id is not None
    assert counts() == {"coins": 1, "snapshots": 1, "quotes": 1, "globals": 0}


def test_a_duplicate_timestamp_returns_none_and_writes_nothing(db, cmc) -> None:
    writer = SnapshotWriter(db)
    writer.write(cmc.snapshot(cmc.T0, [cmc.coin(1, 1.0, name="Old")], GLOBAL_VALUES), "replay")
    before, coins_before = counts(), coin_rows()

    again = cmc.snapshot(
        cmc.T0, [cmc.coin(1, 2.0, name="Renamed"), cmc.coin(2, 3.0)], {**GLOBAL_VALUES, "btc_dominance": 1.0}
    )
    assert writer.write(again, "replay") is None
    assert SnapshotWriter(db).write(again, "replay") is None  # a fresh writer (after a restart) too

    assert counts() == before
    assert coin_rows() == coins_before
    assert [q.price for q in Quote.select()] == [1.0]


@pytest.mark.parametrize("failure", ["quote violates NOT NULL", "global metrics insert fails"])
def test_a_failed_write_leaves_nothing_and_does_not_poison_the_coin_cache(
    db, cmc, monkeypatch, failure
) -> None:
    writer = SnapshotWriter(db)
    first_id = writer.write(cmc.snapshot(cmc.T0, [cmc.coin(1, 10.0, name="Old")]), "replay")
    before, coins_before = counts(), coin_rows()

    # Coin 1 renamed, coin 2 new: both would be written before the failing row.
    items = [cmc.coin(1, 11.0, name="New"), cmc.coin(2, 20.0), cmc.coin(3, 30.0)]
    bad = cmc.snapshot(cmc.T0 + 60_000, items, GLOBAL_VALUES)
    if failure == "quote violates NOT NULL":
        bad = with_price(bad, 2, math.nan)  # the last quote row: earlier ones are already sent
        # bulk.insert_rows talks to the driver directly: its own IntegrityError, not peewee's.
        expected = r"NOT NULL constraint failed: quote\.price|null value in column \"price\""
    else:
        real_insert = store_module.insert_rows

        def insert_rows(model, *args, **kwargs):
            if model is GlobalMetric:
                raise RuntimeError("disk full")
            return real_insert(model, *args, **kwargs)

        monkeypatch.setattr(store_module, "insert_rows", insert_rows)
        expected = "disk full"
    with pytest.raises(Exception, match=expected):
        writer.write(bad, "replay")
    monkeypatch.undo()

    assert counts() == before
    assert coin_rows() == coins_before
    assert SnapshotRecord.get_or_none(SnapshotRecord.timestamp == bad.timestamp_ms) is None

    # The same writer (same cache) must still write the rename and the new coins.
    good = cmc.snapshot(cmc.T0 + 60_000, items, GLOBAL_VALUES)
    good_id = writer.write(good, "replay")
    assert good_id is not None and good_id != first_id
    assert coin_rows() == {
        1: ("C1", "New", "new", cmc.T0),
        2: ("C2", "Coin 2", "coin-2", cmc.T0 + 60_000),
        3: ("C3", "Coin 3", "coin-3", cmc.T0 + 60_000),
    }
    assert {c: q["price"] for c, q in quote_rows(good_id).items()} == {1: 11.0, 2: 20.0, 3: 30.0}
    assert counts() == {"coins": 3, "snapshots": 2, "quotes": 4, "globals": 1}


def test_a_renamed_coin_updates_its_row_and_keeps_first_seen(db, cmc) -> None:
    writer = SnapshotWriter(db)
    writer.write(cmc.snapshot(cmc.T0, [cmc.coin(7, 1.0, symbol="OLD", name="Old Coin")]), "replay")
    writer.write(cmc.snapshot(cmc.T0 + 60_000, [cmc.coin(7, 1.0, symbol="NEW", name="New Coin")]), "replay")
    assert coin_rows() == {7: ("NEW", "New Coin", "new-coin", cmc.T0)}

    # A writer started later (its cache loaded from the database) sees a rename too.
    later = cmc.snapshot(cmc.T0 + 120_000, [cmc.coin(7, 1.0, symbol="NEW", name="Renamed")])
    SnapshotWriter(db).write(later, "replay")
    assert coin_rows() == {7: ("NEW", "Renamed", "renamed", cmc.T0)}


def test_coins_in_another_order_are_not_new_and_a_rename_among_them_is_written(db, cmc) -> None:
    writer = SnapshotWriter(db)
    coins = [(1, "BTC", "Bitcoin"), (2, "ETH", "Ethereum"), (3, "XRP", "XRP")]
    writer.write(cmc.snapshot(cmc.T0, [cmc.coin(i, 1.0, symbol=s, name=n) for i, s, n in coins]), "replay")
    before = coin_rows()

    moved = [coins[2], coins[0], coins[1]]  # ranks moved: the same coins, another order
    writer.write(
        cmc.snapshot(cmc.T0 + 60_000, [cmc.coin(i, 2.0, symbol=s, name=n) for i, s, n in moved]), "replay"
    )
    assert coin_rows() == before

    renamed = [coins[1], (3, "XRP", "Ripple"), coins[0]]
    writer.write(
        cmc.snapshot(cmc.T0 + 120_000, [cmc.coin(i, 3.0, symbol=s, name=n) for i, s, n in renamed]), "replay"
    )
    assert coin_rows() == {**before, 3: ("XRP", "Ripple", "ripple", cmc.T0)}


def test_prune_removes_old_raw_history_and_keeps_candles_and_newer_data(db, cmc) -> None:
    writer, candles, book = SnapshotWriter(db), CandleStore(db), CandleBook(["1m", "5m"])
    stamps = [cmc.T0, cmc.T0 + HOUR, cmc.T0 + 2 * HOUR]
    ids = []
    for n, ts in enumerate(stamps):
        snap = cmc.snapshot(ts, [cmc.coin(1, 100.0 + n), cmc.coin(2, 5.0 + n)], GLOBAL_VALUES)
        ids.append(writer.write(snap, "replay"))
        candles.save(book, book.apply(snap.ids, snap.quote_ts_ms, snap.column("price")), ids[-1])
    candle_rows = sorted(Candle.select().tuples())

    pruned = writer.prune(older_than_ms=cmc.T0 + HOUR)  # strictly older: the second one stays

    assert pruned == 1
    assert [r.id for r in SnapshotRecord.select().order_by(SnapshotRecord.id)] == ids[1:]
    assert sorted({q.snapshot_id for q in Quote.select()}) == ids[1:]
    assert sorted(g.snapshot_id for g in GlobalMetric.select()) == ids[1:]
    assert Quote.select().count() == 4
    assert sorted(Candle.select().tuples()) == candle_rows
    assert Coin.select().count() == 2
    assert writer.prune(older_than_ms=cmc.T0 + HOUR) == 0


def test_quote_rows_match_the_snapshot_column_order(db, cmc) -> None:
    """Every NUMERIC_FIELDS column is written under its own name (no column shifted)."""
    fields = {name: float(10 + i) for i, name in enumerate(NUMERIC_FIELDS) if name not in ("rank", "price")}
    item = cmc.coin(9, 3.5, cmc_rank=4, **fields)
    snap = cmc.snapshot(cmc.T0, [item])
    row = quote_rows(SnapshotWriter(db).write(snap, "replay"))[9]
    assert {name: row[name] for name in NUMERIC_FIELDS} == {"rank": 4, "price": 3.5, **fields}
