"""The indicator state seeded from the candle table (``models/closes.py``), on SQLite or PostgreSQL:
every stored closed candle is read, a group of whole coins at a time, and a restart rebuilds the state
that the live run advanced candle by candle."""

from __future__ import annotations

import numpy as np
import talib

from tests.scan.support import MINUTE, T0, candles
from ubot.models.candle_blocks import BlockPacker
from ubot.models.candle_store import CANDLE_FIELDS
from ubot.models.closes import closed_candles
from ubot.models.db import database
from ubot.models.tables import Candle, Coin
from ubot.rules import IndicatorCall
from ubot.scan.frame import Plan
from ubot.scan.history import IndicatorHistory
from ubot.scan.planner import ScanPlanner

RSI, EMA = IndicatorCall("rsi", (14,)), IndicatorCall("ema", (30,))


def store(rows: list[tuple[int, int, float]], timeframe: str = "1m") -> None:
    for coin in sorted({c for c, _, _ in rows}):
        Coin.insert(
            id=coin, symbol=f"C{coin}", name=f"Coin {coin}", slug=f"c{coin}", first_seen=0
        ).on_conflict_ignore().execute()
    Candle.insert_many(
        [(c, timeframe, t, p, p, p, p, t, t, 1) for c, t, p in rows],
        fields=CANDLE_FIELDS,
    ).execute()


