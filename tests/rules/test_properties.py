"""Property tests: random, mutated and hostile texts.

* ``analyze`` only ever returns an Analysis or raises ConditionError, with a column inside the text;
* whatever is accepted compiles into a call tree of known names only, evaluates without exception,
  raises no audit event (no file, import, exec, frame or code access), and gives, coin by coin,
  exactly what a plain Python reference evaluator with the documented semantics gives.
"""

from __future__ import annotations

import ast
import math
import operator
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ubot.rules import Analysis, ConditionError, EvalResult, analyze, compile_condition
from ubot.rules.kernel import OPERATIONS
from ubot.rules.language import FIELDS, FUNCTION_NAMES, GLOBAL_FIELDS, IndicatorCall
from ubot.rules.validate import check

#: No "explain" phase: its tracer reads frames, which the audit hook would (rightly) report.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink]
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    phases=PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- a grammar of valid conditions -------------------------------------------------------------------

FIELD_NAMES = sorted(FIELDS)
numbers = st.one_of(
    st.integers(0, 10**6).map(str),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["0", "1", "30", "0.5", "1e-8", "1_000", ".5", "2.", "1e18"]),
)
periods = st.integers(1, 500)
indicator_calls = st.one_of(
    st.builds("sma({})".format, periods),
    st.builds("ema({})".format, periods),
    st.builds("rsi({})".format, st.integers(2, 500)),
    st.just("macd()"),
    st.just("macd_signal()"),
    st.builds("bb_upper({}, {:.2f})".format, st.integers(2, 500), st.floats(0.5, 5)),
    st.builds("bb_lower({}, {})".format, st.integers(2, 500), st.sampled_from(["0.5", "2", "5", "2.5"])),
    st.builds("highest({})".format, periods),
    st.builds("lowest({})".format, periods),
    st.builds("change({})".format, periods),
)
numeric_leaves = st.one_of(st.sampled_from(FIELD_NAMES), numbers, indicator_calls)


def _numeric_nodes(inner):
    return st.one_of(
        st.builds("({} {} {})".format, inner, st.sampled_from("+-*/"), inner),
        st.builds("-{}".format, inner),
        st.builds("abs({})".format, inner),
        st.builds(
            "{}({})".format,
            st.sampled_from(["min", "max"]),
            st.lists(inner, min_size=2, max_size=3).map(", ".join),
        ),
        st.builds("({}) ** {}".format, inner, st.integers(0, 4)),
    )


numeric = st.recursive(numeric_leaves, _numeric_nodes, max_leaves=5)
comparisons = st.builds(
    lambda first, rest: first + "".join(f" {op} {operand}" for op, operand in rest),
    numeric,
    st.lists(st.tuples(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), numeric), min_size=1, max_size=3),
)


def _boolean_nodes(inner):
    return st.one_of(
        st.builds("({} {} {})".format, inner, st.sampled_from(["and", "or"]), inner),
        st.builds("not {}".format, inner),
        st.builds("({})".format, inner),
    )


conditions = st.recursive(comparisons, _boolean_nodes, max_leaves=4)

LIMIT_MESSAGES = (
    "too long",
    "too many parts",
    "nested too deeply",
    "too many different indicators",
    "nested paren",
)

# -- values for evaluation ---------------------------------------------------------------------------

