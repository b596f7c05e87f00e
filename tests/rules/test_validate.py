"""Validation: what is accepted, what it uses, and for everything else the message and the column."""

from __future__ import annotations

import ast
import pickle

import pytest

from ubot.rules import Analysis, ConditionError, IndicatorCall, analyze
from ubot.rules.language import FUNCTION_NAMES, MAX_DEPTH, MAX_LENGTH, MAX_NODES
from ubot.rules.validate import _Checker

# -- accepted ----------------------------------------------------------------------------------------


def test_analysis_lists_fields_indicators_and_history():
    analysis = analyze("rsi(14) < 30 and percent_change_24h < -10 or price > sma(200) and btc_dominance < 50")
    assert analysis == Analysis(
        text="rsi(14) < 30 and percent_change_24h < -10 or price > sma(200) and btc_dominance < 50",
        fields=("percent_change_24h", "price", "btc_dominance"),
        indicators=(IndicatorCall("rsi", (14,)), IndicatorCall("sma", (200,))),
        max_lookback=200,
    )
    assert [str(i) for i in analysis.indicators] == ["rsi(14)", "sma(200)"]


def test_repeated_uses_are_listed_once_and_arguments_are_canonical():
    analysis = analyze("bb_upper(20, 2) < price and price < bb_upper(20, 2.0) and rsi(14.0) > rsi(14)")
    assert [str(i) for i in analysis.indicators] == ["bb_upper(20, 2)", "rsi(14)"]
    assert analysis.fields == ("price",)
    assert analyze("bb_lower(20, 2.5) < price").indicators == (IndicatorCall("bb_lower", (20, 2.5)),)


def test_analysis_is_frozen():
    analysis = analyze("rsi(14) < 30")
    with pytest.raises(AttributeError):
        analysis.text = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        analysis.indicators[0].args = (15,)  # type: ignore[misc]
    assert isinstance(analysis.fields, tuple) and isinstance(analysis.indicators, tuple)
    assert hash(analysis) == hash(analyze("rsi(14) < 30"))


@pytest.mark.parametrize(
    "text",
    [
        "price > 100",
        "1 < price < 3",
        "1 < price <= 3 != price",
        "not price > 1",
        "not (rsi(14) < 30 or rsi(14) > 70)",
        "(price - sma(20)) / sma(20) * 100 > 5",
        "abs(change(24)) >= 10 and min(price, 3, -1) == max(price, 2)",
        "macd() > macd_signal() and macd_signal() > 0",
        "price ** 2 > 4 and (price / 2) ** 0 == 1 and price ** 4 > 0",
        "-price < +3 and - - price > -1e6",
        "volume_24h > 1_000_000 and market_cap > 1.5e9 and price > .5 and price < 5.",
        "highest(24) > lowest(24) * 1.1 and ema(9) > ema(21)",
        "total_market_cap > 1e12 and eth_dominance < btc_dominance",
        "rank <= 50 and circulating_supply > 0 and max_supply >= total_supply",
        "price\t>\n1\r",
        "  price > 1  ",
        " ((((price)))) > 1",
    ],
)
def test_valid_conditions(text):
    assert analyze(text).text == text


def test_max_lookback_is_zero_without_indicators():
    assert analyze("price > 1").max_lookback == 0
    assert analyze("macd_signal() > 0").max_lookback == 34


# -- ConditionError ----------------------------------------------------------------------------------


def test_condition_error_shape():
    error = ConditionError("unknown function 'eval'", 12)
    assert isinstance(error, ValueError)
    assert (error.message, error.column) == ("unknown function 'eval'", 12)
    assert str(error) == "column 12: unknown function 'eval'"
    assert str(ConditionError("the condition is empty")) == "the condition is empty"
    assert ConditionError("x").column is None
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.message, copy.column, str(copy)) == (error.message, error.column, str(error))


def error_of(text: str) -> ConditionError:
    with pytest.raises(ConditionError) as caught:
        analyze(text)
    return caught.value


KNOWN = "known: " + ", ".join(FUNCTION_NAMES)

