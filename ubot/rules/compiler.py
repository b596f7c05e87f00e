"""Compiling a validated condition, and evaluating it over all coins at once.

How evaluation works, and why asteval is the *second* wall and not the evaluator of the user's text:

asteval's own handlers for ``and``/``or``/``not``, chained comparisons and ``/`` follow Python's
semantics, which are wrong for a condition over many coins: ``rsi(14) < 30 and price > 1`` on arrays
raises "truth value of an array is ambiguous", ``btc_dominance / 0`` raises ZeroDivisionError for the
whole strategy, and ``not nan_value`` would be True. So the checked tree (see :mod:`.validate`) is
*lowered* into a call tree of the operations in :mod:`.kernel`, one call per node::

    rsi(14) < 30 and percent_change_24h < -10
    ->  op_and(op_lt(ind_0, 30.0), op_lt(percent_change_24h, op_neg(10.0)))

The lowering knows only the whitelisted node types (anything else is an error, a second whitelist)
and emits nothing but names from fixed tables, ``lit_<k>`` for each literal number (lifted out into
``CompiledCondition.literals``: the text without them, the *shape*, is shared by every condition that
differs only in its numbers, so the Scanner evaluates such conditions together with the literals as
arrays; :meth:`Evaluator.evaluate` accepts only finite float64 numbers there) and the float ``**``
exponents (validated small whole numbers, part of the shape). asteval then evaluates that text,
configured as the reference (shared/reference/condition-sandbox.md, section 3) asks:

* a fresh ``Interpreter`` per evaluation (no state survives between evaluations or strategies);
* ``minimal=True``, ``use_numpy=False`` and an explicit ``symtable``: only the ``op_*`` operations and
  the condition's own values; ``print`` (which asteval always adds) is removed; no ``open``, no
  numpy file readers, no ``dir``/``format``/``id``;
* every node type disabled except Module, Expr, Call, Name and Constant: no attributes, subscripts,
  assignments, f-strings, lambdas or comprehensions even if something slipped through;
* all symbols read-only, the values read-only copies (``flags.writeable = False``);
* ``numpy.errstate(all="ignore")``, every exception caught, asteval's ``error`` list checked, and
  asteval's messages (which quote arguments) never shown to the user.

The call tree is evaluated once per tick with whole arrays, so asteval's cost depends on the size of
the condition, not on the number of coins. Measured here (2 cores, numpy 2.4): 0.15 ms for
``rsi(14) < 30 and percent_change_24h < -10`` over 5,000 coins, of which about 0.1 ms is building a
fresh interpreter and parsing the program.

The Scanner evaluates thousands of strategies per tick, so it uses an :class:`Evaluator`: one
interpreter for a batch of evaluations in one thread, and each program parsed once (the parsed tree of
our own lowered text, cached on the compiled condition). That departs from "a fresh interpreter per
evaluation" (shared/reference/condition-sandbox.md, section 3) on purpose: the reason for that advice
is state tampering between evaluations (rebinding a name, writing into an array), and here no node
that could do either can run (only Module, Expr, Call, Name and Constant are enabled, every symbol is
read-only, every array is read-only), the text run is never the user's, and the inputs of one
evaluation are removed before the next. ``bench/scanner.py`` measures the difference.

No time limit or subprocess around evaluation (the reference's point 6): a validated condition has no
loops, at most 150 nodes and only O(coins) vectorised operations, so its cost is bounded by
construction; the largest conditions the limits allow take about 1.5 ms for 5,000 coins.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import io
import logging
import re
import sys
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from asteval import Interpreter
from asteval.asteval import ALL_NODES

from ubot.rules.kernel import OPERATIONS, Faults, make_operations
from ubot.rules.language import COIN_FIELDS, FIELDS, INDICATORS, MAX_INDICATORS, MAX_NODES, IndicatorCall
from ubot.rules.validate import Analysis, ConditionError, check

log = logging.getLogger(__name__)

#: Cached compiled conditions (distinct texts); a strategy's text is compiled once.
CACHE_SIZE = 4096
#: Node types asteval may run: exactly what the lowering emits.
_ASTEVAL_NODES = ("module", "expr", "call", "name", "constant")
_ASTEVAL_CONFIG = {node: node in _ASTEVAL_NODES for node in ALL_NODES}
#: Every name a compiled program's inputs can have (read-only in an :class:`Evaluator`): fields,
#: indicators, and the literals lifted out of a shape (at most one per node).
_INPUT_NAMES = (
    set(FIELDS) | {f"ind_{k}" for k in range(MAX_INDICATORS)} | {f"lit_{k}" for k in range(MAX_NODES)}
)
_LITERAL = re.compile(r"\blit_(\d+)\b")

_BINARY = {ast.Add: "op_add", ast.Sub: "op_sub", ast.Mult: "op_mul", ast.Div: "op_div", ast.Pow: "op_pow"}
_COMPARE = {
    ast.Lt: "op_lt",
    ast.LtE: "op_le",
    ast.Gt: "op_gt",
    ast.GtE: "op_ge",
    ast.Eq: "op_eq",
    ast.NotEq: "op_ne",
}
_MATH = {"abs": "op_abs", "min": "op_min", "max": "op_max"}
UNEVALUABLE = "the condition could not be evaluated"


@dataclass(frozen=True, eq=False)
class EvalResult:
    """The outcome for every coin: ``matched`` (False where undefined), ``undefined`` (no result), and
    ``error``: why some coins had no result, for the strategy's owner (None when all had one).
    ``causes``: each reason with the coins it affects (a boolean mask, or a 0-d one for all coins),
    so a caller that looks at a subset of the coins can say why for that subset (:meth:`error_for`)."""

    matched: np.ndarray
    undefined: np.ndarray
    error: str | None = None
    causes: Mapping[str, np.ndarray] = field(default_factory=dict)

    def error_for(self, coins: np.ndarray) -> str | None:
        """The error as it concerns only ``coins`` (positions into the arrays)."""
        undefined = self.undefined[coins]
        if not undefined.any():
            return None
        if not self.causes:
            return self.error
        size = len(self.undefined)
        reasons = [
            m for m, mask in self.causes.items() if (np.broadcast_to(mask, size)[coins] & undefined).any()
        ]
        return "; ".join(reasons) or self.error


def _result(
    matched: np.ndarray,
    undefined: np.ndarray,
    error: str | None,
    causes: Mapping[str, np.ndarray] | None = None,
) -> EvalResult:
    matched = np.array(matched, dtype=bool)
    undefined = np.array(undefined, dtype=bool)
    matched.flags.writeable = False
    undefined.flags.writeable = False
    return EvalResult(matched=matched, undefined=undefined, error=error, causes=dict(causes or {}))


def _failed(coins: int, error: str) -> EvalResult:
    return _result(np.zeros(coins, dtype=bool), np.ones(coins, dtype=bool), error)


class _Shape:
    """What every condition of one shape shares (one object per shape in use, :func:`_shape_of`)."""

    def __init__(self, shape: str, inputs: tuple[tuple[str, str, str], ...], analysis: Analysis) -> None:
        self.shape = sys.intern(shape)
        self.inputs = inputs
        self.key = (self.shape, tuple(key for _, key, _ in inputs))
        self.fields = analysis.fields
        self.indicators = analysis.indicators
        self.calls = {str(call): call for call in analysis.indicators}

    @functools.cached_property
    def tree(self) -> ast.Module:
        return ast.fix_missing_locations(ast.parse(self.shape, mode="exec"))


def _shape_of(shape: str, inputs: tuple[tuple[str, str, str], ...], analysis: Analysis) -> _Shape:
    """The one :class:`_Shape` of (``shape``, ``inputs``)."""
    shared = _SHARED.get((shape, inputs))
    if shared is None:
        if len(_SHARED) >= CACHE_SIZE * 16:  # only memory is at stake: start again
            _SHARED.clear()
        shared = _SHARED.setdefault((shape, inputs), _Shape(shape, inputs, analysis))
    return shared


#: (shape, inputs) -> what the compiled conditions of that shape share; a few per shape in use.
_SHARED: dict[tuple, _Shape] = {}


@dataclass(frozen=True, eq=False, slots=True, weakref_slot=True)
class CompiledCondition:
    """A valid condition, ready to evaluate. Immutable and shareable between threads.

    Slotted, with everything its shape determines held once per shape (:class:`_Shape`): the
    Scanner holds one per strategy, 100,000 of them and more."""

    analysis: Analysis
    #: The lowered call tree with its literal numbers lifted out as ``lit_0``, ``lit_1``, ... (see
    #: :attr:`shape_key`): what asteval runs.
    shape: str
    #: (symbol in ``program``, key in ``values``, what to tell the user when it is undefined).
    inputs: tuple[tuple[str, str, str], ...]
    #: The lifted literals, in order (``lit_k`` is ``literals[k]``); finite floats only.
    literals: tuple[float, ...] = ()
    _shared: _Shape | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._shared is None:
            object.__setattr__(self, "_shared", _shape_of(self.shape, self.inputs, self.analysis))

    @property
    def program(self) -> str:
        """The lowered call tree with the literals written in (what :meth:`evaluate` runs)."""
        return _LITERAL.sub(lambda m: repr(self.literals[int(m[1])]), self.shape)

    @property
    def shape_key(self) -> tuple:
        """Conditions with equal keys differ only in their literals, and can be evaluated as one
        program with the literals as arrays (:meth:`Evaluator.evaluate`). Indicator arguments and
        exponents are part of the shape (an indicator's period selects its series)."""
        assert self._shared is not None
        return self._shared.key

    @property
    def text(self) -> str:
        return self.analysis.text

    @property
    def indicators(self) -> tuple[IndicatorCall, ...]:
        return self.analysis.indicators

    @property
    def calls(self) -> Mapping[str, IndicatorCall]:
        """Each indicator call by its canonical text (the key of its values); shared by the shape,
        read-only."""
        assert self._shared is not None
        return self._shared.calls

    def evaluate(self, values: Mapping[str, np.ndarray | float], *, coins: int | None = None) -> EvalResult:
        """Evaluate for every coin. ``values`` maps each field name and each indicator's canonical string
        (``"rsi(14)"``) to an array with one value per coin (or one number, for global fields).

        ``coins`` defaults to the length of the arrays in ``values``. Never raises: a bad input gives
        no match for any coin and an ``error``.
        """
        try:
            return self._evaluate(values, coins)
        except Exception:  # a bug here must not stop the caller's loop over strategies
            log.exception("condition %r: evaluation failed", self.text)
            return _failed(coins if isinstance(coins, int) and coins >= 0 else 0, UNEVALUABLE)

    def _evaluate(self, values: Mapping[str, np.ndarray | float], coins: int | None) -> EvalResult:
        if coins is None:
            coins = _count_coins(values, [key for _, key, _ in self.inputs])
            if coins is None:
                return _failed(0, "the market data given for this condition is inconsistent")
        faults = Faults()
        symbols: dict[str, object] = make_operations(faults)
        problem = self._bind(values, coins, faults, symbols)
        if problem is not None:
            return _failed(coins, problem)
        with np.errstate(all="ignore"):
            outcome = _run(self.program, symbols)
        return _outcome(outcome, coins, faults)

    def numbers(self, values: Mapping[str, np.ndarray | float], coins: int) -> np.ndarray:
        """The value of a compiled expression (:func:`compile_expression`) for each of ``coins``
        (NaN where undefined): a chart's overlay passes the candles as the coins."""
        faults = Faults()
        symbols: dict[str, object] = make_operations(faults)
        if self._bind(values, coins, faults, symbols) is not None:
            return np.full(coins, np.nan)
        with np.errstate(all="ignore"):
            outcome = _run(self.program, symbols)
        if outcome is None:
            return np.full(coins, np.nan)
        return np.array(np.broadcast_to(outcome, (coins,)), dtype=np.float64)

    def _bind(
        self, values: Mapping[str, np.ndarray | float], coins: int, faults: Faults, symbols: dict[str, object]
    ) -> str | None:
        """Put this condition's inputs into ``symbols`` (read-only float arrays); the problem, or None."""
        for symbol, key, missing in self.inputs:
            value = values.get(key) if isinstance(values, Mapping) else None
            if value is None:
                return f"{key} is not available"
            array = _read_only(value, coins)
            if array is None:
                return f"{key} is not available"
            faults.add(missing, np.isnan(array))
            symbols[symbol] = array
        return None

    @property
    def tree(self) -> ast.Module:
        """The parsed ``shape`` (parsed once per shape; it is our own lowered text, never the user's)."""
        assert self._shared is not None
        return self._shared.tree


def _outcome(outcome: np.ndarray | None, coins: int, faults: Faults) -> EvalResult:
    if outcome is None:
        return _failed(coins, UNEVALUABLE)
    truth = np.broadcast_to(outcome, (coins,))
    undefined = np.isnan(truth)
    error = faults.explain(undefined) if undefined.any() else None
    if undefined.any() and error is None:
        error = UNEVALUABLE  # pragma: no cover - every NaN has a recorded cause
    return _result(truth == 1.0, undefined, error, faults.found)


class Evaluator:
    """Evaluates compiled conditions one after another in a single asteval interpreter (one thread).

    For the Scanner's batches: building an interpreter and parsing a program cost more than running
    a typical condition, so both are done once (see the module docstring for why this is safe).
    ``evaluate`` never raises, like :meth:`CompiledCondition.evaluate`.
    """

    def __init__(self) -> None:
        self.faults = Faults()
        symbols: dict[str, object] = make_operations(self.faults)
        self._operations = frozenset(symbols)
        self.interpreter = _interpreter(symbols, readonly=set(symbols) | _INPUT_NAMES)

    def evaluate(
        self,
        condition: CompiledCondition,
        values: Mapping[str, np.ndarray | float],
        coins: int,
        literals: Sequence[np.ndarray] | None = None,
    ) -> EvalResult:
        """``condition``'s shape over ``coins`` elements. ``literals`` (default: the condition's own):
        one float64 array per lifted literal, one number per element, so that one evaluation serves
        every (strategy, coin) pair of the strategies that share this shape; they must be finite
        numbers (anything else is refused: a literal is a value, never code)."""
        try:
            return self._evaluate(condition, values, coins, literals)
        except Exception:
            log.exception("condition %r: evaluation failed", condition.text)
            return _failed(coins, UNEVALUABLE)
        finally:
            symtable = self.interpreter.symtable
            for symbol, _, _ in condition.inputs:
                symtable.pop(symbol, None)
            for k in range(len(condition.literals)):
                symtable.pop(f"lit_{k}", None)

    def _evaluate(
        self,
        condition: CompiledCondition,
        values: Mapping[str, np.ndarray | float],
        coins: int,
        literals: Sequence[np.ndarray] | None,
    ) -> EvalResult:
        self.faults.found = {}
        symtable = self.interpreter.symtable
        if any(name not in symtable for name in self._operations):  # never: symbols are read-only
            raise RuntimeError("an operation disappeared from the evaluator")
        if literals is None:
            literals = [np.float64(value) for value in condition.literals]
        if not _numbers(literals, len(condition.literals), coins):
            log.error("refused literals for a compiled condition: %.200s", condition.shape)
            return _failed(coins, UNEVALUABLE)
        problem = condition._bind(values, coins, self.faults, symtable)
        if problem is not None:
            return _failed(coins, problem)
        for k, array in enumerate(literals):
            symtable[f"lit_{k}"] = array
        with np.errstate(all="ignore"):
            try:
                outcome = self.interpreter.eval(condition.tree, show_errors=False, raise_errors=True)
            except Exception as exc:
                log.error(
                    "asteval failed on a compiled condition (%s): %.200s",
                    type(exc).__name__,
                    condition.shape,
                )
                return _failed(coins, UNEVALUABLE)
        if self.interpreter.error or not isinstance(outcome, np.ndarray | float) or isinstance(outcome, bool):
            log.error("asteval failed on a compiled condition: %.200s", condition.shape)
            return _failed(coins, UNEVALUABLE)
        return _outcome(np.asarray(outcome, dtype=np.float64), coins, self.faults)


def _numbers(literals: Sequence[object], count: int, coins: int) -> bool:
    """True when ``literals`` are ``count`` read-only-able float64 arrays (or numbers), each a single
    number or one per element, all finite. Marks the arrays read-only."""
    if len(literals) != count:
        return False
    for array in literals:
        if not isinstance(array, np.ndarray | np.float64) or array.dtype != np.float64:
            return False
        if array.ndim > 1 or (array.ndim == 1 and array.shape[0] != coins) or not np.isfinite(array).all():
            return False
        if isinstance(array, np.ndarray):
            array.flags.writeable = False
    return True


def _count_coins(values: Mapping[str, object], used: list[str]) -> int | None:
    """The common length of the 1-D arrays in ``values`` (those the condition uses first); 1 if none."""
    if not isinstance(values, Mapping):
        return None
    lengths = {np.shape(values[key])[0] for key in used if key in values and np.ndim(values[key]) == 1}
    if not lengths:
        lengths = {len(v) for v in values.values() if isinstance(v, np.ndarray) and v.ndim == 1}
    if len(lengths) > 1:
        return None
    return lengths.pop() if lengths else 1


def _read_only(value: object, coins: int) -> np.ndarray | None:
    """A read-only float64 copy (NaN for infinities), or None if it is not numbers of the right shape."""
    try:
        array = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError, OverflowError):
        return None
    if array.ndim > 1 or (array.ndim == 1 and array.shape[0] != coins):
        return None
    array[~np.isfinite(array)] = np.nan
    array.flags.writeable = False
    return array


