"""Evaluation: per-coin results, undefined values (NaN, division by zero, short history) and their
errors, chained comparisons, market-wide numbers, read-only inputs, the cache, and speed."""

from __future__ import annotations

import numpy as np
import pytest

from ubot.rules import CompiledCondition, ConditionError, EvalResult, analyze, compile_condition, indicators
from ubot.rules.compiler import CACHE_SIZE, UNEVALUABLE, interpret
from ubot.rules.kernel import Faults, make_operations

NAN = np.nan


def run(text: str, **values) -> EvalResult:
    return compile_condition(text).evaluate(values)


def matched(text: str, **values) -> list[bool]:
    return run(text, **values).matched.tolist()


def test_simple_conditions_per_coin():
    price = np.array([1.0, 5.0, 10.0])
    assert matched("price > 4", price=price) == [False, True, True]
    assert matched("price >= 5 and price != 10", price=price) == [False, True, False]
    assert matched("price < 2 or price == 10", price=price) == [True, False, True]
    assert matched("not price > 4", price=price) == [True, False, False]
    assert matched("(price - 1) * 2 / 3 ** 1 >= 6", price=price) == [False, False, True]
    assert matched("abs(-price) == max(price, 2, -1) and min(price, 7) <= 7", price=price) == [
        False,
        True,
        True,
    ]
    assert matched("price ** 2 > 24 and -price < -1", price=price) == [False, True, True]


def test_result_shape_and_types():
    result = run("price > 1", price=np.array([0.0, 2.0]))
    assert result.matched.dtype == bool and result.matched.shape == (2,)
    assert result.undefined.tolist() == [False, False]
    assert result.error is None
    assert not result.matched.flags.writeable and not result.undefined.flags.writeable


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 < price < 3", [False, True, False, False]),
        ("1 <= price < 3", [True, True, False, False]),
        ("3 > price > 1", [False, True, False, False]),
        ("1 < price < 3 < volume_24h", [False, True, False, False]),
        ("1 < price < 3 > volume_24h", [False, False, False, False]),
        ("price == price != volume_24h", [True, True, True, True]),
        ("0 < price <= volume_24h <= 10", [True, True, True, False]),
    ],
)
def test_chained_comparisons(text, expected):
    values = {"price": np.array([1.0, 2.0, 3.0, 20.0]), "volume_24h": np.array([5.0, 5.0, 5.0, 30.0])}
    assert compile_condition(text).evaluate(values).matched.tolist() == expected


def test_global_scalars_broadcast_over_coins():
    price = np.array([1.0, 2.0, 3.0])
    assert matched("btc_dominance > 50 and price > 1", price=price, btc_dominance=55.0) == [False, True, True]
    assert matched("btc_dominance > 60 or price > 2", price=price, btc_dominance=55.0) == [False, False, True]
    # only globals used: one answer for every coin, the count taken from the other arrays given
    assert matched("btc_dominance > 50", price=price, btc_dominance=np.float64(55)) == [True, True, True]
    assert compile_condition("btc_dominance > 50").evaluate({"btc_dominance": 55.0}, coins=4).matched.all()
    assert matched("btc_dominance > 50", btc_dominance=55.0) == [True]


def test_nan_inputs_never_match_and_say_why():
    price = np.array([NAN, 2.0, 3.0])
    for text in ("price > 1", "not price > 1", "not (price < 1)", "price > 1 and price > 0", "price != 0"):
        result = run(text, price=price)
        assert result.matched[0] == False  # noqa: E712 - numpy bool
        assert result.undefined.tolist() == [True, False, False]
        assert result.error == "price is not available for some coins"
    assert run("btc_dominance > 1", btc_dominance=NAN, price=price).error == "btc_dominance is not available"


def test_infinities_in_the_input_are_undefined_too():
    result = run("price > 1", price=np.array([np.inf, -np.inf, 2.0]))
    assert result.matched.tolist() == [False, False, True]
    assert result.undefined.tolist() == [True, True, False]


def test_division_by_zero_gives_no_match_and_an_error():
    result = run(
        "price / volume_24h > 1", price=np.array([1.0, 5.0, 0.0]), volume_24h=np.array([0.0, 2.0, 0.0])
    )
    assert result.matched.tolist() == [False, True, False]
    assert result.undefined.tolist() == [True, False, True]
    assert result.error == "division by zero"
    assert run("price / 0 > 1", price=np.array([1.0])).error == "division by zero"
    assert run("btc_dominance / 0 < 1", btc_dominance=5.0, price=np.zeros(2)).error == "division by zero"
    assert run("not price / 0 > 1", price=np.array([1.0])).matched.tolist() == [False]


def test_overflow_is_undefined():
    result = run("price * 1e18 * 1e18 * 1e18 > 1", price=np.array([1e300, 1.0]))
    assert result.matched.tolist() == [False, True]
    assert result.error == "a number is too large (overflow)"
    assert run("price ** 4 > 1", price=np.array([1e100])).error == "a number is too large (overflow)"


def test_or_with_a_true_side_is_decided_and_reports_nothing():
    values = {"price": np.array([5.0, 0.5]), "volume_24h": np.array([0.0, 0.0])}
    result = compile_condition("price > 1 or price / volume_24h > 1").evaluate(values)
    assert result.matched.tolist() == [True, False]
    assert result.undefined.tolist() == [False, True]
    assert result.error == "division by zero"
    decided = compile_condition("price > 1 or price / volume_24h > 1").evaluate(
        {**values, "price": np.array([5.0, 6.0])}
    )
    assert decided.matched.tolist() == [True, True] and decided.error is None
    false_and = compile_condition("price > 100 and price / volume_24h > 1").evaluate(values)
    assert false_and.undefined.tolist() == [False, False] and false_and.error is None