# (text, column, a piece of the message)
REJECTED = [
    # before parsing: size and characters
    ("", None, "the condition is empty"),
    ("   \t ", None, "the condition is empty"),
    ("price > 1 " * 60, None, f"too long: 600 characters, at most {MAX_LENGTH}"),
    ("price > ｅｖａｌ", 9, "character U+FF45 is not allowed: write conditions in plain ASCII"),
    ("price\u202e > 1", 6, "character U+202E is not allowed"),
    ("price >\x001", 8, "control character U+0000 is not allowed"),
    ("price > 1\x1b[2J", 10, "control character U+001B"),
    ("price > 'a'", 9, '"\'" is not allowed: the language has no text strings'),
    ('price > "a"', 9, "the language has no text strings"),
    ("price[0] > 1", 6, "'[' is not allowed: there are no lists or subscripts"),
    ("{price} > 1", 1, "there are no sets, dicts or format strings"),
    ("(x := 1) > 0", 4, "':' is not allowed: there are no slices, lambdas or ':=' assignments"),
    ("price > 1; price > 2", 10, "write a single expression"),
    ("price % 2 > 1", 7, "'%' (modulo) is not supported"),
    ("price > 1 & price > 2", 11, "use 'and'"),
    ("price > 1 # note", 11, "comments are not supported"),
    ("price > $1", 9, "'$' is not allowed: it is not part of the language"),
    # syntax
    ("(price > 1", 1, "'(' is never closed"),
    ("price > 1)", 10, "')' has no matching '('"),
    ("rsi = 1", 5, "'=' is not allowed: to compare use '=='"),
    ("price >", 8, "the condition ends too early"),
    ("price 3 > 1", 7, "invalid syntax at '3'"),
    ("import os", 1, "invalid syntax at 'import'"),
    ("price > 007", 9, "invalid syntax at '007'"),
    # the tree: names and functions
    ("prise > 1", 1, "unknown name 'prise' (did you mean 'price'?); known fields: rank, price, volume_24h"),
    ("price > foo", 9, "unknown name 'foo'; known fields:"),
    ("__import__('os')", 12, "the language has no text strings"),
    (
        "__import__ > 1",
        1,
        "'__import__' is not allowed: names that start with '_' or contain '__' are reserved",
    ),
    ("price > _x", 9, "names that start with '_'"),
    ("eval(price) > 1", 1, f"unknown function 'eval'; {KNOWN}"),
    ("rsi(14) > 1 and open(1) > 0", 17, "unknown function 'open'; known: sma, ema, rsi,"),
    ("price(1) > 1", 1, "'price' is a field, not a function"),
    ("rsi > 30", 1, "'rsi' is an indicator: call it with its arguments, e.g. 'rsi(14)'"),
    ("abs > 1", 1, "'abs' is a function: call it"),
    ("rsi(n=14) < 30", 5, "keyword arguments are not supported: write e.g. 'rsi(14)'"),
    ("rsi(*price) < 30", 5, "'*' arguments are not allowed"),
    ("rsi(14)(1) < 30", 1, "only the language's functions can be called"),
    ("price.real > 1", 1, "attributes ('.name') are not allowed"),
    ("price.__class__ > 1", 1, "attributes ('.name') are not allowed"),
    # arity and arguments
    ("rsi() < 30", 1, "rsi(n) takes 1 argument, got 0: e.g. 'rsi(14)'"),
    ("rsi(14, 2) < 30", 1, "rsi(n) takes 1 argument, got 2"),
    ("macd(12) > 0", 1, "macd() takes no arguments: write 'macd()'"),
    ("bb_upper(20) > price", 1, "bb_upper(n, k) takes 2 arguments, got 1: e.g. 'bb_upper(20, 2)'"),
    ("abs() > 1", 1, "abs() takes 1 argument, got 0"),
    ("min(price) > 1", 1, "min() takes 2 to 10 arguments, got 1"),
    ("max(" + ", ".join(["price"] * 11) + ") > 1", 1, "max() takes 2 to 10 arguments, got 11"),
    ("rsi(1000) < 30", 5, "rsi(n): n must be a whole number from 2 to 500, got 1000"),
    ("rsi(1) < 30", 5, "rsi(n): n must be a whole number from 2 to 500, got 1"),
    ("sma(-5) < price", 5, "sma(n): n must be a whole number from 1 to 500, got -5"),
    ("sma(0) < price", 5, "got 0"),
    ("sma(2.5) < price", 5, "sma(n): n must be a whole number from 1 to 500, got 2.5"),
    ("bb_upper(20, 9) < price", 14, "bb_upper(n, k): k must be a number from 0.5 to 5, got 9"),
    ("bb_lower(20, 0.1) < price", 14, "k must be a number from 0.5 to 5, got 0.1"),
    ("sma(rsi(14)) < price", 5, "sma(n): n must be a number written directly, e.g. 'sma(20)'"),
    ("sma(10 + 10) < price", 5, "must be a number written directly"),
    ("rsi(True) < 30", 5, "True, False and None are not part of the language"),
    # operators
    ("price // 2 > 1", 7, "operator '//' is not supported: use + - * / or ** with a small whole exponent"),
    ("price ** 5 > 1", 10, "the exponent of '**' must be a whole number from 0 to 4 written directly"),
    ("price ** price > 1", 10, "the exponent of '**'"),
    ("price ** -1 > 1", 10, "the exponent of '**'"),
    ("price ** 0.5 > 1", 10, "the exponent of '**'"),
    ("9**9**9 > 1", 4, "the exponent of '**'"),
    ("price in price", 7, "'in' is not supported: compare numbers with < <= > >= == !="),
    ("price is not price", 7, "'is not' is not supported"),
    ("price if price > 1 else 2", 1, "'x if c else y' is not supported"),
    ("(price, 1) > 1", 7, "',' only separates a function's arguments: write decimals with '.', e.g. 1.5"),
    ("price > 1,5", 10, "',' only separates a function's arguments"),
    ("(price,) > 1", 1, "lists, tuples, sets and dicts are not allowed"),
    ("(x for x in price)", 1, "comprehensions ('for' inside an expression) are not allowed"),
    ("await price", 1, "'await' is not allowed"),
    ("(yield price)", 2, "'yield' is not allowed"),
    # types
    ("price", 1, "the condition must be true or false"),
    ("rsi(14) + 1", 1, "the condition must be true or false"),
    ("price and volume_24h > 1", 1, "'and' joins true/false values, but this is a number"),
    ("price > 1 or 2", 14, "'or' joins true/false values, but this is a number"),
    ("not price", 5, "'not' needs a true/false value, but this is a number"),
    ("-(price > 1)", 3, "'-' needs a number, not a true/false value"),
    ("(price > 1) + 1 > 0", 2, "'+' needs numbers on both sides, not a true/false value"),
    ("(price > 1) > 0", 2, "only numbers can be compared, and this is a true/false value"),
    ("abs(price > 1) > 0", 5, "abs() takes numbers, not true/false values"),
    ("price > 1 and True", 15, "True, False and None are not part of the language: write a comparison"),
    ("price > None", 9, "True, False and None"),
    # numbers
    ("price > 0x10", 9, "numbers must be written in decimal, e.g. 42, 0.5 or 1e6"),
    ("price > 0b1", 9, "numbers must be written in decimal"),
    ("price > 0o7", 9, "numbers must be written in decimal"),
    ("price > 1j", 9, "complex numbers are not allowed"),
    ("price > 1e19", 9, "this number is too large: at most 1e18"),
    ("price > 1e400", 9, "this number is too large"),
    ("price > " + "9" * 30, 9, "this number is too large"),
    ("price > 0." + "0" * 40 + "1", 9, "this number is too long: at most 40 characters"),
    ("price > ...", 9, "this is not part of the condition language"),
    # size of the tree
    ("1" + "+1" * 100 + " > 0", None, f"the condition has too many parts: 203, at most {MAX_NODES}"),
    ("price" + " + 1" * 35 + " > 0", 1, f"the condition is nested too deeply: more than {MAX_DEPTH} levels"),
    (
        " and ".join(f"sma({n}) > 0" for n in range(1, 12)),
        " and ".join(f"sma({n}) > 0" for n in range(1, 12)).index("sma(11)") + 1,
        "too many different indicators: at most 10 per condition",
    ),
    ("(" * 31 + "price > 1" + ")" * 31, 31, f"too many nested parentheses: at most {MAX_DEPTH}"),
]


