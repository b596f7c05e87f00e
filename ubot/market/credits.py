"""CoinMarketCap call credits: what a configuration costs, what a plan allows, what was spent.

Pure arithmetic, no I/O. The rules are CMC's own (see ``shared/reference/coinmarketcap-api.md``):

- ``/v1/cryptocurrency/listings/latest``: 1 credit per 200 coins returned (rounded up) plus 1 per
  ``convert`` currency beyond the first, per call. One call returns at most 5000 coins, so a larger
  ``limit`` is paged, and each page is charged on its own.
- ``/v1/global-metrics/quotes/latest``: 1 credit per call plus 1 per extra ``convert``.
- ``/v1/key/info``: free (it still counts toward the per-minute request limit).

Projections count a month as :data:`DAYS_PER_MONTH` = 31 days, the longest calendar month: an
interval that fits then fits every month. (CMC's "about 86,400 credits for one call a minute"
figures use 30 days; pass ``days=30`` to get them.)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

#: CMC charges one listings credit per this many coins returned (rounded up).
COINS_PER_CREDIT = 200
#: The most coins one listings call may return (CMC's ``limit`` maximum).
MAX_PAGE = 5000
#: Days in the month used for projections: the longest calendar month.
DAYS_PER_MONTH = 31
#: The free Basic plan as observed in 2025 (read the real figures from /v1/key/info).
BASIC_MONTHLY_CREDITS = 10_000
BASIC_RATE_LIMIT_MINUTE = 30


def convert_count(convert: str) -> int:
    """How many currencies a ``convert`` parameter asks for (``"USD,BTC"`` -> 2)."""
    return max(1, len([part for part in convert.split(",") if part.strip()]))


def pages(limit: int) -> list[tuple[int, int]]:
    """The ``(start, limit)`` of each listings call needed for ``limit`` coins (start is 1-based)."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    return [(start, min(MAX_PAGE, limit - start + 1)) for start in range(1, limit + 1, MAX_PAGE)]


def listings_credits(limit: int, converts: int = 1) -> int:
    """Credits for one tick's listings (all pages) of ``limit`` coins in ``converts`` currencies."""
    extra = max(0, converts - 1)
    return sum(math.ceil(size / COINS_PER_CREDIT) + extra for _, size in pages(limit))


def global_credits(converts: int = 1) -> int:
    """Credits for one ``/v1/global-metrics/quotes/latest`` call."""
    return 1 + max(0, converts - 1)


def tick_credits(limit: int, with_global: bool = True, converts: int = 1) -> int:
    """Credits one tick costs: the listings pages, plus the global metrics when fetched."""
    return listings_credits(limit, converts) + (global_credits(converts) if with_global else 0)


def ticks_per_month(interval_s: float, days: int = DAYS_PER_MONTH) -> int:
    """Ticks in a month of ``days`` days at ``interval_s`` (ticks fall on multiples: rounded up)."""
    if interval_s <= 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval_s}")
    return math.ceil(days * 86_400 / interval_s)


def monthly_credits(
    limit: int, interval_s: float, with_global: bool = True, converts: int = 1, days: int = DAYS_PER_MONTH
) -> int:
    """Projected credits a month for ``limit`` coins every ``interval_s`` seconds."""
    return ticks_per_month(interval_s, days) * tick_credits(limit, with_global, converts)


def month_end_credits(used_month: int, per_tick: int, interval_s: float, now_s: float) -> int | None:
    """Credits spent by the end of this UTC calendar month at the current settings: ``used_month``
    so far, plus a tick every ``interval_s`` seconds (on multiples of it) until the month ends.
    None when ticks are back-to-back (``interval_s`` 0: no rate to project)."""
    if interval_s <= 0:
        return None
    now = datetime.fromtimestamp(now_s, tz=UTC)
    following = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC).timestamp()
    # the ticks at k * interval in (now, month end)
    ticks = max(0, math.ceil(following / interval_s) - 1 - math.floor(now_s / interval_s))
    return used_month + ticks * per_tick


def friendly_interval(seconds: int) -> int:
    """``seconds`` rounded up to an interval that divides time evenly.

    Below a minute: the next divisor of 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30); from a minute on,
    the next whole minute. Ticks then fall on the same second of every minute or hour.
    """
    if seconds <= 0:
        return 1
    if seconds < 60:
        return next(d for d in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60) if d >= seconds)
    return math.ceil(seconds / 60) * 60


def shortest_interval(
    limit: int,
    monthly_allowance: int,
    with_global: bool = True,
    converts: int = 1,
    days: int = DAYS_PER_MONTH,
) -> int:
    """The shortest friendly interval (whole seconds) whose projected monthly use fits the allowance.

    Raises ``ValueError`` when not even one tick a month fits.
    """
    per_tick = tick_credits(limit, with_global, converts)
    if monthly_allowance < per_tick:
        raise ValueError(
            f"a monthly allowance of {monthly_allowance} credits cannot pay for even one tick "
            f"({per_tick} credits)"
        )
    month_s = days * 86_400
    seconds = max(1, math.ceil(month_s * per_tick / monthly_allowance))
    while ticks_per_month(seconds, days) * per_tick > monthly_allowance:  # ceil() may add a tick
        seconds += 1
    return friendly_interval(seconds)


