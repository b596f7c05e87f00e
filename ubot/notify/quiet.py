"""Quiet hours: ``"22:00-07:00"`` in the user's time zone. A delivery raised inside them is held until
they end, never dropped.

The hours are wall-clock times in the zone (``zoneinfo``), so they follow daylight saving time: on
the night the clocks spring forward, ``22:00-07:00`` lasts 8 hours of real time instead of 9 (and
10 in autumn). A start after the end wraps midnight; a start equal to the end means no quiet hours.
When the end time does not exist that day (skipped by the clocks), the quiet hours end when the
clocks jump past it.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


def parse_quiet_hours(spec: str) -> tuple[time, time]:
    """``"22:00-07:00"`` -> ``(time(22, 0), time(7, 0))``. Raises ``ValueError`` on anything else."""
    start, sep, end = spec.strip().partition("-")
    if not sep:
        raise ValueError(f"quiet hours {spec!r}: expected HH:MM-HH:MM")
    return _clock_time(start, spec), _clock_time(end, spec)


def _clock_time(text: str, spec: str) -> time:
    hours, sep, minutes = text.strip().partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and len(hours) <= 2):
        raise ValueError(f"quiet hours {spec!r}: expected HH:MM-HH:MM")
    if int(hours) > 23 or int(minutes) > 59:
        raise ValueError(f"quiet hours {spec!r}: {text.strip()} is not a time of day")
    return time(int(hours), int(minutes))


def quiet_until(spec: str | None, timezone: str, now_ms: int) -> int | None:
    """When the quiet hours that ``now_ms`` falls in end (epoch ms), or ``None`` outside them.

    Raises ``ValueError`` for a malformed ``spec`` and ``zoneinfo.ZoneInfoNotFoundError`` (a
    ``KeyError``) for an unknown time zone.
    """
    if not spec:
        return None
    start, end = parse_quiet_hours(spec)
    if start == end:
        return None
    zone = ZoneInfo(timezone)
    local = datetime.fromtimestamp(now_ms / 1000, tz=zone).replace(tzinfo=None)
    wall = local.time()
    if start < end:
        if not start <= wall < end:
            return None
        end_day = local.date()
    else:  # wraps midnight
        if end <= wall < start:
            return None
        end_day = local.date() + timedelta(days=1) if wall >= start else local.date()
    return _first_instant_at(datetime.combine(end_day, end), zone)


def _first_instant_at(wall: datetime, zone: ZoneInfo) -> int:
    """The first instant (epoch ms) at which the clocks of ``zone`` read ``wall`` or later: its first
    occurrence when the clocks fall back, the jump itself when they skip it."""
    first = wall.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall:
        return round(first.timestamp() * 1000)
    # Skipped: fold=1 reads it with the offset after the jump (too early), fold=0 with the one
    # before (too late); the jump is in between. Search it to the second.
    low = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    high = int(first.timestamp())
    while low < high:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz=zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle + 1
    return high * 1000