def _run(program: str, symbols: dict[str, object]) -> np.ndarray | None:
    """Evaluate the lowered ``program`` with asteval; the outcome as a float array, or None on failure."""
    outcome, problem = interpret(program, symbols)
    if problem is not None:  # a compiled program always runs: this is a bug, for the operator's log
        log.error("asteval failed on a compiled condition (%s): %.200s", problem, program)
    return outcome


def _interpreter(symbols: dict[str, object], readonly: set[str]) -> Interpreter:
    interpreter = Interpreter(
        symtable=symbols,
        use_numpy=False,
        minimal=True,
        config=_ASTEVAL_CONFIG,
        readonly_symbols=readonly,
        builtins_readonly=True,
        max_statement_length=100_000,
        writer=io.StringIO(),
        err_writer=io.StringIO(),
    )
    interpreter.symtable.pop("print", None)  # asteval adds its printer to any symbol table
    return interpreter


def interpret(program: str, symbols: dict[str, object]) -> tuple[np.ndarray | None, str | None]:
    """Run ``program`` in a fresh, minimal asteval interpreter over ``symbols`` (and nothing else).

    Returns (outcome as a float array, None), or (None, the kind of failure). Never raises.
    """
    try:
        interpreter = _interpreter(symbols, readonly=set(symbols))
        outcome = interpreter.eval(program, show_errors=False, raise_errors=True)
    except Exception as exc:
        return None, type(exc).__name__
    if interpreter.error:
        return None, "error"
    if not isinstance(outcome, np.ndarray | float) or isinstance(outcome, bool):
        return None, "not a number"
    return np.asarray(outcome, dtype=np.float64), None