@pytest.mark.parametrize(("text", "column", "message"), REJECTED, ids=[repr(r[0])[:50] for r in REJECTED])
def test_rejected_with_message_and_column(text, column, message):
    error = error_of(text)
    assert message in error.message
    assert error.column == column
    assert str(error) == (error.message if column is None else f"column {column}: {error.message}")


@pytest.mark.parametrize(
    "text",
    ["price > 1 and eval(price) > 1", "   price > 1 and eval(price) > 1", "\n\tprice > 1 and\n eval(1) > 1"],
)
def test_error_columns_point_into_the_text(text):
    error = error_of(text)
    assert text[error.column - 1 :].startswith("eval")


def test_syntax_error_columns_count_leading_spaces():
    assert error_of("   price 3 > 1").column == 10
    assert error_of("  (price > 1").column == 3


def test_messages_never_carry_python_exception_text():
    texts = [r[0] for r in REJECTED] + ["(" * 200_000, "-" * 40_000, "not " * 10_000, "1+" * 24_000 + "1"]
    for text in texts:
        message = str(error_of(text))
        for python_text in (
            "Error",
            "Traceback",
            "was never closed",
            "perhaps",
            "maximum recursion",
            "<class",
        ):
            assert python_text not in message, (text[:40], message)


def test_huge_inputs_are_rejected_before_parsing():
    assert error_of("(" * 200_000).message.startswith("the condition is too long: 200000 characters")
    assert error_of("a" * 501).column is None


