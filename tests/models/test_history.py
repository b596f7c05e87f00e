"""History: indexed range queries over candles, quotes and global metrics; coin lookup."""

from __future__ import annotations

import json

import pytest

from ubot.market.snapshot import GLOBAL_FIELDS, GLOBAL_INT_FIELDS, NUMERIC_FIELDS
from ubot.models.history import History
from ubot.models.store import SnapshotWriter
from ubot.models.tables import Candle, Coin
from ubot.timeutil import iso_from_ms

MINUTE = 60_000


def add_coin(coin_id: int, symbol: str) -> None:
    Coin.create(id=coin_id, symbol=symbol, name=symbol, slug=symbol.lower(), first_seen=0)


def add_candles(coin_id: int, timeframe: str, open_times: list[int]) -> None:
    for n, open_time in enumerate(open_times):
        price = float(100 * coin_id + n)
        Candle.create(
            coin=coin_id,
            timeframe=timeframe,
            open_time=open_time,
            open=price,
            high=price + 1,
            low=price - 1,
            close=price + 0.5,
            first_ts=open_time,
            last_ts=open_time + 1,
            count=1,
        )


@pytest.fixture
def history(db) -> History:
    return History(db)


@pytest.fixture
def minutes(db, cmc) -> list[int]:
    """Coin 1's 1m candles at T0 + 0..9 minutes, plus candles that must never show up."""
    add_coin(1, "BTC")
    add_coin(2, "ETH")
    times = [cmc.T0 + n * MINUTE for n in range(10)]
    add_candles(1, "1m", times)
    add_candles(1, "5m", [cmc.T0, cmc.T0 + 5 * MINUTE])
    add_candles(2, "1m", times)
    return times


def test_candles_ascending_with_their_values(history, minutes) -> None:
    rows = history.candles(1, "1m", None, None, 100)

    assert [row[0] for row in rows] == minutes
    assert rows[3] == (minutes[3], 103.0, 104.0, 102.0, 103.5)


def test_candles_range_is_inclusive_at_both_ends(history, minutes) -> None:
    rows = history.candles(1, "1m", minutes[2], minutes[5], 100)
    assert [row[0] for row in rows] == minutes[2:6]

    assert [r[0] for r in history.candles(1, "1m", minutes[7], None, 100)] == minutes[7:]
    assert [r[0] for r in history.candles(1, "1m", None, minutes[1], 100)] == minutes[:2]
    assert history.candles(1, "1m", minutes[5], minutes[4], 100) == []


def test_candles_limit_keeps_the_latest_in_ascending_order(history, minutes) -> None:
    assert [r[0] for r in history.candles(1, "1m", None, None, 3)] == minutes[-3:]
    assert [r[0] for r in history.candles(1, "1m", minutes[1], minutes[6], 2)] == minutes[5:7]


def test_candles_of_another_timeframe_or_coin_stay_out(history, minutes, cmc) -> None:
    assert [r[0] for r in history.candles(1, "5m", None, None, 100)] == [cmc.T0, cmc.T0 + 5 * MINUTE]
    assert history.candles(1, "1h", None, None, 100) == []
    assert [r[1] for r in history.candles(2, "1m", None, None, 2)] == [208.0, 209.0]
    assert history.candles(3, "1m", None, None, 100) == []


@pytest.fixture
def quoted(db, cmc) -> list[int]:
    """Six snapshots one minute apart; coin 1's quote time is each snapshot's, minus 5 s."""
    writer = SnapshotWriter(db)
    stamps = [cmc.T0 + n * MINUTE for n in range(6)]
    for n, ts in enumerate(stamps):
        items = [
            cmc.coin(1, 100.0 + n, ts=ts - 5000, volume_24h=None if n == 2 else 1e9 + n),
            cmc.coin(2, 2.0 + n, ts=cmc.T0),  # its last_updated never moves
        ]
        globals_ = {name: float(n) for name in GLOBAL_FIELDS} | {"defi_market_cap": None}
        writer.write(cmc.snapshot(ts, items, globals_), "replay")
    return [ts - 5000 for ts in stamps]


