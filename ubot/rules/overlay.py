"""A chart's overlays: expressions of the condition language that are numbers, not conditions
(``sma(20)``, ``bb_upper(20, 2)``, ``(highest(24) + lowest(24)) / 2``), computed at every candle of
one coin.

The expression is validated and compiled by the condition language's own code
(:func:`~ubot.rules.compiler.compile_expression`), each indicator's values over time come from
:class:`ubot.rules.series.Series` (the dry run's: one vectorised pass, the live state's values), read
at each candle over the candles up to and including it, and the compiled program runs once with the
candles as its "coins". Only ``price`` (each candle's close) and indicators make sense on a candle: any other field
is refused, naming it and its column.
"""

from __future__ import annotations

import re

import numpy as np

from ubot.rules.compiler import CompiledCondition, compile_expression
from ubot.rules.series import Series
from ubot.rules.validate import ConditionError

#: The fields an overlay may use: the candle's close.
OVERLAY_FIELDS = ("price",)
#: Candles fetched before the first one shown, for the recursive indicators (EMA, RSI, MACD), whose
#: value depends on every candle since their seed: after this many more than the lookback their
#: start has faded below 1e-4 of the value for periods up to 100.
WARMUP_FACTOR = 10
MAX_WARMUP = 5000
_RECURSIVE = frozenset({"ema", "rsi", "macd", "macd_signal"})


def compile_overlay(text: str) -> CompiledCondition:
    """Validate and compile an overlay; raises :class:`ConditionError` (message and column)."""
    compiled = compile_expression(text)
    for field in compiled.analysis.fields:
        if field not in OVERLAY_FIELDS:
            found = re.search(rf"\b{re.escape(field)}\b", text)
            raise ConditionError(
                f"an overlay is drawn on candles, which have no {field}: use price and indicators",
                found.start() + 1 if found else None,
            )
    return compiled


def warmup(compiled: CompiledCondition) -> int:
    """How many candles before the first one shown to compute from."""
    calls = compiled.indicators
    need = max((call.lookback for call in calls), default=0)
    recursive = [call for call in calls if call.name in _RECURSIVE]
    if recursive:
        need += WARMUP_FACTOR * max(call.lookback for call in recursive)
    return min(need, MAX_WARMUP)


def overlay_series(compiled: CompiledCondition, closes: np.ndarray) -> np.ndarray:
    """The overlay's value at every candle of ``closes`` (one coin, oldest first); NaN where there
    is not enough history yet."""
    closes = np.asarray(closes, dtype=np.float64)
    count = len(closes)
    values: dict[str, np.ndarray] = {"price": closes}
    if count and compiled.indicators:
        # one coin; a "tick" at each candle, with that candle and those before it closed
        over = Series(closes[np.newaxis, :], np.zeros(count, dtype=np.int64), np.arange(1, count + 1), closes)
        for call in compiled.indicators:
            values[str(call)] = over.value(call, closed_only=True)
    return compiled.numbers(values, count)
