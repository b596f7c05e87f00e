"""Indicator values over time (``rules/series.py``) against the live state (``rules/incremental.py``):
at every tick, over the closed candles and with an open candle, the same values to rounding."""

from __future__ import annotations

import numpy as np
import pytest

from ubot.rules import IndicatorCall
from ubot.rules.incremental import Tracker
from ubot.rules.series import Series, rolling_max

CALLS = [
    IndicatorCall("sma", (1,)),
    IndicatorCall("sma", (20,)),
    IndicatorCall("ema", (1,)),
    IndicatorCall("ema", (12,)),
    IndicatorCall("rsi", (14,)),
    IndicatorCall("rsi", (2,)),
    IndicatorCall("macd", ()),
    IndicatorCall("macd_signal", ()),
    IndicatorCall("bb_upper", (20, 2.0)),
    IndicatorCall("bb_lower", (5, 0.5)),
    IndicatorCall("highest", (1,)),
    IndicatorCall("highest", (7,)),
    IndicatorCall("lowest", (30,)),
    IndicatorCall("change", (1,)),
    IndicatorCall("change", (9,)),
]


def closes(rows: int, length: int) -> np.ndarray:
    """Random walks, left-aligned: row r has ``length - 15 r`` closes, NaN after."""
    rng = np.random.default_rng(5)
    out = 100.0 * np.cumprod(1 + rng.normal(0, 0.02, (rows, length)), axis=1)
    for r in range(rows):
        out[r, length - 15 * r :] = np.nan
    out[0, 40:60] = out[0, 40]  # a flat stretch: variance exactly 0, RSI 50
    return out


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_every_tick_matches_the_live_state(call) -> None:
    matrix = closes(3, 90)
    rng = np.random.default_rng(9)
    rows, ats, prices = [], [], []
    for r in range(3):
        for at in range(int((~np.isnan(matrix[r])).sum()) + 1):
            rows.append(r)
            ats.append(at)
            prices.append(matrix[r, at - 1] * (1 + rng.normal(0, 0.01)) if at else 100.0)
    series = Series(matrix, np.array(rows), np.array(ats), np.array(prices))
    opened = series.value(call, closed_only=False)
    closed = series.value(call, closed_only=True)
    compared = 0
    for k, (r, at, price) in enumerate(zip(rows, ats, prices)):
        tracker = Tracker([call])
        tracker.grow(1)
        for close in matrix[r, :at]:
            tracker.advance(np.array([0]), np.array([close]))
        live_open = tracker.opened(call, np.array([0]), np.array([price]))[0]
        live_closed = tracker.closed(call, np.array([0]))[0]
        for ours, live in ((opened[k], live_open), (closed[k], live_closed)):
            live = live if np.isfinite(live) else np.nan
            assert np.isnan(ours) == np.isnan(live), (call, r, at, ours, live)
            if not np.isnan(live):
                assert ours == pytest.approx(live, rel=1e-9, abs=1e-9), (call, r, at)
                compared += 1
    assert compared > 100


def test_the_calls_of_one_series_read_together_are_each_as_read_alone() -> None:
    """A condition reads several calls of one Series (``macd() > macd_signal()`` shares the MACD's
    work, computed once): each equals the same call read from a Series of its own, in any order."""
    matrix = closes(3, 90)
    rows = np.repeat(np.arange(3), 60)
    ats = np.tile(np.arange(60), 3)
    prices = np.where(ats > 0, matrix[rows, np.maximum(ats - 1, 0)] * 1.003, 100.0)
    shared = Series(matrix, rows, ats, prices)
    for call in [*CALLS, *reversed(CALLS)]:
        for closed_only in (False, True):
            alone = Series(matrix, rows, ats, prices).value(call, closed_only=closed_only)
            np.testing.assert_array_equal(shared.value(call, closed_only=closed_only), alone, str(call))


def test_rolling_max_is_the_maximum_of_each_window() -> None:
    values = np.random.default_rng(2).normal(size=(4, 37))
    for width in (1, 2, 5, 36, 37):
        got = rolling_max(values, width)
        for j in range(width - 1, 37):
            np.testing.assert_array_equal(got[:, j], values[:, j - width + 1 : j + 1].max(axis=1))
        assert np.all(got[:, : width - 1] == -np.inf)
