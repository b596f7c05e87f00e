"""Deadlines on exact multiples of the interval, missed ticks and overruns, lateness statistics."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ubot.schedule import LatenessStats, Tick, Ticker
from ubot.timeutil import parse_iso_ms

NOW = parse_iso_ms("2024-10-16T00:21:56.668Z") / 1000  # epoch seconds, as the clock gives them
MINUTE_MARK = parse_iso_ms("2024-10-16T00:22:00.000Z") / 1000


def test_minute_ticks_fall_at_second_zero():
    ticker = Ticker(60, NOW)
    assert ticker.next_deadline == MINUTE_MARK
    tick = ticker.fire(MINUTE_MARK + 0.004)
    assert tick == Tick(1, round(MINUTE_MARK * 1000), round(MINUTE_MARK * 1000) + 4)
    assert tick.lateness_ms == 4
    assert ticker.next_deadline == MINUTE_MARK + 60


def test_start_exactly_on_a_deadline_fires_it():
    ticker = Ticker(60, MINUTE_MARK)
    assert ticker.next_deadline == MINUTE_MARK
    assert ticker.fire(MINUTE_MARK).scheduled_ms == round(MINUTE_MARK * 1000)


def test_quarter_second_deadlines():
    ticker = Ticker(0.25, 1000.1)
    assert ticker.next_deadline == 1000.25
    assert ticker.fire(1000.25).scheduled_ms == 1_000_250
    assert ticker.next_deadline == 1000.5


@pytest.mark.parametrize("interval", [60, 0.25, 0.1, 1 / 3])
def test_no_drift_over_100000_ticks(interval):
    start = 1_729_038_116.668
    ticker = Ticker(interval, start)
    k = ticker.next_deadline / interval
    k = round(k)
    assert ticker.next_deadline == k * interval
    assert (k - 1) * interval < start <= k * interval
    for number in range(1, 100_001):
        deadline = ticker.next_deadline
        assert deadline == k * interval  # k * interval, never an accumulated sum
        tick = ticker.fire(deadline + interval * 0.01)  # always a little late
        assert tick is not None and tick.number == number
        k += 1
    assert ticker.missed == 0 and ticker.overruns == 0
    assert ticker.next_deadline == k * interval


def test_spurious_early_wake_returns_none_and_changes_nothing():
    ticker = Ticker(60, NOW)
    assert ticker.fire(MINUTE_MARK - 0.001) is None
    assert ticker.fire(NOW) is None
    assert (ticker.number, ticker.missed, ticker.overruns) == (0, 0, 0)
    assert ticker.next_deadline == MINUTE_MARK
    assert ticker.lateness.percentile(50) is None


def test_woken_several_intervals_late_fires_once_for_the_most_recent_deadline():
    ticker = Ticker(60, NOW)
    tick = ticker.fire(MINUTE_MARK + 3 * 60 + 12.5)  # slept through 00:22, 00:23, 00:24; now 00:25:12.5
    assert tick.number == 1
    assert tick.scheduled_ms == round((MINUTE_MARK + 180) * 1000)
    assert tick.lateness_ms == 12_500
    assert ticker.missed == 3
    assert ticker.overruns == 0
    assert ticker.next_deadline == MINUTE_MARK + 240
    assert ticker.fire(MINUTE_MARK + 3 * 60 + 12.6) is None  # no burst of catch-up ticks
    assert ticker.fire(MINUTE_MARK + 240).number == 2
    assert ticker.missed == 3


def test_woken_exactly_on_a_later_deadline_fires_that_deadline():
    ticker = Ticker(60, NOW)
    tick = ticker.fire(MINUTE_MARK + 120)
    assert tick.scheduled_ms == round((MINUTE_MARK + 120) * 1000)
    assert tick.lateness_ms == 0
    assert ticker.missed == 2


@settings(max_examples=300, deadline=None)
@given(
    interval=st.sampled_from([0.1, 0.2, 0.3, 0.25, 0.7, 1 / 3, 1.5, 60.0]),
    start=st.integers(1, 10**6),
    skipped=st.integers(0, 50),
    extra=st.sampled_from([0.0, 0.5, 0.999]),
)
def test_fire_always_picks_the_most_recent_deadline(interval, start, skipped, extra):
    ticker = Ticker(interval, start * interval)
    assert ticker.next_deadline == start * interval
    now = (start + skipped + extra) * interval if extra else (start + skipped) * interval
    tick = ticker.fire(now)
    assert tick is not None
    assert ticker.missed == skipped
    assert tick.scheduled_ms == round((start + skipped) * interval * 1000)
    assert ticker.next_deadline == (start + skipped + 1) * interval
    assert ticker.next_deadline > now  # nothing left due: no burst


def test_busy_deadline_is_missed_and_an_overrun():
    ticker = Ticker(60, NOW)
    assert ticker.fire(MINUTE_MARK + 0.01).number == 1
    assert ticker.fire(MINUTE_MARK + 60.01, busy=True) is None
    assert (ticker.number, ticker.missed, ticker.overruns) == (1, 1, 1)
    assert ticker.next_deadline == MINUTE_MARK + 120
    assert ticker.fire(MINUTE_MARK + 120.01).number == 2
    assert (ticker.missed, ticker.overruns) == (1, 1)


def test_busy_and_late_counts_every_deadline_as_missed():
    ticker = Ticker(60, NOW)
    assert ticker.fire(MINUTE_MARK + 150, busy=True) is None  # deadlines +0, +60, +120 all gone
    assert (ticker.number, ticker.missed, ticker.overruns) == (0, 3, 1)
    assert ticker.next_deadline == MINUTE_MARK + 180


def test_overrun_records_no_lateness():
    ticker = Ticker(60, NOW)
    ticker.fire(MINUTE_MARK + 30, busy=True)
    assert ticker.lateness.percentile(50) is None
    assert ticker.lateness.max_ms == 0.0


def test_lateness_statistics_of_ticks():
    ticker = Ticker(1, 0.5)
    for k in range(1, 101):
        ticker.fire(k + k / 1000)  # tick k is k ms late
    assert ticker.number == 100
    assert ticker.lateness.percentile(50) == pytest.approx(50.5, abs=1e-6)
    assert ticker.lateness.percentile(99) == pytest.approx(99.01, abs=1e-6)
    assert ticker.lateness.max_ms == pytest.approx(100, abs=1e-6)


@pytest.mark.parametrize("interval", [0, -1, float("nan")])
def test_interval_must_be_positive(interval):
    with pytest.raises(ValueError, match="interval must be > 0"):
        Ticker(interval, NOW)


def test_lateness_stats_window_and_max():
    stats = LatenessStats(window=3)
    assert stats.percentile(50) is None and stats.max_ms == 0.0
    for value in (500.0, 1.0, 2.0, 3.0):
        stats.add(value)
    assert stats.percentile(50) == 2.0  # the 500 ms one left the window
    assert stats.percentile(100) == 3.0
    assert stats.max_ms == 500.0  # but stays the worst ever
