"""The operations a compiled condition is made of, over numpy arrays with one element per coin.

Every value is a float64 array (or a 0-d array for a market-wide number). ``NaN`` means *undefined*
(a missing field, an indicator without enough history, a division by zero, an overflow), and
true/false values are encoded as ``1.0`` / ``0.0`` / ``NaN`` so that "undefined" survives logic:

* comparisons with an undefined side are undefined (not False: ``not (rsi(14) < 30)`` must not match
  a coin that has no RSI);
* ``and`` is False as soon as one side is False, otherwise undefined if one side is undefined;
  ``or`` is True as soon as one side is True, otherwise undefined if one side is (Kleene logic);
* ``not`` keeps undefined undefined.

Faults are recorded with the coins they affect (:class:`Faults`) so that the caller can tell the user
why a coin had no result. Nothing here raises for any float input; numpy warnings are silenced.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import reduce

import numpy as np

DIVISION_BY_ZERO = "division by zero"
OVERFLOW = "a number is too large (overflow)"


class Faults:
    """Reasons for undefined values, each with the coins (a boolean mask, or a 0-d one) it affects."""

    def __init__(self) -> None:
        self.found: dict[str, np.ndarray] = {}

    def add(self, message: str, mask: np.ndarray) -> None:
        if not mask.any():
            return
        previous = self.found.get(message)
        self.found[message] = mask if previous is None else previous | mask

    def explain(self, undefined: np.ndarray) -> str | None:
        """The reasons that touch at least one coin without a result, in the order they were found."""
        reasons = [message for message, mask in self.found.items() if (mask & undefined).any()]
        return "; ".join(reasons) or None


def _array(value: object) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _truth(condition: np.ndarray, *operands: np.ndarray) -> np.ndarray:
    """``condition`` as 1.0/0.0, NaN where any operand is NaN."""
    undefined = reduce(np.logical_or, (np.isnan(operand) for operand in operands))
    return np.where(undefined, np.nan, condition.astype(np.float64))


def make_operations(faults: Faults) -> dict[str, Callable[..., np.ndarray]]:
    """The operations for one evaluation, recording their faults in ``faults``. Named ``op_*``."""

    def finite(result: np.ndarray, *operands: np.ndarray) -> np.ndarray:
        result = _array(result)
        overflow = ~np.isfinite(result) & reduce(np.logical_and, (~np.isnan(o) for o in operands))
        faults.add(OVERFLOW, overflow)
        return np.where(np.isfinite(result), result, np.nan)

    def arithmetic(function: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
        def operation(left: object, right: object) -> np.ndarray:
            a, b = _array(left), _array(right)
            with np.errstate(all="ignore"):
                return finite(function(a, b), a, b)

        return operation

    def divide(left: object, right: object) -> np.ndarray:
        a, b = _array(left), _array(right)
        zero = b == 0.0
        faults.add(DIVISION_BY_ZERO, zero & ~np.isnan(a))
        with np.errstate(all="ignore"):
            return finite(np.where(zero, np.nan, a / np.where(zero, 1.0, b)), a, np.where(zero, np.nan, b))

    def power(base: object, exponent: object) -> np.ndarray:
        a = _array(base)
        with np.errstate(all="ignore"):
            result = np.power(a, float(exponent))
        return finite(np.where(np.isnan(a), np.nan, result), a)  # IEEE says nan ** 0 == 1: not here

    def negative(value: object) -> np.ndarray:
        return np.negative(_array(value))

    def absolute(value: object) -> np.ndarray:
        return np.abs(_array(value))

    def minimum(*values: object) -> np.ndarray:
        return reduce(np.minimum, (_array(v) for v in values))  # NaN propagates

    def maximum(*values: object) -> np.ndarray:
        return reduce(np.maximum, (_array(v) for v in values))

    def comparison(function: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
        def operation(left: object, right: object) -> np.ndarray:
            a, b = _array(left), _array(right)
            with np.errstate(all="ignore"):
                return _truth(function(a, b), a, b)

        return operation

    def both(*values: object) -> np.ndarray:
        arrays = [_array(v) for v in values]
        false = reduce(np.logical_or, (a == 0.0 for a in arrays))
        return np.where(false, 0.0, reduce(np.minimum, arrays))  # 1.0, or NaN if one is undefined

    def either(*values: object) -> np.ndarray:
        arrays = [_array(v) for v in values]
        true = reduce(np.logical_or, (a == 1.0 for a in arrays))
        return np.where(true, 1.0, reduce(np.maximum, arrays))  # 0.0, or NaN if one is undefined

    def negation(value: object) -> np.ndarray:
        return 1.0 - _array(value)

    return {
        "op_add": arithmetic(np.add),
        "op_sub": arithmetic(np.subtract),
        "op_mul": arithmetic(np.multiply),
        "op_div": divide,
        "op_pow": power,
        "op_neg": negative,
        "op_abs": absolute,
        "op_min": minimum,
        "op_max": maximum,
        "op_lt": comparison(np.less),
        "op_le": comparison(np.less_equal),
        "op_gt": comparison(np.greater),
        "op_ge": comparison(np.greater_equal),
        "op_eq": comparison(np.equal),
        "op_ne": comparison(np.not_equal),
        "op_and": both,
        "op_or": either,
        "op_not": negation,
    }


#: The names of the operations, for the compiler (the functions themselves are made per evaluation).
OPERATIONS: frozenset[str] = frozenset(make_operations(Faults()))
