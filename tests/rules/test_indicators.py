"""Indicator maths against straightforward pure-Python reference implementations, on random data."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ubot.rules import IndicatorCall, indicators

NAN = math.nan

# -- references: one coin at a time, plain loops -----------------------------------------------------


def history(row) -> list[float]:
    """The coin's closes without the NaN padding on the left."""
    values = [float(v) for v in row]
    while values and math.isnan(values[0]):
        values.pop(0)
    return values


def ref_ema_series(values: list[float], n: int, alpha: float) -> list[float]:
    """EMA seeded with the mean of the first n values; NaN before that."""
    if len(values) < n:
        return [NAN] * len(values)
    out = [NAN] * (n - 1)
    e = sum(values[:n]) / n
    out.append(e)
    for v in values[n:]:
        e = alpha * v + (1 - alpha) * e
        out.append(e)
    return out


def ref_sma(row, n):
    if len(row) < n:
        return NAN
    window = [float(v) for v in row[-n:]]
    return sum(window) / n


def ref_ema(row, n):
    return ref_ema_series(history(row), n, 2 / (n + 1))[-1] if len(history(row)) >= n else NAN


def ref_rsi(row, n):
    values = history(row)
    if len(values) < n + 1:
        return NAN
    deltas = [b - a for a, b in zip(values, values[1:])]
    gains = [max(d, 0.0) for d in deltas]
    losses = [max(-d, 0.0) for d in deltas]
    gain, loss = sum(gains[:n]) / n, sum(losses[:n]) / n
    for g, lo in zip(gains[n:], losses[n:]):
        gain = (gain * (n - 1) + g) / n
        loss = (loss * (n - 1) + lo) / n
    if math.isnan(gain) or math.isnan(loss):
        return NAN
    return 50.0 if gain + loss == 0 else 100 * gain / (gain + loss)


def ref_macd_line(row) -> list[float]:
    """TA-Lib's MACD line: the fast EMA starts with the slow one, from the 12 values that end there."""
    values = history(row)
    fast = [NAN] * min(14, len(values)) + ref_ema_series(values[14:], 12, 2 / 13)
    slow = ref_ema_series(values, 26, 2 / 27)
    return [f - s for f, s in zip(fast, slow)]


def ref_macd(row):
    line = ref_macd_line(row)
    return line[-1] if line else NAN


def ref_macd_signal(row):
    line = [v for v in ref_macd_line(row) if not math.isnan(v)]
    series = ref_ema_series(line, 9, 0.2)
    return series[-1] if series else NAN


def ref_band(row, n, k, sign):
    if len(row) < n:
        return NAN
    window = [float(v) for v in row[-n:]]
    if any(math.isnan(v) for v in window):
        return NAN
    return statistics.fmean(window) + sign * k * statistics.pstdev(window)


def ref_highest(row, n):
    window = [float(v) for v in row[-n:]]
    if len(row) < n or any(math.isnan(v) for v in window):
        return NAN
    return max(window)


def ref_lowest(row, n):
    window = [float(v) for v in row[-n:]]
    if len(row) < n or any(math.isnan(v) for v in window):
        return NAN
    return min(window)


def ref_change(row, n):
    if len(row) < n + 1:
        return NAN
    before, latest = float(row[-1 - n]), float(row[-1])
    if math.isnan(before) or math.isnan(latest) or before == 0:
        return NAN
    return (latest / before - 1) * 100


REFERENCES = {
    "sma": ref_sma,
    "ema": ref_ema,
    "rsi": ref_rsi,
    "macd": ref_macd,
    "macd_signal": ref_macd_signal,
    "bb_upper": lambda row, n, k: ref_band(row, n, k, 1),
    "bb_lower": lambda row, n, k: ref_band(row, n, k, -1),
    "highest": ref_highest,
    "lowest": ref_lowest,
    "change": ref_change,
}


