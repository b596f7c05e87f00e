"""The condition language: what a strategy's condition may say, and how it is checked and evaluated.

* :func:`analyze` validates a condition's text and tells what it uses (fields, indicators, history);
* :func:`compile_condition` (cached per text) gives a :class:`CompiledCondition` whose
  :meth:`~CompiledCondition.evaluate` runs it over all coins at once and never raises.

Pure and synchronous: no threads, no I/O. The language is documented for users in docs/conditions.md;
the indicator maths is in :mod:`ubot.rules.indicators` (over a matrix of closes) and
:mod:`ubot.rules.incremental` (state advanced once per closed candle, what the Scanner uses).
"""

from ubot.rules.compiler import CompiledCondition, EvalResult, compile_condition
from ubot.rules.language import IndicatorCall
from ubot.rules.validate import Analysis, ConditionError, analyze

__all__ = [
    "Analysis",
    "CompiledCondition",
    "ConditionError",
    "EvalResult",
    "IndicatorCall",
    "analyze",
    "compile_condition",
]