# -- lowering --------------------------------------------------------------------------------------


class _Lowering:
    """Checked tree -> call-tree text over ``op_*``, field names, ``ind_<k>``, ``lit_<k>`` (the literals
    lifted out, in ``literals``) and float exponents."""

    def __init__(self, indicators: tuple[IndicatorCall, ...]) -> None:
        self.symbols = {call: f"ind_{index}" for index, call in enumerate(indicators)}
        self.literals: list[float] = []

    def lower(self, node: ast.AST) -> str:
        if isinstance(node, ast.BoolOp):
            function = "op_and" if isinstance(node.op, ast.And) else "op_or"
            return self.apply(function, node.values)
        if isinstance(node, ast.UnaryOp):
            operand = self.lower(node.operand)
            if isinstance(node.op, ast.Not):
                return f"op_not({operand})"
            if isinstance(node.op, ast.USub):
                return f"op_neg({operand})"
            if isinstance(node.op, ast.UAdd):
                return operand
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            # The exponent stays in the shape: a small whole number written directly (validated).
            return f"op_pow({self.lower(node.left)}, {float(ast.literal_eval(node.right))!r})"
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return self.apply(_BINARY[type(node.op)], [node.left, node.right])
        elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
            operands = [node.left, *node.comparators]
            parts = [
                self.apply(_COMPARE[type(op)], [left, right])
                for op, left, right in zip(node.ops, operands, operands[1:])
            ]
            return parts[0] if len(parts) == 1 else f"op_and({', '.join(parts)})"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in _MATH:
                return self.apply(_MATH[name], node.args)
            if name in INDICATORS:
                return self.symbols[self.call_of(node)]
        elif isinstance(node, ast.Name) and node.id in FIELDS:
            return node.id
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
            self.literals.append(float(node.value))  # lifted: the shape says where, not what
            return f"lit_{len(self.literals) - 1}"
        raise ConditionError("internal error: the condition uses something the compiler does not know")

    def apply(self, function: str, nodes: list[ast.AST]) -> str:
        return f"{function}({', '.join(self.lower(node) for node in nodes)})"

    def call_of(self, node: ast.Call) -> IndicatorCall:
        """The validated call this node is (the validator checked its literal arguments)."""
        args = []
        for param, arg in zip(INDICATORS[node.func.id].params, node.args):
            value = ast.literal_eval(arg)  # a number with an optional sign, checked already
            args.append(int(value) if param.whole else float(value))
        return IndicatorCall(node.func.id, tuple(args))


