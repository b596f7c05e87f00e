"""The vocabulary of the condition language and its limits: one table that validation, evaluation and
docs/conditions.md agree on.

A condition is a Python *expression* restricted to: numbers, the coin and global fields below, the
functions below (indicators with literal arguments, plus ``abs``/``min``/``max``), arithmetic
``+ - * /`` and ``**`` with a small literal exponent, comparisons (chained too), ``and``/``or``/``not``
and parentheses. Why each limit is what it is:

* ``MAX_LENGTH`` 500 characters: a long strategy is a few comparisons (~20 characters each), and the
  cap keeps Python's parser far from its own limits (it raises MemoryError / RecursionError, not
  SyntaxError, on tens of thousands of nested operators).
* ``MAX_NODES`` 150 and ``MAX_DEPTH`` 30: a few dozen nodes is a large real condition; a bound on
  both keeps validation and evaluation (one numpy pass per node) cheap and recursion shallow.
* ``MAX_INDICATORS`` 10 distinct indicator calls: each is a vectorised pass over every coin's candles.
* Indicator periods 1..500 (``rsi`` and Bollinger bands from 2): longer periods need more candles than
  are kept, shorter ones are degenerate. Bollinger ``k`` 0.5..5 standard deviations.
* Numbers: decimal, at most ``MAX_LITERAL_CHARS`` characters and magnitude ``MAX_LITERAL``
  (1e18, above any market cap or supply); no hex/octal/binary (unbounded in Python) or complex.
* ``**``: only a whole literal exponent 0..4 (``x ** 2``); anything else is the classic
  ``9**9**9`` CPU/memory bomb. ``%``, ``//`` and bit operators are not part of the language.
* ``min``/``max``: 2..10 arguments.

Spaces, tabs and line breaks separate tokens (a condition may be written on several lines); it is
stored normalised (:func:`normalize`), on one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from ubot.market.snapshot import GLOBAL_FIELDS as _GLOBAL_FIELDS
from ubot.market.snapshot import NUMERIC_FIELDS
from ubot.rules import indicators

MAX_LENGTH = 500
MAX_NODES = 150
MAX_DEPTH = 30
MAX_INDICATORS = 10
MAX_LITERAL = 1e18
MAX_LITERAL_CHARS = 40
MAX_POWER = 4
MIN_MAX_ARGS = (2, 10)

#: Per-coin fields: ``rank`` and the numeric fields of the coin's latest quote and supply.
COIN_FIELDS: tuple[str, ...] = NUMERIC_FIELDS
#: Market-wide fields: one number for all coins.
GLOBAL_FIELDS: tuple[str, ...] = _GLOBAL_FIELDS
FIELDS: frozenset[str] = frozenset(COIN_FIELDS) | frozenset(GLOBAL_FIELDS)


def normalize(text: str) -> str:
    """A condition as it is stored: each run of spaces, tabs and line breaks one space, none at the
    ends (``rsi(14) <\r\n 30`` is ``rsi(14) < 30``). Whitespace only separates tokens, so the
    meaning is the same; the stored text then fits on one line of a log, an alert or an e-mail."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Param:
    """One argument of an indicator: a literal number in ``low..high`` (whole when ``whole``)."""

    name: str
    low: float
    high: float
    whole: bool = True

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a number"
        return f"{kind} from {number_text(self.low)} to {number_text(self.high)}"


@dataclass(frozen=True)
class Function:
    """An indicator: its literal parameters, and an example call for error messages."""

    name: str
    params: tuple[Param, ...]
    example: str

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(p.name for p in self.params)})"


_N = Param("n", 1, 500)
_N2 = Param("n", 2, 500)
_K = Param("k", 0.5, 5, whole=False)

#: Indicator functions, in the order error messages and the docs list them.
INDICATORS: dict[str, Function] = {
    f.name: f
    for f in (
        Function("sma", (_N,), "sma(20)"),
        Function("ema", (_N,), "ema(50)"),
        Function("rsi", (_N2,), "rsi(14)"),
        Function("macd", (), "macd()"),
        Function("macd_signal", (), "macd_signal()"),
        Function("bb_upper", (_N2, _K), "bb_upper(20, 2)"),
        Function("bb_lower", (_N2, _K), "bb_lower(20, 2)"),
        Function("highest", (_N,), "highest(24)"),
        Function("lowest", (_N,), "lowest(24)"),
        Function("change", (_N,), "change(24)"),
    )
}
#: Plain maths over numbers (any expressions as arguments).
MATH_FUNCTIONS: dict[str, tuple[int, int]] = {"abs": (1, 1), "min": MIN_MAX_ARGS, "max": MIN_MAX_ARGS}
FUNCTION_NAMES: tuple[str, ...] = (*INDICATORS, *MATH_FUNCTIONS)

assert set(INDICATORS) == set(indicators.FUNCTIONS)


def number_text(value: float) -> str:
    """``2.0`` as ``2``, ``2.5`` as ``2.5``: how numbers appear in canonical forms and messages."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


@dataclass(frozen=True)
class IndicatorCall:
    """One indicator with its arguments, e.g. ``IndicatorCall("rsi", (14,))``; ``str()`` is ``"rsi(14)"``.

    The string form is canonical (``bb_upper(20, 2.0)`` and ``bb_upper(20, 2)`` are both
    ``"bb_upper(20, 2)"``): it is the key of the indicator's values in ``evaluate()``'s input and what
    a strategy stores as "the indicators it uses".
    """

    name: str
    args: tuple[int | float, ...] = ()

    def __str__(self) -> str:
        return f"{self.name}({', '.join(number_text(a) for a in self.args)})"

    @property
    def lookback(self) -> int:
        """Candles of history needed for a value."""
        return indicators.lookback(self.name, *self.args)