def test_quotes_range_limit_and_order(history, quoted) -> None:
    rows = history.quotes(1, quoted[1], quoted[4], 100)
    assert [row["timestamp"] for row in rows] == [iso_from_ms(ts) for ts in quoted[1:5]]
    assert [row["price"] for row in rows] == [101.0, 102.0, 103.0, 104.0]

    latest = history.quotes(1, None, None, 2)
    assert [row["price"] for row in latest] == [104.0, 105.0]
    assert history.quotes(1, quoted[5] + 1, None, 100) == []


def test_quote_documents_have_every_field_nulls_and_integers(history, quoted) -> None:
    row = history.quotes(1, quoted[2], quoted[2], 100)[0]

    assert list(row) == ["timestamp", *NUMERIC_FIELDS]
    assert row["volume_24h"] is None
    assert row["max_supply"] is None
    assert type(row["rank"]) is int and type(row["num_market_pairs"]) is int
    assert '"rank":1,' in json.dumps(row, separators=(",", ":"))


def test_quotes_with_a_repeated_timestamp_come_in_snapshot_order(history, quoted, cmc) -> None:
    """A stale coin repeats its last_updated: ties are in snapshot order, the limit keeps the latest."""
    rows = history.quotes(2, None, None, 100)
    assert [row["timestamp"] for row in rows] == [iso_from_ms(cmc.T0)] * 6
    assert [row["price"] for row in rows] == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]

    assert [row["price"] for row in history.quotes(2, cmc.T0, cmc.T0, 2)] == [6.0, 7.0]


def test_global_metrics_range_limit_order_and_integer_counts(history, quoted, cmc) -> None:
    stamps = [cmc.T0 + n * MINUTE for n in range(6)]

    rows = history.global_metrics(stamps[2], stamps[3], 100)
    assert [row["timestamp"] for row in rows] == [iso_from_ms(stamps[2]), iso_from_ms(stamps[3])]
    assert [row["btc_dominance"] for row in history.global_metrics(None, None, 2)] == [4.0, 5.0]

    row = rows[0]
    assert list(row) == ["timestamp", *GLOBAL_FIELDS]
    assert row["defi_market_cap"] is None
    for name in GLOBAL_INT_FIELDS:
        assert type(row[name]) is int, name
    assert '"active_cryptocurrencies":2,' in json.dumps(row, separators=(",", ":"))
    assert type(row["btc_dominance"]) is float


def test_coin_by_id_and_by_symbol(db, history) -> None:
    add_coin(1027, "ETH")
    add_coin(5, "tBTC")
    add_coin(900, "DUP")
    add_coin(300, "DUP")

    assert history.coin("1027") == (1027, "ETH")
    assert history.coin("eth") == (1027, "ETH")
    assert history.coin("ETH") == (1027, "ETH")
    assert history.coin("TBTC") == (5, "tBTC")
    assert history.coin("tbtc") == (5, "tBTC")
    assert history.coin("dup") == (300, "DUP")  # lowest id on a tie
    assert history.coin("1") is None
    assert history.coin("XYZ") is None


def test_a_shared_symbol_means_the_best_ranked_coin_by_its_latest_quote(db, history, cmc) -> None:
    writer = SnapshotWriter(db)
    # Two coins share "DUP"; the higher id is better ranked, then the ranks swap.
    writer.write(
        cmc.snapshot(
            cmc.T0,
            [cmc.coin(300, 1.0, symbol="DUP", cmc_rank=9), cmc.coin(900, 2.0, symbol="DUP", cmc_rank=4)],
        ),
        "test",
    )
    assert history.coin("dup") == (900, "DUP")
    writer.write(
        cmc.snapshot(
            cmc.T0 + MINUTE,
            [cmc.coin(300, 1.0, symbol="DUP", cmc_rank=3), cmc.coin(900, 2.0, symbol="DUP", cmc_rank=8)],
        ),
        "test",
    )
    assert history.coin("DUP") == (300, "DUP")