@dataclass(frozen=True)
class PlanFit:
    """A configuration's projected monthly use beside the plan's allowance."""

    interval_s: float  # as configured
    projected: int  # credits a month at interval_s
    allowance: int  # the plan's monthly credits
    shortest_s: int | None  # shortest friendly interval that fits (None if nothing fits)

    @property
    def fits(self) -> bool:
        return self.projected <= self.allowance

    def describe(self) -> str:
        """One line for the start-up log."""
        head = (
            f"CoinMarketCap credits: every {self.interval_s:g} s uses ~{self.projected:,} a month "
            f"({DAYS_PER_MONTH}-day month); the plan allows {self.allowance:,}"
        )
        if self.fits:
            return head
        if self.shortest_s is None:
            return head + "; not even one tick a month fits"
        return head + f"; it would run out: the shortest interval that fits is {self.shortest_s} s"


def plan_fit(
    limit: int, interval_s: float, allowance: int, with_global: bool = True, converts: int = 1
) -> PlanFit:
    """Compare a configuration with a monthly allowance (for the start-up line and fit_to_plan)."""
    try:
        shortest: int | None = shortest_interval(limit, allowance, with_global, converts)
    except ValueError:
        shortest = None
    return PlanFit(
        interval_s=interval_s,
        projected=monthly_credits(limit, interval_s, with_global, converts),
        allowance=allowance,
        shortest_s=shortest,
    )


# -- /v1/key/info ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyInfo:
    """The plan and usage of an API key, from ``GET /v1/key/info``."""

    credit_limit_monthly: int
    rate_limit_minute: int | None = None
    credit_limit_daily: int | None = None  # older payloads only
    monthly_reset_at: str | None = None  # plan.credit_limit_monthly_reset_timestamp (ISO)
    day_used: int | None = None
    day_left: int | None = None
    month_used: int | None = None
    month_left: int | None = None


def _count(block: Any, key: str, where: str) -> int | None:
    """An optional non-negative integer field (CMC sends some as floats, e.g. ``333.0``)."""
    if not isinstance(block, Mapping):
        return None
    value = block.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}.{key} must be a number, got {type(value).__name__}")
    return int(value)


def parse_key_info(doc: Any) -> KeyInfo:
    """Parse a ``/v1/key/info`` response; ``ValueError`` names what is missing or wrong."""
    data = doc.get("data") if isinstance(doc, Mapping) else None
    if not isinstance(data, Mapping):
        raise ValueError("key info: 'data' must be an object")
    plan = data.get("plan")
    if not isinstance(plan, Mapping):
        raise ValueError("key info: 'data.plan' must be an object")
    monthly = _count(plan, "credit_limit_monthly", "data.plan")
    if monthly is None:
        raise ValueError("key info: 'data.plan.credit_limit_monthly' is missing")
    usage = data.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    day = usage.get("current_day")
    month = usage.get("current_month")
    reset = plan.get("credit_limit_monthly_reset_timestamp")
    return KeyInfo(
        credit_limit_monthly=monthly,
        rate_limit_minute=_count(plan, "rate_limit_minute", "data.plan"),
        credit_limit_daily=_count(plan, "credit_limit_daily", "data.plan"),
        monthly_reset_at=reset if isinstance(reset, str) else None,
        day_used=_count(day, "credits_used", "data.usage.current_day"),
        day_left=_count(day, "credits_left", "data.usage.current_day"),
        month_used=_count(month, "credits_used", "data.usage.current_month"),
        month_left=_count(month, "credits_left", "data.usage.current_month"),
    )


# -- usage ----------------------------------------------------------------------------------------


def _day_month(at_s: float) -> tuple[str, str]:
    when = datetime.fromtimestamp(at_s, tz=UTC)
    return when.strftime("%Y-%m-%d"), when.strftime("%Y-%m")


class UsageTracker:
    """Credits spent per UTC day and UTC calendar month: the sum of every ``status.credit_count``.

    Thread-safe (the Fetcher records, /health reads). Paid plans reset on their billing date, not
    on the 1st; the month here is the calendar month, CMC's reset for the free Basic plan.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._day: tuple[str, int] = ("", 0)
        self._month: tuple[str, int] = ("", 0)

    def record(self, credits: int, at_s: float) -> None:
        """Add ``credits`` spent at ``at_s`` (epoch seconds)."""
        day, month = _day_month(at_s)
        with self._lock:
            self._day = (day, (self._day[1] if self._day[0] == day else 0) + credits)
            self._month = (month, (self._month[1] if self._month[0] == month else 0) + credits)

    def seed(self, day_used: int | None, month_used: int | None, at_s: float) -> None:
        """Start from the account's usage as CMC reports it (``/v1/key/info``) at ``at_s``."""
        day, month = _day_month(at_s)
        with self._lock:
            if day_used is not None:
                self._day = (day, day_used)
            if month_used is not None:
                self._month = (month, month_used)

    def today(self, now_s: float) -> int:
        day, _ = _day_month(now_s)
        with self._lock:
            return self._day[1] if self._day[0] == day else 0

    def this_month(self, now_s: float) -> int:
        _, month = _day_month(now_s)
        with self._lock:
            return self._month[1] if self._month[0] == month else 0