def random_closes(seed: int, coins: int = 12, candles: int = 80) -> np.ndarray:
    """Random walks, each coin NaN-padded on the left by a random amount (some fully, some not at all)."""
    rng = np.random.default_rng(seed)
    closes = 100 * np.cumprod(1 + rng.normal(0, 0.02, (coins, candles)), axis=1)
    pads = rng.integers(0, candles + 1, coins)
    pads[0] = 0
    if coins > 1:
        pads[1] = candles
    for coin, pad in enumerate(pads):
        closes[coin, :pad] = np.nan
    return closes


def assert_matches_reference(name: str, closes: np.ndarray, *args) -> None:
    got = indicators.FUNCTIONS[name](closes, *args)
    expected = np.array([REFERENCES[name](row, *args) for row in closes])
    assert got.shape == (closes.shape[0],)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9, equal_nan=True)


CASES = [
    ("sma", (1,)),
    ("sma", (20,)),
    ("ema", (1,)),
    ("ema", (10,)),
    ("ema", (50,)),
    ("rsi", (2,)),
    ("rsi", (14,)),
    ("macd", ()),
    ("macd_signal", ()),
    ("bb_upper", (20, 2.0)),
    ("bb_lower", (5, 0.5)),
    ("highest", (24,)),
    ("lowest", (3,)),
    ("change", (1,)),
    ("change", (24,)),
]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("name", "args"), CASES, ids=[f"{n}{a}" for n, a in CASES])
def test_indicator_matches_reference_on_random_walks(name, args, seed):
    assert_matches_reference(name, random_closes(seed), *args)


@settings(max_examples=40, deadline=None, database=None)
@given(
    data=st.data(),
    coins=st.integers(1, 6),
    candles=st.integers(1, 60),
    name=st.sampled_from(sorted(indicators.FUNCTIONS)),
)
def test_indicator_matches_reference_for_any_shape(data, coins, candles, name):
    seed = data.draw(st.integers(0, 2**32 - 1))
    closes = random_closes(seed, coins, candles)
    if name in ("macd", "macd_signal"):
        args = ()
    elif name in ("bb_upper", "bb_lower"):
        args = (data.draw(st.integers(2, 70)), data.draw(st.floats(0.5, 5)))
    else:
        args = (data.draw(st.integers(2 if name == "rsi" else 1, 70)),)
    assert_matches_reference(name, closes, *args)


def test_values_are_nan_until_exactly_the_lookback():
    closes = random_closes(7, coins=1, candles=60)
    closes[0, :] = 100 * np.cumprod(np.full(60, 1.01))
    for name, args in CASES:
        need = indicators.lookback(name, *args)
        short = indicators.FUNCTIONS[name](closes[:, -need + 1 :] if need > 1 else closes[:, :0], *args)
        enough = indicators.FUNCTIONS[name](closes[:, -need:], *args)
        assert np.isnan(short).all(), (name, need)
        assert np.isfinite(enough).all(), (name, need)


def test_lookbacks():
    assert IndicatorCall("rsi", (14,)).lookback == 15
    assert IndicatorCall("sma", (200,)).lookback == 200
    assert IndicatorCall("change", (24,)).lookback == 25
    assert IndicatorCall("macd").lookback == 26
    assert IndicatorCall("macd_signal").lookback == 34
    assert IndicatorCall("bb_upper", (20, 2.0)).lookback == 20


def test_rsi_extremes():
    up = np.arange(1.0, 31.0)[np.newaxis, :]
    flat = np.full((1, 30), 5.0)
    assert indicators.rsi(up, 14)[0] == 100.0
    assert indicators.rsi(up[:, ::-1], 14)[0] == 0.0
    assert indicators.rsi(flat, 14)[0] == 50.0


