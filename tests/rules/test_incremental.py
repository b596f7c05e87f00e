"""Incremental indicator state against TA-Lib over each coin's whole history.

Several coins at once, each closing candles at its own times (coins that start late, gaps where a coin
has no candle while others do): after every closed candle, each coin's value on its closed candles and
its value with an open candle on top equal TA-Lib's over all of that coin's closes (``<= 1e-9``
relative), on random walks, flat stretches and prices around 1e-8.
"""

from __future__ import annotations

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.trackers import assert_same_state
from ubot.rules import IndicatorCall, indicators
from ubot.rules.incremental import Tracker

CALLS = [
    IndicatorCall("sma", (1,)),
    IndicatorCall("sma", (20,)),
    IndicatorCall("ema", (1,)),
    IndicatorCall("ema", (9,)),
    IndicatorCall("ema", (50,)),
    IndicatorCall("rsi", (2,)),
    IndicatorCall("rsi", (14,)),
    IndicatorCall("macd"),
    IndicatorCall("macd_signal"),
    IndicatorCall("bb_upper", (20, 2.0)),
    IndicatorCall("bb_lower", (20, 2.5)),
    IndicatorCall("bb_upper", (5, 1.0)),
    IndicatorCall("highest", (1,)),
    IndicatorCall("highest", (7,)),
    IndicatorCall("lowest", (24,)),
    IndicatorCall("change", (1,)),
    IndicatorCall("change", (12,)),
]


def ta_lib(call: IndicatorCall, closes: np.ndarray) -> float:
    """TA-Lib's value of ``call`` at the last of ``closes`` (NaN before TA-Lib has one)."""
    name, args = call.name, call.args
    if len(closes) == 0:
        return np.nan
    if name in ("sma", "ema", "highest", "lowest") and args[0] == 1:
        return float(closes[-1])  # TA-Lib takes periods from 2
    if name == "sma":
        out = talib.SMA(closes, args[0])
    elif name == "ema":
        out = talib.EMA(closes, args[0])
    elif name == "rsi":
        out = talib.RSI(closes, args[0])
    elif name in ("macd", "macd_signal"):
        out = talib.MACD(closes, 12, 26, 9)[0 if name == "macd" else 1]
    elif name in ("bb_upper", "bb_lower"):
        upper, _, lower = talib.BBANDS(closes, args[0], args[1], args[1], 0)
        out = upper if name == "bb_upper" else lower
    elif name == "highest":
        out = talib.MAX(closes, args[0])
    elif name == "lowest":
        out = talib.MIN(closes, args[0])
    else:
        out = talib.ROC(closes, args[0])
    return float(out[-1])


def check(call: IndicatorCall, got: float, closes: np.ndarray) -> None:
    """``got`` is TA-Lib's value over ``closes``, and NaN exactly while there are fewer than the
    call's lookback (TA-Lib's MACD starts only with its signal: before that, our windowed reference)."""
    if len(closes) < call.lookback:
        assert np.isnan(got), (call, len(closes))
        return
    expected = ta_lib(call, closes)
    if np.isnan(expected):
        assert call.name == "macd" and len(closes) < 34, call
        expected = float(indicators.macd(closes)[0])
    elif call.name == "rsi" and np.ptp(closes) == 0:
        expected = 50.0  # documented: a price that never moved has RSI 50 (TA-Lib says 0)
    scale = np.abs(closes).max()
    atol = 1e-9 * scale if call.name in ("macd", "macd_signal") else 0.0  # a difference near zero
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=atol, err_msg=f"{call} after {len(closes)}")


def walk(rng: np.random.Generator, length: int, scale: float = 100.0) -> np.ndarray:
    return scale * np.cumprod(1 + rng.normal(0, 0.02, length))


def with_flat_runs(rng: np.random.Generator, length: int, scale: float = 100.0) -> np.ndarray:
    """A random walk broken by flat runs of 1..80 candles (longer than most windows)."""
    prices = walk(rng, length, scale)
    at = 0
    while at < length:
        at += int(rng.integers(3, 40))
        run = int(rng.integers(1, 80))
        prices[at : at + run] = prices[at - 1] if at < length else 0
        prices[at + run :] *= prices[at - 1] / prices[min(at + run, length - 1)] if at + run < length else 1
        at += run
    return prices


def play(series: list[np.ndarray], rng: np.random.Generator, calls=CALLS) -> None:
    """Feed every coin's closes candle by candle, in random interleavings (a coin waits, others close
    candles: its gap), and check every call on every coin after each step, closed and open."""
    tracker = Tracker(calls)
    tracker.grow(len(series))
    fed = np.zeros(len(series), dtype=np.int64)
    while (fed < [len(s) for s in series]).any():
        moving = np.flatnonzero((fed < [len(s) for s in series]) & (rng.random(len(series)) < 0.7))
        if len(moving) == 0:
            continue
        tracker.advance(moving, np.array([series[r][fed[r]] for r in moving]))
        fed[moving] += 1
        rows = np.arange(len(series))
        opens = np.array([s[min(f, len(s) - 1)] * 1.001 for s, f in zip(series, fed)])
        for call in calls:
            closed = tracker.closed(call, rows)
            opened = tracker.opened(call, rows, opens)
            for r in rows:
                check(call, closed[r], series[r][: fed[r]])
                check(call, opened[r], np.append(series[r][: fed[r]], opens[r]))


