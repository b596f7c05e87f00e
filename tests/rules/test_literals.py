"""Literals lifted out of a condition (one evaluation per shape, ``ubot/scan/groups.py``): a literal
is a finite number, never code, and the evaluator refuses anything else in its place."""

import re

import numpy as np
import pytest

from ubot.rules import compile_condition
from ubot.rules.compiler import UNEVALUABLE, Evaluator
from ubot.rules.kernel import OPERATIONS
from ubot.rules.language import FIELDS


def test_a_lifted_literal_is_a_number_and_the_shape_holds_no_user_text():
    condition = compile_condition("price > 67400 and rsi(14) < 28 and percent_change_1h ** 2 > -1.5e3")
    assert condition.literals == (67400.0, 28.0, 1.5e3)
    assert all(type(x) is float for x in condition.literals)
    names = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", condition.shape))
    allowed = OPERATIONS | FIELDS | {"ind_0"} | {f"lit_{k}" for k in range(3)}
    assert names <= allowed, condition.shape
    assert condition.program == (
        "op_and(op_gt(price, 67400.0), op_lt(ind_0, 28.0), op_gt(op_pow(percent_change_1h, 2.0), op_neg(1500.0)))"
    )


@pytest.mark.parametrize(
    "literal",
    [
        np.array(["__import__('os').system('id')"] * 3),
        np.array([object()] * 3, dtype=object),
        np.array([1, 2, 3]),  # integers: not the float64 the groups make
        np.array([1.0, np.nan, 3.0]),
        np.array([1.0, np.inf, 3.0]),
        np.array([1.0, 2.0]),  # not one per element
        "1.0",
        [1.0, 2.0, 3.0],
    ],
)
def test_the_evaluator_refuses_literals_that_are_not_finite_float64_numbers(literal, audited, allowed_events):
    condition = compile_condition("price > 10")
    evaluator = Evaluator()
    with audited() as events:
        result = evaluator.evaluate(condition, {"price": np.array([1.0, 20.0, 30.0])}, 3, [literal])
    assert result.error == UNEVALUABLE and not result.matched.any()
    # Nothing ran (the refusal is logged: logging looks at frames, which is all besides compile).
    assert set(events) - allowed_events <= {"sys._getframe", "object.__getattr__"}
    good = evaluator.evaluate(
        condition, {"price": np.array([1.0, 20.0, 30.0])}, 3, [np.array([0.0, 25.0, 25.0])]
    )
    assert good.matched.tolist() == [True, False, True] and good.error is None
