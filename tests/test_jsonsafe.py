"""The one NaN-to-null rule: values, nested documents and float arrays."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ubot.jsonsafe import encode_json, json_document, json_ints, json_number, json_values


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (1.5, 1.5),
        (0, 0.0),
        (-2, -2.0),
        (math.nan, None),
        (math.inf, None),
        (-math.inf, None),
        (np.float64(2.25), 2.25),
        (np.float32(0.5), 0.5),
        (np.float64("nan"), None),
        (np.int64(7), 7.0),
    ],
)
def test_json_number(value, expected):
    number = json_number(value)
    assert number == expected
    assert number is None or type(number) is float  # never a numpy scalar


def test_json_values_names_become_strings_and_non_finite_values_null():
    values = json_values({"rsi_14": np.float64(28.4), "sma": math.nan, "x": None, 5: math.inf})
    assert values == {"rsi_14": 28.4, "sma": None, "x": None, "5": None}
    assert json.dumps(values, allow_nan=False) == '{"rsi_14": 28.4, "sma": null, "x": null, "5": null}'


def test_json_document_reaches_every_depth_and_leaves_other_values_alone():
    document = {
        "a": [1.0, math.nan, {"b": (math.inf, "text", 3)}],
        "c": np.float64("-inf"),
        "d": True,
        "e": None,
    }
    assert json_document(document) == {
        "a": [1.0, None, {"b": [None, "text", 3]}],
        "c": None,
        "d": True,
        "e": None,
    }


def test_encode_json_writes_null_for_non_finite_and_the_floats_json_reads_back():
    values = np.array([1.5, math.nan, 1e-7, math.inf, -math.inf, 123456789.125])
    body = encode_json({"v": values.tolist(), "n": np.float64(math.nan).item()})
    assert json.loads(body) == {"v": [1.5, None, 1e-07, None, None, 123456789.125], "n": None}
    assert b"NaN" not in body and b"Infinity" not in body


def test_json_ints_are_integers_or_null():
    assert json_ints(np.array([3.0, math.nan, 4.0, math.inf])) == [3, None, 4, None]
    assert encode_json(json_ints(np.array([9915.0, -math.inf]))) == b"[9915,null]"