@pytest.mark.parametrize("seed", [1, 2])
def test_random_walks_equal_ta_lib_after_every_candle(seed):
    rng = np.random.default_rng(seed)
    play([walk(rng, int(rng.integers(1, 90))) for _ in range(5)], rng)


@pytest.mark.parametrize("seed", [3, 4])
def test_flat_stretches_equal_ta_lib(seed):
    rng = np.random.default_rng(seed)
    series = [with_flat_runs(rng, 160) for _ in range(3)]
    series.append(np.full(60, 42.0))  # never moved
    play(series, rng)


def test_prices_around_1e_8_equal_ta_lib():
    rng = np.random.default_rng(5)
    play([walk(rng, 120, 1e-8), with_flat_runs(rng, 120, 3e-8)], rng)


def test_the_documented_flat_run_keeps_wilders_rsi():
    closes = np.array([*np.arange(100.0, 120.0), *[119.0] * 32, 119.5])
    tracker = Tracker([IndicatorCall("rsi", (2,))])
    tracker.grow(1)
    for price in closes[:-1]:
        tracker.advance(np.array([0]), np.array([price]))
    call = IndicatorCall("rsi", (2,))
    assert tracker.closed(call, np.array([0]))[0] == pytest.approx(100.0)
    np.testing.assert_allclose(
        tracker.opened(call, np.array([0]), np.array([119.5])), talib.RSI(closes, 2)[-1:], rtol=1e-9
    )


def test_a_long_history_equals_ta_lib_and_the_windowed_reference():
    rng = np.random.default_rng(6)
    closes = with_flat_runs(rng, 3000)
    tracker = Tracker(CALLS)
    tracker.grow(1)
    for price in closes:
        tracker.advance(np.array([0]), np.array([price]))
    for call in CALLS:
        got = tracker.closed(call, np.array([0]))[0]
        check(call, got, closes)
        np.testing.assert_allclose(got, indicators.FUNCTIONS[call.name](closes, *call.args)[0], rtol=1e-9)


@settings(max_examples=60, deadline=None, database=None)
@given(
    data=st.data(),
    name=st.sampled_from(sorted(indicators.FUNCTIONS)),
    length=st.integers(0, 150),
    flat=st.integers(0, 100),
)
def test_any_period_equals_the_windowed_reference_over_the_whole_history(data, name, length, flat):
    """Any period, any history length, a flat run anywhere: closed and open values equal the windowed
    functions over the whole history (themselves TA-Lib's, above)."""
    if name in ("macd", "macd_signal"):
        args: tuple = ()
    elif name in ("bb_upper", "bb_lower"):
        args = (data.draw(st.integers(2, 70)), data.draw(st.floats(0.5, 5)))
    else:
        args = (data.draw(st.integers(2 if name == "rsi" else 1, 70)),)
    call = IndicatorCall(name, args)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    closes = walk(rng, length)
    start = data.draw(st.integers(0, length))
    closes[start : start + flat] = closes[start - 1] if start else 7.0
    tracker = Tracker([call])
    tracker.grow(1)
    for price in closes:
        tracker.advance(np.array([0]), np.array([price]))
    row, price = np.array([0]), 123.0
    for got, history in (
        (tracker.closed(call, row), closes),
        (tracker.opened(call, row, np.array([price])), np.append(closes, price)),
    ):
        expected = indicators.FUNCTIONS[name](history, *args)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=str(call))


@pytest.mark.parametrize("seed", [7, 8])
def test_seeding_whole_histories_equals_the_fold_and_ta_lib(seed):
    """:meth:`Tracker.seed` (a start-up load: each coin's whole history at once, the recursions in C)
    leaves the state that advancing one candle at a time leaves (tests/support/trackers.py), and
    it stays so as candles follow; the values are TA-Lib's. Histories of every length around the
    lookbacks and the windows' multiples, random walks with flat runs, a price that never moved."""
    rng = np.random.default_rng(seed)
    lengths = [1, 2, 3, 14, 15, 16, 19, 20, 21, 25, 26, 27, 33, 34, 35, 40, 41, 48, 49, 50, 51]
    lengths += rng.integers(1, 700, 12).tolist()
    series = [with_flat_runs(rng, n, 10.0 ** rng.uniform(-8, 4)) for n in lengths]
    series.append(np.full(90, 42.0))
    rows = np.arange(len(series))
    folded, seeded = Tracker(CALLS), Tracker(CALLS)
    for tracker in (folded, seeded):
        tracker.grow(len(series))
    for k in range(max(len(s) for s in series)):
        moving = np.array([r for r in rows if k < len(series[r])])
        folded.advance(moving, np.array([series[r][k] for r in moving]))
    count = np.array([len(s) for s in series])
    matrix = np.full((len(series), count.max()), np.nan)
    for r, s in enumerate(series):
        matrix[r, : len(s)] = s
    order = rng.permutation(len(series))  # rows given in any order
    seeded.seed(order, matrix[order], count[order])
    assert_same_state(seeded, rows, folded, rows)
    for call in CALLS:
        closed = seeded.closed(call, rows)
        for r in rows:
            check(call, closed[r], series[r])
    more = walk(rng, 60)
    for k, price in enumerate(more):  # live candles after the seed
        for tracker in (folded, seeded):
            tracker.advance(rows, np.full(len(rows), price * (1 + 0.001 * rows)))
        if k % 7 == 0:
            assert_same_state(seeded, rows, folded, rows)
    assert_same_state(seeded, rows, folded, rows)
