"""Credit arithmetic: CMC's pricing rules, monthly projections, plan fitting, usage per UTC day/month."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.fakecmc import FakeCmc
from ubot.market.credits import (
    KeyInfo,
    UsageTracker,
    friendly_interval,
    global_credits,
    listings_credits,
    monthly_credits,
    pages,
    parse_key_info,
    plan_fit,
    shortest_interval,
    tick_credits,
)
from ubot.timeutil import parse_iso_ms


def at(iso: str) -> float:
    return parse_iso_ms(iso) / 1000


@pytest.mark.parametrize(
    ("limit", "credits"),
    [(1, 1), (100, 1), (200, 1), (201, 2), (500, 3), (5000, 25), (5001, 26), (5100, 26), (10_000, 50)],
)
def test_listings_cost_one_credit_per_200_coins_rounded_up(limit, credits):
    assert listings_credits(limit) == credits


def test_each_extra_convert_costs_one_credit_per_call():
    assert listings_credits(100, converts=2) == 2
    assert listings_credits(5001, converts=3) == 26 + 2 * 2  # two pages, each charged the extras
    assert global_credits() == 1
    assert global_credits(converts=3) == 3
    assert tick_credits(100) == 2
    assert tick_credits(100, with_global=False) == 1


def test_pages_split_beyond_5000():
    assert pages(100) == [(1, 100)]
    assert pages(5000) == [(1, 5000)]
    assert pages(5001) == [(1, 5000), (5001, 1)]
    assert pages(12_000) == [(1, 5000), (5001, 5000), (10_001, 2000)]
    with pytest.raises(ValueError):
        pages(0)


def test_basic_plan_cannot_afford_one_minute_listings_and_global():
    assert monthly_credits(100, 60, with_global=True, days=30) == 86_400  # CMC's own figure
    assert monthly_credits(100, 60) == 89_280  # the 31-day month projections use
    assert monthly_credits(100, 60, with_global=False) == 44_640
    fit = plan_fit(100, 60, allowance=10_000)
    assert not fit.fits
    assert fit.projected == 89_280
    assert fit.shortest_s == 540
    assert fit.describe() == (
        "CoinMarketCap credits: every 60 s uses ~89,280 a month (31-day month); the plan allows "
        "10,000; it would run out: the shortest interval that fits is 540 s"
    )


def test_shortest_interval_fits_and_the_next_shorter_friendly_one_does_not():
    assert shortest_interval(100, 10_000) == 540
    assert monthly_credits(100, 540) <= 10_000
    assert monthly_credits(100, 480) > 10_000
    assert shortest_interval(100, 10_000, with_global=False) == 300
    assert shortest_interval(5000, 10_000) == 7020  # 26 credits a tick: about every 2 hours
    assert shortest_interval(100, 1_000_000) == 6
    assert shortest_interval(100, 10_000_000) == 1


def test_shortest_interval_always_fits():
    for limit in (1, 199, 200, 201, 1000, 5000, 5001, 9999):
        for allowance in (60, 333, 10_000, 110_000, 1_200_000, 30_000_000):
            for with_global in (True, False):
                try:
                    seconds = shortest_interval(limit, allowance, with_global)
                except ValueError:
                    assert allowance < tick_credits(limit, with_global)
                    continue
                assert monthly_credits(limit, seconds, with_global) <= allowance
                assert seconds < 60 and 60 % seconds == 0 or seconds % 60 == 0


def test_an_allowance_below_one_tick_fits_nothing():
    with pytest.raises(ValueError, match="cannot pay for even one tick"):
        shortest_interval(5000, 20)
    fit = plan_fit(5000, 60, allowance=20)
    assert fit.shortest_s is None
    assert fit.describe().endswith("not even one tick a month fits")


def test_a_fitting_configuration_is_said_to_fit():
    fit = plan_fit(100, 900, allowance=10_000)
    assert fit.fits
    assert fit.describe() == (
        "CoinMarketCap credits: every 900 s uses ~5,952 a month (31-day month); the plan allows 10,000"
    )


@pytest.mark.parametrize(
    ("seconds", "friendly"),
    [(0, 1), (1, 1), (7, 10), (13, 15), (59, 60), (60, 60), (61, 120), (536, 540), (7001, 7020)],
)
def test_friendly_intervals_divide_time_evenly(seconds, friendly):
    assert friendly_interval(seconds) == friendly


def test_parse_key_info_reads_the_plan_and_usage():
    doc = FakeCmc().key_info_doc()
    info = parse_key_info(doc)
    assert info == KeyInfo(
        credit_limit_monthly=10_000,
        rate_limit_minute=30,
        credit_limit_daily=None,
        monthly_reset_at="2026-12-01T00:00:00.000Z",
        day_used=12,
        day_left=None,
        month_used=345,
        month_left=9655,
    )


def test_parse_key_info_accepts_older_payloads_with_float_counts():
    doc = {
        "data": {
            "plan": {"credit_limit_daily": 333, "credit_limit_monthly": 10000.0, "rate_limit_minute": 30},
            "usage": {"current_day": {"credits_used": 5.0, "credits_left": 328.0}},
        }
    }
    info = parse_key_info(doc)
    assert (info.credit_limit_monthly, info.credit_limit_daily, info.day_used, info.day_left) == (
        10_000,
        333,
        5,
        328,
    )
    assert info.month_used is None


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "'data' must be an object"),
        ({"data": {"usage": {}}}, "'data.plan' must be an object"),
        ({"data": {"plan": {"rate_limit_minute": 30}}}, "'data.plan.credit_limit_monthly' is missing"),
        ({"data": {"plan": {"credit_limit_monthly": "lots"}}}, "credit_limit_monthly must be a number"),
    ],
)
def test_parse_key_info_names_what_is_wrong(doc, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        parse_key_info(doc)


def test_usage_sums_credit_counts_per_utc_day_and_month():
    usage = UsageTracker()
    usage.record(2, at("2026-11-30T12:00:00Z"))
    usage.record(3, at("2026-11-30T23:59:59.999Z"))
    assert usage.today(at("2026-11-30T23:59:59.999Z")) == 5
    assert usage.this_month(at("2026-11-30T23:59:59.999Z")) == 5
    # midnight at the end of a month: both the day and the month start again
    assert usage.today(at("2026-12-01T00:00:00Z")) == 0
    assert usage.this_month(at("2026-12-01T00:00:00Z")) == 0
    usage.record(1, at("2026-12-01T00:00:00Z"))
    usage.record(4, at("2026-12-01T08:00:00Z"))
    assert usage.today(at("2026-12-01T09:00:00Z")) == 5
    # a new day within the month: only the day starts again
    usage.record(7, at("2026-12-02T00:00:01Z"))
    assert usage.today(at("2026-12-02T00:00:01Z")) == 7
    assert usage.this_month(at("2026-12-02T00:00:01Z")) == 12
    # a new year
    usage.record(1, at("2027-01-01T00:00:00Z"))
    assert usage.this_month(at("2027-01-01T00:00:00Z")) == 1


def test_usage_starts_from_what_key_info_reports():
    usage = UsageTracker()
    usage.seed(day_used=12, month_used=345, at_s=at("2026-11-24T08:31:00Z"))
    usage.record(2, at("2026-11-24T08:32:00Z"))
    assert usage.today(at("2026-11-24T08:32:00Z")) == 14
    assert usage.this_month(at("2026-11-24T08:32:00Z")) == 347
    assert usage.today(at("2026-11-25T00:00:00Z")) == 0
    assert usage.this_month(at("2026-11-25T00:00:00Z")) == 347


def test_the_month_end_projection_adds_the_ticks_left_in_the_calendar_month() -> None:
    from ubot.market.credits import month_end_credits

    # 2026-02-28 23:00:00 UTC: one hour left in February; a tick every 600 s at 0, 600, ... 3000 s
    now = datetime(2026, 2, 28, 23, 0, tzinfo=UTC).timestamp()
    assert month_end_credits(900, 3, 600, now) == 900 + 5 * 3  # 23:10 .. 23:50 (midnight is March's)
    assert month_end_credits(900, 3, 600, now + 1) == 900 + 5 * 3
    assert month_end_credits(900, 3, 600, now + 600) == 900 + 4 * 3
    # December rolls over into January of the next year: 31 days at one tick a day, minus today's
    december = datetime(2026, 12, 1, 0, 0, 30, tzinfo=UTC).timestamp()
    assert month_end_credits(0, 2, 86_400, december) == 30 * 2
    assert month_end_credits(7, 2, 0, december) is None  # back-to-back: no rate


def test_health_projects_the_month_from_the_sources_per_tick_cost() -> None:
    from ubot.health import ClockStats, PipelineStats

    stats = PipelineStats(source="cmc", started_at=0.0)
    stats.source_status = {"state": "ok", "credits_month": 100, "credits_per_tick": 2}
    clock = ClockStats(60.0, 1, 0, 0, 1.0, 1.0, 1.0, True, None)
    now = datetime(2026, 12, 31, 23, 57, 30, tzinfo=UTC).timestamp()
    _, doc = stats.health(now, clock)
    assert doc["source_status"]["projected_month"] == 100 + 2 * 2  # 23:58 and 23:59
