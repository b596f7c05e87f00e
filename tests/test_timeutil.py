"""Epoch milliseconds <-> ISO-8601, exactly."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ubot.timeutil import iso_from_ms, parse_iso_ms

MS = 1_729_038_116_668  # 2024-10-16T00:21:56.668Z


def test_cmc_format():
    assert parse_iso_ms("2024-10-16T00:21:56.668Z") == MS
    assert iso_from_ms(MS) == "2024-10-16T00:21:56.668Z"


@pytest.mark.parametrize(
    "text",
    [
        "2024-10-16T00:21:56.668Z",
        "2024-10-16T00:21:56.668+00:00",
        "2024-10-16T02:21:56.668+02:00",
        "2024-10-15T19:21:56.668-05:00",
        "2024-10-16T05:51:56.668+05:30",
        "2024-10-16T00:21:56.668",  # naive = UTC
        "2024-10-16 00:21:56.668Z",
        "2024-10-16T00:21:56.668999Z",  # sub-millisecond digits are dropped, not rounded
    ],
)
def test_same_instant_whatever_the_notation(text):
    assert parse_iso_ms(text) == MS


def test_naive_is_utc_whatever_the_local_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert parse_iso_ms("2024-10-16T00:21:56.668") == MS
        assert iso_from_ms(MS) == "2024-10-16T00:21:56.668Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_whole_seconds_and_epoch():
    assert parse_iso_ms("1970-01-01T00:00:00Z") == 0
    assert parse_iso_ms("2024-10-16T00:21:56Z") == MS - 668
    assert iso_from_ms(0) == "1970-01-01T00:00:00.000Z"
    assert iso_from_ms(MS - 668) == "2024-10-16T00:21:56.000Z"


def test_before_the_epoch():
    assert parse_iso_ms("1969-12-31T23:59:59.999Z") == -1
    assert iso_from_ms(-1) == "1969-12-31T23:59:59.999Z"
    assert iso_from_ms(-1000) == "1969-12-31T23:59:59.000Z"


@given(st.integers(-(10**12), 253_402_300_799_999))  # ~1938 .. 9999-12-31T23:59:59.999Z
def test_round_trip(ms):
    text = iso_from_ms(ms)
    assert text.endswith("Z") and len(text) == 24
    assert parse_iso_ms(text) == ms
    assert iso_from_ms(parse_iso_ms(text)) == text


@pytest.mark.parametrize(
    "bad", ["", "yesterday", "16/10/2024", "2024-13-01T00:00:00Z", "2024-10-16T25:00:00Z"]
)
def test_not_iso_raises_value_error(bad):
    with pytest.raises(ValueError):
        parse_iso_ms(bad)


@pytest.mark.parametrize("bad", [None, 1_729_038_116, b"2024-10-16T00:21:56Z"])
def test_not_a_string_raises_value_error(bad):
    with pytest.raises(ValueError, match="expected an ISO-8601 string"):
        parse_iso_ms(bad)