def test_a_gap_inside_the_window_makes_the_value_undefined():
    closes = np.full((2, 60), 50.0)
    gap = 50
    closes[0, gap] = np.nan
    for name, args in CASES:
        value = indicators.FUNCTIONS[name](closes, *args)
        if name in ("sma", "bb_upper", "bb_lower", "highest", "lowest"):
            used = gap >= 60 - args[0]
        elif name == "change":
            used = gap == 59 - args[0]
        else:  # recursive: everything since the seed
            used = True
        assert np.isnan(value[0]) == used, name
        assert not np.isnan(value[1]), name


def test_change_from_zero_is_undefined():
    assert np.isnan(indicators.change(np.array([[0.0, 1.0]]), 1)[0])
    assert indicators.change(np.array([[2.0, 3.0]]), 1)[0] == pytest.approx(50.0)


def test_one_dimensional_closes_are_one_coin_and_no_coins_is_fine():
    assert indicators.sma(np.array([1.0, 2.0, 3.0]), 2).tolist() == [2.5]
    assert indicators.ema(np.empty((0, 10)), 3).shape == (0,)
    assert indicators.rsi(np.empty((0, 10)), 3).shape == (0,)
    with pytest.raises(ValueError):
        indicators.sma(np.zeros((2, 2, 2)), 1)


def test_compute_keys_values_by_canonical_string():
    closes = random_closes(5)
    calls = [IndicatorCall("rsi", (14,)), IndicatorCall("bb_upper", (20, 2.0)), IndicatorCall("macd")]
    values = indicators.compute(calls, closes)
    assert list(values) == ["rsi(14)", "bb_upper(20, 2)", "macd()"]
    np.testing.assert_array_equal(values["rsi(14)"], indicators.rsi(closes, 14))


def test_inputs_are_not_modified():
    closes = random_closes(9)
    before = closes.copy()
    for name, args in CASES:
        indicators.FUNCTIONS[name](closes, *args)
    np.testing.assert_array_equal(closes, before)


def test_recursions_over_time_equal_talib_after_flat_runs_and_at_tiny_prices():
    """:func:`indicators.seeded_ema` and :func:`indicators.macd_lines` (the dry run's EMA, RSI averages
    and MACD at every candle) equal TA-Lib's over the whole history, within 1e-9: rows that start at
    different candles (NaN padding), flat runs, and prices of 1e-8."""
    talib = pytest.importorskip("talib")
    rng = np.random.default_rng(15)
    walk = np.cumprod(1 + rng.normal(0, 0.01, (4, 600)), axis=1)
    walk[1, 200:260] = walk[1, 199]  # a flat run longer than every n below
    walk[2] *= 1e-8  # tiny prices
    closes = walk.copy()
    closes[3, :37] = np.nan  # a coin listed later: its seed comes later than the others'
    for n in (3, 14, 50):
        full = indicators.seeded_ema(closes, n, 2.0 / (n + 1))
        delta = np.diff(closes, axis=1)
        both = indicators.seeded_ema(np.vstack([np.maximum(delta, 0.0), np.maximum(-delta, 0.0)]), n, 1.0 / n)
        gain, loss = both[:4], both[4:]
        for row in range(4):
            np.testing.assert_allclose(full[row], talib.EMA(closes[row], n), rtol=1e-9, equal_nan=True)
            moved = gain[row] + loss[row] > 0  # TA-Lib says 0 where nothing moved, uBot 50
            rsi = talib.RSI(closes[row], n)[1:]
            np.testing.assert_allclose(
                (100.0 * gain[row] / (gain[row] + loss[row]))[moved], rsi[moved], rtol=1e-9
            )
    fast, slow, signal = indicators.macd_lines(closes)
    for row in range(4):
        line, expected_signal, _ = talib.MACD(closes[row], 12, 26, 9)
        started = ~np.isnan(expected_signal)  # TA-Lib's MACD output starts with its signal
        np.testing.assert_allclose((fast - slow)[row][started], line[started], rtol=1e-9, atol=1e-20)
        np.testing.assert_allclose(signal[row][started], expected_signal[started], rtol=1e-9, atol=1e-20)
