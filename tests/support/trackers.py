"""Comparing two indicator trackers (``rules/incremental.py``) state by state."""

from __future__ import annotations

import numpy as np

from ubot.rules.incremental import Extreme, Tracker

#: The states whose values a seed computes by the same recursion in C (equal to rounding); the others
#: are folded one candle at a time there too (equal bit for bit).
RECURSIVE = {"ema", "rsi", "macd"}


def assert_same_state(a: Tracker, rows_a: np.ndarray, b: Tracker, rows_b: np.ndarray) -> None:
    """Every state of ``a`` at ``rows_a`` equals ``b``'s at ``rows_b``: candle counts and the ring of
    closes exactly, the windowed states exactly, the recursive ones to 1e-12 relative (of the row's
    prices, for MACD's differences of two averages)."""
    scale = np.nanmax(np.abs(a.closes.ring[rows_a]), axis=1, initial=0.0)
    np.testing.assert_array_equal(a.closes.count[rows_a], b.closes.count[rows_b])
    np.testing.assert_array_equal(a.closes.ring[rows_a], b.closes.ring[rows_b])
    assert a.states.keys() == b.states.keys()
    for key, state in a.states.items():
        other = b.states[key]
        for name, array in state.arrays.items():
            got, expected = array[rows_a], other.arrays[name][rows_b]
            if key[0] in RECURSIVE:
                bound = 1e-12 * (np.abs(expected) + (scale if key[0] == "macd" else 0.0))
                close = (np.abs(got - expected) <= bound) | (np.isnan(got) & np.isnan(expected))
                assert close.all(), (key, name, got[~close], expected[~close])
            else:
                np.testing.assert_array_equal(got, expected, err_msg=f"{key} {name}")
        if isinstance(state, Extreme):
            np.testing.assert_array_equal(state.suffix[rows_a], other.suffix[rows_b], err_msg=f"{key} suffix")