@functools.lru_cache(maxsize=CACHE_SIZE)
def compile_condition(text: str) -> CompiledCondition:
    """Validate and compile ``text`` (cached per text). Raises :class:`ConditionError`.

    Beyond the cache, a text compiled before and still held by someone (the Scanner's planner and
    the worker that owns the strategy both hold it) is that same object, not a second copy: with
    100,000 strategies of distinct texts, two copies of each were a third of the Scanner's memory."""
    live = _LIVE.get(text)
    if live is not None:
        return live
    compiled = _compile(text, number=False)
    _LIVE[text] = compiled
    return compiled


#: Every compiled condition still referenced somewhere, by text (entries leave with their condition).
_LIVE: weakref.WeakValueDictionary[str, CompiledCondition] = weakref.WeakValueDictionary()


@functools.lru_cache(maxsize=256)
def compile_expression(text: str) -> CompiledCondition:
    """Validate and compile ``text`` as a number, not a condition (a chart's overlay: ``sma(20)``,
    ``(bb_upper(20, 2) + bb_lower(20, 2)) / 2``); evaluated with :meth:`CompiledCondition.numbers`.
    Raises :class:`ConditionError`."""
    return _compile(text, number=True)


def _compile(text: str, number: bool) -> CompiledCondition:
    analysis, tree = check(text, number=number)
    lowering = _Lowering(analysis.indicators)
    shape = lowering.lower(tree.body)
    inputs = [(field, field, _missing_field(field)) for field in analysis.fields]
    inputs += [
        (symbol, str(call), f"{call} needs {call.lookback} candles of history")
        for call, symbol in lowering.symbols.items()
    ]
    assert all(symbol not in OPERATIONS for symbol, _, _ in inputs)
    literals = tuple(lowering.literals)
    assert all(np.isfinite(literals)), "the validator lets only finite literals through"
    # Strategies that differ only in their numbers share one shape, one inputs tuple, and the
    # analysis' field and indicator tuples (memory).
    shared = _shape_of(shape, tuple(inputs), analysis)
    if shared.fields == analysis.fields and shared.indicators == analysis.indicators:
        analysis = dataclasses.replace(analysis, fields=shared.fields, indicators=shared.indicators)
    return CompiledCondition(
        analysis=analysis, shape=shared.shape, literals=literals, inputs=shared.inputs, _shared=shared
    )


def _missing_field(field: str) -> str:
    return f"{field} is not available for some coins" if field in COIN_FIELDS else f"{field} is not available"