INTERESTING = [0.0, -0.0, 1.0, -1.0, 2.5, 30.0, 1e6, 1e-300, 1e300, -1e300, math.nan, math.inf, -math.inf]
value_floats = st.one_of(st.sampled_from(INTERESTING), st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def market(draw, analysis: Analysis):
    coins = draw(st.integers(1, 5))
    values: dict[str, object] = {}
    for name in analysis.fields:
        if name in GLOBAL_FIELDS:
            values[name] = draw(value_floats)
        else:
            values[name] = np.array(draw(st.lists(value_floats, min_size=coins, max_size=coins)))
    for call in analysis.indicators:
        values[str(call)] = np.array(draw(st.lists(value_floats, min_size=coins, max_size=coins)))
    return coins, values


# -- a reference evaluator: one coin at a time, plain Python, None for "undefined" -------------------

_ARITHMETIC = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide}
_COMPARE = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def _defined(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def reference(node: ast.AST, env: dict[str, float]) -> float | bool | None:
    if isinstance(node, ast.BoolOp):
        values = [reference(v, env) for v in node.values]
        if isinstance(node.op, ast.And):
            return False if False in values else (None if None in values else True)
        return True if True in values else (None if None in values else False)
    if isinstance(node, ast.UnaryOp):
        value = reference(node.operand, env)
        if value is None:
            return None
        if isinstance(node.op, ast.Not):
            return not value
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp):
        left = reference(node.left, env)
        right = reference(node.right, env)
        if left is None or right is None:
            return None
        with np.errstate(all="ignore"):
            if isinstance(node.op, ast.Pow):
                return _defined(np.power(np.array([left]), float(right))[0])
            if isinstance(node.op, ast.Div) and right == 0:
                return None
            return _defined(_ARITHMETIC[type(node.op)](np.float64(left), np.float64(right)))
    if isinstance(node, ast.Compare):
        operands = [reference(n, env) for n in [node.left, *node.comparators]]
        results = [
            None if a is None or b is None else _COMPARE[type(op)](a, b)
            for op, a, b in zip(node.ops, operands, operands[1:])
        ]
        return False if False in results else (None if None in results else True)
    if isinstance(node, ast.Call):
        name = node.func.id
        if name in ("abs", "min", "max"):
            args = [reference(a, env) for a in node.args]
            if None in args:
                return None
            return {"abs": abs, "min": min, "max": max}[name](*args)
        args = tuple(ast.literal_eval(a) for a in node.args)
        return env[str(IndicatorCall(name, args))]
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Constant):
        return float(node.value)
    raise AssertionError(f"not in the language: {ast.dump(node)}")


def coin_env(values: dict[str, object], coin: int) -> dict[str, float | None]:
    env = {}
    for key, value in values.items():
        x = float(value[coin]) if isinstance(value, np.ndarray) else float(value)
        env[key] = _defined(x)
    return env


# -- what "accepted" must mean -----------------------------------------------------------------------

_TREE_NODES = (
    ast.Expression,
    ast.BoolOp,
    ast.And,
    ast.Or,
    ast.UnaryOp,
    ast.Not,
    ast.USub,
    ast.UAdd,
    ast.BinOp,
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.Div,
    ast.Pow,
    ast.Compare,
    *_COMPARE,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
)
_PROGRAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def assert_safe_and_correct(text: str, analysis: Analysis, values, coins: int, audited, allowed) -> None:
    _, tree = check(text)
    for node in ast.walk(tree):
        assert isinstance(node, _TREE_NODES), ast.dump(node)
        if isinstance(node, ast.Name):
            assert node.id in FIELDS or node.id in FUNCTION_NAMES
        if isinstance(node, ast.Constant):
            assert type(node.value) in (int, float)
    compiled = compile_condition(text)
    names = set(_PROGRAM_NAME.findall(re.sub(r"\d+\.\d*(e[+-]?\d+)?|\d+e[+-]?\d+", "0", compiled.program)))
    indicator_symbols = {f"ind_{i}" for i in range(len(analysis.indicators))}
    assert names <= OPERATIONS | FIELDS | indicator_symbols, compiled.program
    # the number of coins comes from the arrays; a condition over market-wide numbers only says it
    given = None if any(isinstance(v, np.ndarray) for v in values.values()) else coins
    with audited() as events:
        result = compiled.evaluate(values, coins=given)
    assert set(events) <= allowed
    assert result.matched.shape == (coins,) and result.matched.dtype == bool
    assert not (result.matched & result.undefined).any()
    assert (result.error is None) == (not result.undefined.any())
    for coin in range(coins):
        expected = reference(tree.body, coin_env(values, coin))
        assert bool(result.matched[coin]) == (expected is True), (text, coin, expected)
        assert bool(result.undefined[coin]) == (expected is None), (text, coin, expected)


@SETTINGS
@given(data=st.data(), text=conditions)
def test_valid_conditions_evaluate_like_the_reference(data, text, audited, allowed_events):
    try:
        analysis = analyze(text)
    except ConditionError as error:
        assert any(limit in error.message for limit in LIMIT_MESSAGES), (text, str(error))
        return
    coins, values = data.draw(market(analysis))
    assert_safe_and_correct(text, analysis, values, coins, audited, allowed_events)


# -- mutated and hostile texts -----------------------------------------------------------------------