def test_deep_nesting_within_the_length_cap():
    assert error_of("(" * 240 + "price > 1" + ")" * 240).message == "too many nested parentheses: at most 30"
    assert "nested too deeply" in error_of("-" * 100 + "price > 1").message
    assert "nested too deeply" in error_of("not " * 100 + "price > 1").message


def test_non_strings_are_rejected():
    for value in (None, 1, b"price > 1", ["price > 1"]):
        assert error_of(value).message == "the condition must be text"  # type: ignore[arg-type]


# -- the tree whitelist on its own (what the character screen would stop earlier) --------------------


def tree_error(text: str) -> ConditionError:
    with pytest.raises(ConditionError) as caught:
        _Checker(text).check(ast.parse(text, mode="eval"))
    return caught.value


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("price[0] > 1", 1, "subscripts ('[...]') are not allowed"),
        ("price > 'a'", 9, "text strings are not allowed"),
        ("price > b'a'", 9, "text strings are not allowed"),
        ("f'{price}' > 1", 1, "f-strings are not allowed"),
        ("(lambda: price)() > 1", 2, "only the language's functions can be called"),
        ("(lambda: price) > 1", 2, "lambda is not allowed"),
        ("[x for x in price] > 1", 1, "comprehensions"),
        ("{x: 1 for x in price} > 1", 1, "comprehensions"),
        ("{x for x in price} > 1", 1, "comprehensions"),
        ("(x := price) > 1", 2, "':=' (assignment) is not allowed"),
        ("[price] > 1", 1, "lists, tuples, sets and dicts are not allowed"),
        ("{1: price} > 1", 1, "lists, tuples, sets and dicts are not allowed"),
        ("{price} > 1", 1, "lists, tuples, sets and dicts are not allowed"),
        ("price[1:2] > 1", 1, "subscripts"),
        ("rsi(**{'n': 14}) > 1", 5, "keyword arguments are not supported"),
        ("~price > 1", 1, "'~' is not supported: use 'not'"),
        ("price % 2 > 1", 7, "operator '%' is not supported"),
        ("price @ price > 1", 7, "operator '@' is not supported"),
        ("price | 1 > 1", 7, "operator '|' is not supported"),
        ("price > 0x10", 9, "numbers must be written in decimal"),
        ("price > 1j", 9, "complex numbers are not allowed"),
        ("price > 1 and True", 15, "True, False and None are not part of the language"),
        ("().__class__.__bases__[0].__subclasses__()", 1, "only the language's functions can be called"),
    ],
)
def test_tree_whitelist_rejects_by_itself(text, column, message):
    error = tree_error(text)
    assert message in error.message
    assert error.column == column
