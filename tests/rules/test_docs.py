"""docs/conditions.md stays true: its examples are valid, its error examples are what users get, and it
mentions every field and function of the language."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ubot.rules import ConditionError, analyze
from ubot.rules.language import COIN_FIELDS, FUNCTION_NAMES, GLOBAL_FIELDS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "conditions.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end > 0 else None]


EXAMPLES = re.findall(r"^\| `(.+?)` \|", section("Examples"), re.M)
ERRORS = re.findall(r"^\| `(.+?)` \| `(.+?)` \|$", section("Errors in a condition"), re.M)


@pytest.mark.parametrize("text", EXAMPLES)
def test_documented_examples_are_valid(text):
    analyze(text)


@pytest.mark.parametrize(("text", "expected"), ERRORS)
def test_documented_errors_are_the_real_ones(text, expected):
    with pytest.raises(ConditionError) as caught:
        analyze(text)
    if expected.endswith("..."):
        assert str(caught.value).startswith(expected[:-3])
    else:
        assert str(caught.value) == expected


def test_every_field_and_function_is_documented():
    assert len(EXAMPLES) >= 10 and len(ERRORS) >= 10
    for name in (*COIN_FIELDS, *GLOBAL_FIELDS):
        assert f"`{name}`" in DOC, name
    for name in FUNCTION_NAMES:
        assert f"`{name}(" in DOC, name
