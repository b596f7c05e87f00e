"""Bulk writes from columns: every NULL pattern, integer and text column round-trips on both databases
(SQLite's executemany; PostgreSQL's binary COPY, where each NULL pattern and text length is a layout)."""

from __future__ import annotations

import math

import numpy as np

from ubot.market.snapshot import NUMERIC_FIELDS
from ubot.models.bulk import insert_columns, upsert_columns
from ubot.models.db import writing
from ubot.models.tables import Candle, Coin, Quote, SnapshotRecord

NAN = math.nan


def coins(db, ids, names, first_seen=0) -> None:
    with writing(db):
        upsert_columns(
            Coin,
            [Coin.id, Coin.symbol, Coin.name, Coin.slug, Coin.first_seen],
            [np.array(ids), np.array([n.upper()[:5] for n in names]), np.array(names), "", first_seen],
            conflict_target=[Coin.id],
            update=[Coin.symbol, Coin.name, Coin.slug],
        )


def test_text_of_every_length_and_script_and_an_upsert(db) -> None:
    names = ["A", "Ünïcode ✓", "", "tab\tand\nnewline", "x" * 150]
    coins(db, [1, 2, 3, 4, 5], names)
    assert dict(Coin.select(Coin.id, Coin.name).tuples()) == dict(zip([1, 2, 3, 4, 5], names))
    coins(db, [2, 6], ["renamed", "new"], first_seen=99)
    rows = {c.id: (c.name, c.first_seen) for c in Coin.select()}
    assert rows[2] == ("renamed", 0) and rows[6] == ("new", 99) and rows[4] == (names[3], 0)


def test_every_null_pattern_of_a_quote_round_trips(db) -> None:
    rng = np.random.default_rng(3)
    n = 60
    coins(db, list(range(1, n + 1)), [f"c{i}" for i in range(n)])
    snapshot = SnapshotRecord.insert(timestamp=1, source="t", convert="USD", coin_count=n).execute()
    columns = {name: rng.normal(size=n) * 1e6 for name in NUMERIC_FIELDS}
    columns["rank"] = np.arange(1.0, n + 1)
    for name in NUMERIC_FIELDS:
        if name != "price":
            columns[name][rng.random(n) < 0.3] = NAN  # many NULL patterns, rank's too
    columns["price"][0] = 1e-300  # extremes survive
    columns["volume_24h"][1] = 1.7976931348623157e308
    ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64)
    with writing(db):
        insert_columns(
            Quote,
            [Quote.snapshot, Quote.coin, Quote.ts] + [getattr(Quote, f) for f in NUMERIC_FIELDS],
            [snapshot, np.arange(1, n + 1), ts, *(columns[f] for f in NUMERIC_FIELDS)],
        )
    fields = [Quote.coin, Quote.ts] + [getattr(Quote, f) for f in NUMERIC_FIELDS]
    rows = sorted(Quote.select(*fields).where(Quote.snapshot == snapshot).tuples())
    assert [r[:2] for r in rows] == list(zip(range(1, n + 1), ts.tolist()))
    for j, name in enumerate(NUMERIC_FIELDS):
        stored = [r[2 + j] for r in rows]
        expected = [None if math.isnan(v) else v for v in columns[name].tolist()]
        if name == "rank":
            expected = [None if v is None else int(v) for v in expected]
        assert stored == expected, name


def test_candles_of_several_timeframes_in_one_upsert(db) -> None:
    coins(db, [1, 2], ["a", "b"])
    fields = [Candle.coin, Candle.timeframe, Candle.open_time, Candle.open, Candle.high, Candle.low]
    fields += [Candle.close, Candle.first_ts, Candle.last_ts, Candle.count]
    values = [
        Candle.open,
        Candle.high,
        Candle.low,
        Candle.close,
        Candle.first_ts,
        Candle.last_ts,
        Candle.count,
    ]

    def upsert(timeframes, close):
        n = len(timeframes)
        price = np.full(n, close)
        columns = [np.array([1, 2, 1][:n]), np.array(timeframes), np.zeros(n, dtype=np.int64)]
        columns += [price, price, price, price, np.ones(n, dtype=np.int64), np.ones(n, dtype=np.int64), 3]
        with writing(db):
            upsert_columns(Candle, fields, columns, conflict_target=fields[:3], update=values)

    upsert(["1m", "15m", "1d"], 5.0)
    upsert(["1m", "4h"], 6.0)  # coin 1's 1m replaced, coin 2's 4h added
    found = sorted(Candle.select(Candle.coin, Candle.timeframe, Candle.close, Candle.count).tuples())
    assert found == [(1, "1d", 5.0, 3), (1, "1m", 6.0, 3), (2, "15m", 5.0, 3), (2, "4h", 6.0, 3)]