def walks(minutes: int) -> list[tuple[int, int, float]]:
    """Three coins: a random walk, one listed late with gaps, one that goes flat for 200 candles."""
    rng = np.random.default_rng(4)
    rows = []
    for coin, start in ((1, 0), (2, minutes // 3), (3, 0)):
        price = 50.0 * coin
        for minute in range(start, minutes):
            if coin == 2 and rng.random() < 0.2:
                continue
            if not (coin == 3 and 100 <= minute < 300):
                price *= 1 + rng.normal(0, 0.02)
            rows.append((coin, T0 + minute * MINUTE, price))
    return rows


def test_every_closed_candle_is_read_in_groups_of_whole_coins(db):
    rows = walks(400)
    store(rows)
    store([(1, T0, 1.0)], timeframe="5m")
    before = T0 + 399 * MINUTE  # the candle opened at 399 is still open: not read
    groups = list(closed_candles("1m", None, before, rows=150))
    assert [sorted(set(g.coin_ids.tolist())) for g in groups] == [[1], [2], [3]]
    got = sorted(
        (int(c), int(t), float(p)) for g in groups for c, t, p in zip(g.coin_ids, g.open_time, g.close)
    )
    assert got == sorted(r for r in rows if r[1] < before)
    since = list(closed_candles("1m", T0 + 390 * MINUTE, before))
    assert len(since) == 1 and sorted(set(since[0].open_time.tolist())) == [
        T0 + m * MINUTE for m in range(390, 399)
    ]


def test_a_restart_seeds_the_state_the_live_run_advanced(db):
    rows = walks(400)
    plan = Plan(calls={"1m": frozenset([RSI, EMA])})
    live = ScanPlanner(1, closed_candles)
    live.plan = plan
    for minute in range(400):  # one tick a minute, 30 s in: the previous minute's candles close
        closed = [r for r in rows if r[1] == T0 + (minute - 1) * MINUTE]
        store(closed)
        live.update_candles(
            T0 + minute * MINUTE + 30_000, {"1m": candles("1m", closed)} if closed else {}, {}
        )
    restarted = ScanPlanner(1, closed_candles)
    restarted.plan = plan
    restarted.update_candles(T0 + 399 * MINUTE + 45_000, {}, {})
    ids = np.array([1, 2, 3])
    for call in (RSI, EMA):
        a, b = (p.histories["1m"] for p in (live, restarted))
        values = [h.value(call, h.rows_for(ids), closed_only=True) for h in (a, b)]
        np.testing.assert_allclose(values[0], values[1], rtol=1e-12)
        for coin in ids:
            closes = np.array([p for c, t, p in rows if c == coin and t < T0 + 399 * MINUTE])
            expected = (talib.RSI if call is RSI else talib.EMA)(closes, call.args[0])[-1]
            np.testing.assert_allclose(values[1][coin - 1], expected, rtol=1e-9)


CALLS = [
    RSI,
    EMA,
    IndicatorCall("rsi", (2,)),
    IndicatorCall("macd", ()),
    IndicatorCall("macd_signal", ()),
    IndicatorCall("sma", (20,)),
    IndicatorCall("bb_upper", (20, 2.0)),
    IndicatorCall("highest", (24,)),
]


def reference(call: IndicatorCall, closes: np.ndarray) -> float:
    """TA-Lib's value over the whole history."""
    n = call.args[0] if call.args else 0
    if call.name == "rsi":
        return talib.RSI(closes, n)[-1]
    if call.name == "ema":
        return talib.EMA(closes, n)[-1]
    if call.name in ("macd", "macd_signal"):
        line, signal, _ = talib.MACD(closes, 12, 26, 9)
        return (line if call.name == "macd" else signal)[-1]
    if call.name == "sma":
        return talib.SMA(closes, n)[-1]
    if call.name == "bb_upper":
        return talib.BBANDS(closes, n, call.args[1], call.args[1])[0][-1]
    return talib.MAX(closes, n)[-1]


def test_a_restart_over_a_long_history_equals_ta_lib_and_the_live_state(db):
    """6,000 candles a coin, with flat runs far longer than 10 (n + 1), read in many chunks and
    joined into several seeds: the restarted state equals the one advanced candle by candle, and
    TA-Lib over each coin's whole history."""
    rng = np.random.default_rng(11)
    rows = []
    for coin, start in ((1, 0), (2, 1_500), (3, 0), (4, 0)):
        price = 20.0 * coin
        for minute in range(start, 6_000):
            if coin == 2 and rng.random() < 0.1:
                continue  # gaps
            flat = coin == 3 and 1_000 <= minute < 3_500 or coin == 4 and minute % 700 >= 300
            if not flat:
                price *= 1 + rng.normal(0, 0.01)
            rows.append((coin, T0 + minute * MINUTE, price))
    store(rows)
    before = T0 + 6_000 * MINUTE
    live = IndicatorHistory("1m", CALLS)
    by_minute: dict[int, list] = {}
    for row in rows:
        by_minute.setdefault(row[1], []).append(row)
    for minute in sorted(by_minute):
        live.add_closed(candles("1m", by_minute[minute]))
    restarted = ScanPlanner(1, lambda tf, a, b: closed_candles(tf, a, b, rows=2_500))
    restarted.plan = Plan(calls={"1m": frozenset(CALLS)})
    chunks = list(closed_candles("1m", None, before, rows=2_500))
    assert len(chunks) == 4  # one coin a chunk
    seeded = IndicatorHistory("1m", CALLS)
    assert seeded.add_history(iter(chunks), cells=9_000) == len(rows)  # joined into two seeds
    restarted.update_candles(before + 30_000, {}, {})
    ids = np.array([1, 2, 3, 4])
    for call in CALLS:
        got = [
            h.value(call, h.rows_for(ids), closed_only=True)
            for h in (live, seeded, restarted.histories["1m"])
        ]
        # Seeded in C, the averages differ from the fold's in their last bits: MACD, a difference
        # of two, near zero, to 1e-12 of the prices (80 here).
        atol = 1e-10 if call.name in ("macd", "macd_signal") else 0.0
        np.testing.assert_allclose(got[1], got[0], rtol=1e-12, atol=atol, err_msg=str(call))
        np.testing.assert_allclose(got[2], got[0], rtol=1e-12, atol=atol, err_msg=str(call))
        for coin in ids.tolist():
            closes = np.array([p for c, _, p in rows if c == coin])
            np.testing.assert_allclose(
                got[2][coin - 1], reference(call, closes), rtol=1e-9, err_msg=str(call)
            )


def test_packed_blocks_are_read_as_the_rows_they_hold(db):
    """The seeds read through the dry run's reader: once closed candles are packed in blocks
    (``models/candle_blocks.py``), the same candles come back, in the same groups."""
    day = 1440 * MINUTE
    rng = np.random.default_rng(9)
    rows = [
        (coin, T0 + k * MINUTE, float(p))
        for coin, start in ((1, 0), (2, 700), (3, 2000))
        for k, p in zip(range(start, 4000), 10.0 * np.cumprod(1 + rng.normal(0, 0.01, 4000 - start)))
        if k % 97  # gaps
    ]
    store(rows)
    before = T0 + 3990 * MINUTE
    ranges = [(None, before), (T0 + day + 17 * MINUTE, before), (T0 + 5 * MINUTE, T0 + 2 * day)]
    unpacked = [list(closed_candles("1m", a, b, rows=3000)) for a, b in ranges]
    assert BlockPacker(database).pack_all() > 0
    for (after, until), expected in zip(ranges, unpacked, strict=True):
        got = list(closed_candles("1m", after, until, rows=3000))
        assert len(got) == len(expected) > 1
        for a, b in zip(got, expected, strict=True):
            for name in ("coin_ids", "open_time", "close"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
