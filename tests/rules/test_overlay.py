"""Overlays: expressions of the condition language that are numbers, computed at every candle of one
coin; an indicator alone equals the windowed function applied to the candles up to each one."""

from __future__ import annotations

import numpy as np
import pytest

from ubot.rules import ConditionError, IndicatorCall, indicators
from ubot.rules.overlay import compile_overlay, overlay_series, warmup

CALLS = [
    IndicatorCall("sma", (5,)),
    IndicatorCall("ema", (7,)),
    IndicatorCall("rsi", (6,)),
    IndicatorCall("macd"),
    IndicatorCall("macd_signal"),
    IndicatorCall("bb_upper", (8, 2.0)),
    IndicatorCall("bb_lower", (8, 1.5)),
    IndicatorCall("highest", (4,)),
    IndicatorCall("lowest", (4,)),
    IndicatorCall("change", (3,)),
]


@pytest.mark.parametrize("call", CALLS, ids=str)
@pytest.mark.parametrize("length", [0, 3, 50])
def test_an_indicator_overlay_is_the_windowed_value_at_every_candle(call: IndicatorCall, length: int) -> None:
    rng = np.random.default_rng(length)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, length)))
    got = overlay_series(compile_overlay(str(call)), closes)
    assert got.shape == (length,)
    windowed = np.array(
        [indicators.FUNCTIONS[call.name](closes[: t + 1], *call.args)[0] for t in range(length)]
    )
    np.testing.assert_allclose(got, windowed, rtol=1e-9, atol=1e-9, equal_nan=True)
    if length >= call.lookback:  # a value from the lookback on, none before
        assert np.isnan(got[: call.lookback - 1]).all()
        assert np.isfinite(got[call.lookback - 1 :]).all()


def test_flat_prices_have_an_rsi_of_50_and_no_change() -> None:
    closes = np.full(20, 3.0)
    assert overlay_series(compile_overlay("rsi(14)"), closes)[-1] == 50.0
    assert overlay_series(compile_overlay("change(5)"), closes)[-1] == 0.0


# -- overlays: expressions of the language over one coin's candles -----------------------------------


def test_an_overlay_is_computed_at_every_candle() -> None:
    closes = np.arange(1.0, 31.0)
    band = compile_overlay("(bb_upper(5, 2) + bb_lower(5, 2)) / 2")
    np.testing.assert_allclose(
        overlay_series(band, closes), overlay_series(compile_overlay("sma(5)"), closes), equal_nan=True
    )
    spread = overlay_series(compile_overlay("price - sma(3)"), closes)
    assert np.isnan(spread[:2]).all()
    np.testing.assert_allclose(spread[2:], 1.0)  # each close is one above the mean of the last three


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("sma(20) > price", "an overlay is a number", 1),
        ("sma(20) + market_cap", "no market_cap", 11),
        ("sma(0)", "sma", None),
        ("sma(20", "", None),
    ],
)
def test_an_overlay_that_is_not_a_number_of_candles_is_refused(text: str, message: str, column) -> None:
    with pytest.raises(ConditionError) as refused:
        compile_overlay(text)
    assert message in refused.value.message
    if column is not None:
        assert refused.value.column == column


def test_recursive_indicators_warm_up_longer() -> None:
    assert warmup(compile_overlay("sma(20)")) == 20
    assert warmup(compile_overlay("ema(20) + sma(50)")) == 50 + 10 * 20
    assert warmup(compile_overlay("price")) == 0