def test_missing_history_is_reported_per_indicator():
    closes = np.full((3, 40), 100.0)
    closes[0, :30] = NAN  # 10 candles only
    closes[1, :] = np.linspace(50, 100, 40)
    condition = compile_condition("rsi(14) > 50 and sma(5) > 0")
    values = indicators.compute(condition.indicators, closes)
    result = condition.evaluate(values)
    assert result.matched.tolist() == [False, True, False]
    assert result.undefined.tolist() == [True, False, False]
    assert result.error == "rsi(14) needs 15 candles of history"


def test_several_reasons_are_listed_once_each():
    values = {
        "price": np.array([NAN, 1.0, 1.0, NAN]),
        "volume_24h": np.array([1.0, 0.0, 1.0, 0.0]),
        "sma(20)": np.array([1.0, 1.0, NAN, 1.0]),
    }
    result = compile_condition("price / volume_24h > sma(20) or price / volume_24h < 0").evaluate(values)
    assert result.undefined.tolist() == [True, True, True, True]
    assert (
        result.error
        == "price is not available for some coins; sma(20) needs 20 candles of history; division by zero"
    )


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({}, "price is not available"),
        ({"price": None}, "price is not available"),
        ({"price": "abc"}, "price is not available"),
        ({"price": np.array(["a", "b"])}, "price is not available"),
        (
            {"price": [1, 2], "volume_24h": [1, 2, 3]},
            "the market data given for this condition is inconsistent",
        ),
        ({"price": np.zeros((2, 2))}, "price is not available"),
        ({"price": object()}, "price is not available"),
    ],
)
def test_bad_inputs_give_an_error_not_an_exception(values, error):
    result = compile_condition("price > volume_24h").evaluate(values)
    assert not result.matched.any()
    assert result.error == error


def test_evaluate_never_raises_even_for_nonsense():
    condition = compile_condition("price > 1")
    for values in (None, 1, "price", [("price", 1)], {"price": {1: 2}}, {1: 2}):
        result = condition.evaluate(values)  # type: ignore[arg-type]
        assert isinstance(result, EvalResult) and not result.matched.any() and result.error


def test_lists_and_integers_are_accepted():
    assert matched("price > 1 and rank <= 2", price=[0, 2, 3], rank=[1, 2, 3]) == [False, True, False]


def test_inputs_are_copied_and_never_modified():
    price = np.array([1.0, np.inf, 3.0])
    before = price.copy()
    run("price > 2", price=price)
    np.testing.assert_array_equal(price, before)
    assert price.flags.writeable


def test_the_values_asteval_sees_are_read_only_copies():
    seen = {}
    operations = make_operations(Faults())
    symbols = {**operations, "price": np.array([1.0, 2.0])}
    symbols["price"].flags.writeable = False

    def spy(left, right):
        seen["left"] = left
        return operations["op_gt"](left, right)

    symbols["op_gt"] = spy
    interpret("op_gt(price, 1.0)", symbols)
    with pytest.raises(ValueError):
        seen["left"][0] = 5.0


# -- the compiled form and the cache ------------------------------------------------------------------


def test_compiled_condition_shows_its_program_and_inputs():
    condition = compile_condition("rsi(14) < 30 and percent_change_24h < -10")
    assert isinstance(condition, CompiledCondition)
    assert condition.program == "op_and(op_lt(ind_0, 30.0), op_lt(percent_change_24h, op_neg(10.0)))"
    assert condition.text == "rsi(14) < 30 and percent_change_24h < -10"
    assert [str(i) for i in condition.indicators] == ["rsi(14)"]
    assert condition.analysis == analyze("rsi(14) < 30 and percent_change_24h < -10")
    assert [key for _, key, _ in condition.inputs] == ["percent_change_24h", "rsi(14)"]


def test_compile_is_cached_per_text_with_a_bound():
    compile_condition.cache_clear()
    first = compile_condition("price > 12345")
    assert compile_condition("price > 12345") is first
    assert compile_condition(" price > 12345") is not first  # another text
    info = compile_condition.cache_info()
    assert (info.hits, info.misses, info.maxsize) == (1, 2, CACHE_SIZE)


def test_invalid_texts_raise_every_time_and_are_not_cached():
    compile_condition.cache_clear()
    for _ in range(2):
        with pytest.raises(ConditionError):
            compile_condition("price >")
    assert compile_condition.cache_info().currsize == 0


def test_a_compiled_condition_is_reusable_and_keeps_no_state():
    condition = compile_condition("price / volume_24h > 1")
    first = condition.evaluate({"price": np.array([1.0]), "volume_24h": np.array([0.0])})
    second = condition.evaluate({"price": np.array([2.0]), "volume_24h": np.array([1.0])})
    assert first.error == "division by zero"
    assert second.error is None and second.matched.tolist() == [True]


def test_asteval_failure_is_contained():
    condition = compile_condition("price > 1")
    broken = CompiledCondition(condition.analysis, "price.__class__", condition.inputs)
    result = broken.evaluate({"price": np.array([1.0, 2.0])})
    assert result.matched.tolist() == [False, False]
    assert result.error == UNEVALUABLE