SNIPPETS = [
    ".__class__",
    ".__bases__[0]",
    ".__subclasses__()",
    "__import__('os')",
    "__builtins__",
    "open('/etc/passwd')",
    "loadtxt('/etc/passwd')",
    "lambda x: x",
    "lambda: 0",
    "[x for x in price]",
    "(x for x in price)",
    "{1: 2}",
    "(1, 2)",
    "[0]",
    "[:]",
    "'a'",
    'f"{price}"',
    ":=",
    "=",
    "==",
    "**",
    "** 9",
    "**9**9",
    "//",
    "%",
    "*",
    "**{}",
    "if",
    "else",
    "for",
    "in",
    "is",
    "not",
    "and",
    "or",
    "await",
    "yield",
    "True",
    "None",
    "...",
    "0x10",
    "1j",
    "1e999",
    "9" * 30,
    "(",
    ")",
    "((((((((",
    ",",
    ";",
    "\\",
    "\n",
    "\t",
    "\x00",
    "\u202e",
    "ｅｖａｌ",
    "\u00a0",
    "eval",
    "exec",
    "rsi",
    "macd",
    "price",
    "btc_dominance",
    "sma(",
    "rsi(n=14)",
    "(*price)",
    "abs(",
    "min(",
    "-",
    "not not",
    " ",
]
payloads = st.one_of(st.sampled_from(SNIPPETS), st.characters(), st.text(max_size=4))


@st.composite
def mutated(draw):
    text = draw(conditions)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "replace", "delete"]))
        if kind == "delete":
            text = text[:where] + text[where + draw(st.integers(1, 5)) :]
        else:
            piece = draw(payloads)
            cut = where + (len(piece) if kind == "replace" else 0)
            text = text[:where] + piece + text[cut:]
    return text


TOKENS = [
    *SNIPPETS,
    *FIELD_NAMES[:8],
    *FUNCTION_NAMES,
    "1",
    "14",
    "0.5",
    ">",
    "<",
    "+",
    "-",
    "/",
    ".",
    "_",
    "__",
    "()",
    "[",
    "]",
    "{",
    "}",
    "'",
    '"',
    ":",
    "@",
    "~",
    "|",
    "&",
    "^",
    "print",
    "getattr",
    "globals",
    "dir",
    "format",
    "id",
    "type",
    "object",
    "mro",
    "gi_frame",
    "f_back",
    "self",
]
snippet_soup = st.lists(st.sampled_from(TOKENS), max_size=15).flatmap(
    lambda parts: st.sampled_from(["", " "]).map(lambda sep: sep.join(parts))
)
screened_alphabet = st.text(alphabet="abcdeilmnoprstuvx_0123456789.+-*/()<>=!, ", min_size=0, max_size=80)
anything = st.text(max_size=600)
hostile = st.one_of(mutated(), snippet_soup, screened_alphabet, anything)


@pytest.mark.filterwarnings("error")  # e.g. no SyntaxWarning from Python's tokenizer may get out
@SETTINGS
@given(data=st.data(), text=hostile)
def test_anything_is_an_analysis_or_a_condition_error(data, text, audited, allowed_events):
    try:
        analysis = analyze(text)
    except ConditionError as error:
        assert isinstance(error.message, str) and error.message
        assert error.column is None or 1 <= error.column <= len(text) + 1, (text, error.column)
        assert "Traceback" not in error.message and "Error" not in error.message
        return
    assert isinstance(analysis, Analysis)
    coins, values = data.draw(market(analysis))
    assert_safe_and_correct(text, analysis, values, coins, audited, allowed_events)


@settings(max_examples=60, deadline=None, database=None, phases=PHASES)
@given(text=hostile, junk=st.dictionaries(st.text(max_size=20), st.one_of(st.none(), st.floats(), st.text())))
def test_evaluate_of_an_accepted_condition_never_raises_on_junk_values(text, junk):
    try:
        compiled = compile_condition(text)
    except ConditionError:
        compiled = compile_condition("price > 1 and rsi(14) < 30")
    result = compiled.evaluate(junk)
    assert isinstance(result, EvalResult)
    assert result.matched.dtype == bool and result.matched.shape == result.undefined.shape
    assert not (result.matched & result.undefined).any()
    assert result.error is None or isinstance(result.error, str)
