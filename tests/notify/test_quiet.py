"""Quiet hours: wall-clock hours in the user's zone, wrapping midnight, correct across DST changes."""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfoNotFoundError

import pytest

from ubot.notify.quiet import parse_quiet_hours, quiet_until
from ubot.timeutil import iso_from_ms, parse_iso_ms

HOUR_MS = 3_600_000


def at(iso: str) -> int:
    return parse_iso_ms(iso)


def until(spec: str | None, zone: str, now_iso: str) -> str | None:
    result = quiet_until(spec, zone, at(now_iso))
    return None if result is None else iso_from_ms(result)


def test_parse() -> None:
    assert parse_quiet_hours("22:00-07:00") == (time(22, 0), time(7, 0))
    assert parse_quiet_hours(" 9:30 - 17:05 ") == (time(9, 30), time(17, 5))


@pytest.mark.parametrize(
    "spec", ["", "22:00", "22-07", "24:00-07:00", "22:60-07:00", "22:0-07:00", "a:bc-d:ef"]
)
def test_parse_refuses_anything_else(spec: str) -> None:
    with pytest.raises(ValueError, match="quiet hours"):
        parse_quiet_hours(spec)


def test_no_quiet_hours() -> None:
    assert until(None, "UTC", "2024-06-01T23:00:00Z") is None
    assert until("", "UTC", "2024-06-01T23:00:00Z") is None
    assert until("22:00-22:00", "UTC", "2024-06-01T22:30:00Z") is None  # empty period


def test_a_daytime_period() -> None:
    assert until("12:00-14:00", "UTC", "2024-06-01T11:59:59Z") is None
    assert until("12:00-14:00", "UTC", "2024-06-01T12:00:00Z") == "2024-06-01T14:00:00.000Z"
    assert until("12:00-14:00", "UTC", "2024-06-01T13:59:59Z") == "2024-06-01T14:00:00.000Z"
    assert until("12:00-14:00", "UTC", "2024-06-01T14:00:00Z") is None


def test_a_night_period_wraps_midnight() -> None:
    spec = "22:00-07:00"
    assert until(spec, "UTC", "2024-06-01T21:59:59Z") is None
    assert until(spec, "UTC", "2024-06-01T22:00:00Z") == "2024-06-02T07:00:00.000Z"
    assert until(spec, "UTC", "2024-06-01T23:30:00Z") == "2024-06-02T07:00:00.000Z"
    assert until(spec, "UTC", "2024-06-02T03:00:00Z") == "2024-06-02T07:00:00.000Z"
    assert until(spec, "UTC", "2024-06-02T07:00:00Z") is None
    assert until(spec, "UTC", "2024-06-02T12:00:00Z") is None


def test_hours_are_in_the_users_time_zone() -> None:
    # Paris in June is UTC+2: 22:00-07:00 local is 20:00-05:00 UTC.
    assert until("22:00-07:00", "Europe/Paris", "2024-06-01T19:59:00Z") is None
    assert until("22:00-07:00", "Europe/Paris", "2024-06-01T20:00:00Z") == "2024-06-02T05:00:00.000Z"
    # Tokyo (UTC+9): 02:00 local on 2 June is 17:00 UTC on 1 June.
    assert until("22:00-07:00", "Asia/Tokyo", "2024-06-01T17:00:00Z") == "2024-06-01T22:00:00.000Z"


def test_spring_forward_night_is_an_hour_shorter() -> None:
    # New York, 2024-03-10 02:00 EST -> 03:00 EDT. 22:00 EST on the 9th = 03:00 UTC on the 10th.
    start = at("2024-03-10T03:00:00Z")
    end = quiet_until("22:00-07:00", "America/New_York", start)
    assert iso_from_ms(end) == "2024-03-10T11:00:00.000Z"  # 07:00 EDT
    assert end - start == 8 * HOUR_MS


def test_fall_back_night_is_an_hour_longer() -> None:
    # New York, 2024-11-03 02:00 EDT -> 01:00 EST. 22:00 EDT on the 2nd = 02:00 UTC on the 3rd.
    start = at("2024-11-03T02:00:00Z")
    end = quiet_until("22:00-07:00", "America/New_York", start)
    assert iso_from_ms(end) == "2024-11-03T12:00:00.000Z"  # 07:00 EST
    assert end - start == 10 * HOUR_MS


def test_an_end_the_clocks_skip_ends_at_the_jump() -> None:
    # 02:30 does not exist in New York on 2024-03-10: the clocks go from 01:59:59 EST to 03:00 EDT,
    # at 07:00 UTC.
    assert until("22:00-02:30", "America/New_York", "2024-03-10T03:00:00Z") == "2024-03-10T07:00:00.000Z"
    assert until("22:00-02:30", "America/New_York", "2024-03-10T06:59:59Z") == "2024-03-10T07:00:00.000Z"
    assert until("22:00-02:30", "America/New_York", "2024-03-10T07:00:00Z") is None  # 03:00 EDT


def test_an_end_the_clocks_repeat_ends_at_its_first_occurrence() -> None:
    # 01:30 happens twice in New York on 2024-11-03: first at 05:30 UTC (EDT), again at 06:30 (EST).
    assert until("22:00-01:30", "America/New_York", "2024-11-03T02:00:00Z") == "2024-11-03T05:30:00.000Z"


def test_bad_quiet_hours_or_time_zones_raise() -> None:
    with pytest.raises(ValueError):
        quiet_until("soon", "UTC", 0)
    with pytest.raises(ZoneInfoNotFoundError):
        quiet_until("22:00-07:00", "Mars/Olympus_Mons", 0)
