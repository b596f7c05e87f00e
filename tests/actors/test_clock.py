"""ClockActor on a FakeClock: exact deadlines, one tick in flight at a time, missed ticks, stopping.

Each step: ``wait_for_sleeper()`` (the timer thread is asleep, and tells which deadline), move
the fake clock, then wait for the Tick at the target. ``ask(TickFinished(n))`` returns once the
actor has handled it, so the next deadline already sees the pipeline free.
"""

from __future__ import annotations

import threading

import pytest

from tests.support.actors import Inbox
from ubot.actors.clock import ClockActor
from ubot.clocks import FakeClock
from ubot.health import ClockStats
from ubot.messages import GetClockStats, StopTicking, TickFinished, WatchTicks
from ubot.schedule import Tick

START = 1_700_000_030.5  # seconds; not on a minute boundary
FIRST = 1_700_000_040.0  # the next multiple of 60 s
WAIT = 10.0


def ms(seconds: float) -> int:
    return round(seconds * 1000)


class Ticking:
    def __init__(self, interval_s: float, clock: FakeClock, monitor=None) -> None:
        self.target = Inbox()
        before = set(threading.enumerate())
        self.ref = ClockActor.start(interval_s, clock, self.target.ref, monitor)
        self.stats()  # answered after on_start: the timer thread is running
        (self.thread,) = [t for t in threading.enumerate() if t.name == "ubot-clock" and t not in before]

    def stats(self) -> ClockStats:
        return self.ref.ask(GetClockStats(), timeout=WAIT)

    def finished(self, number: int) -> None:
        self.ref.ask(TickFinished(number), timeout=WAIT)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


def test_ticks_fire_on_exact_interval_boundaries(clock) -> None:
    ticking = Ticking(60, clock)
    deadline = clock.wait_for_sleeper()
    assert deadline == FIRST

    for number in (1, 2, 3):
        clock.set(deadline + 0.25)  # the timer thread wakes 250 ms after the deadline
        assert ticking.target.next(Tick) == Tick(number, ms(deadline), ms(deadline + 0.25))
        ticking.finished(number)
        next_deadline = clock.wait_for_sleeper()
        assert next_deadline == deadline + 60  # k * interval: no drift from the late wake-ups
        deadline = next_deadline

    stats = ticking.stats()
    assert (stats.ticks, stats.missed_ticks, stats.overruns) == (3, 0, 0)
    assert stats.lateness_ms_p50 == pytest.approx(250) and stats.lateness_ms_max == pytest.approx(250)
    assert stats.ticking and stats.interval_s == 60
    assert stats.last_fired_at == FIRST + 120.25
    assert ticking.target.received() == []


def test_no_tick_while_the_previous_one_is_in_the_pipeline(clock) -> None:
    ticking = Ticking(60, clock)
    clock.set(clock.wait_for_sleeper())
    assert ticking.target.next(Tick).number == 1

    second = clock.wait_for_sleeper()
    clock.set(second)  # tick 1 not finished yet
    assert clock.wait_for_sleeper() == second + 60  # the deadline was handled...
    assert ticking.target.received() == []  # ...without a tick
    stats = ticking.stats()
    assert (stats.ticks, stats.missed_ticks, stats.overruns) == (1, 1, 1)

    ticking.finished(1)
    clock.set(second + 60)
    assert ticking.target.next(Tick) == Tick(2, ms(second + 60), ms(second + 60))
    assert ticking.stats().missed_ticks == 1


def test_waking_up_intervals_late_fires_once_and_counts_the_missed_deadlines(clock) -> None:
    ticking = Ticking(60, clock)
    assert clock.wait_for_sleeper() == FIRST

    clock.set(FIRST + 3 * 60 + 5)  # e.g. the machine was suspended

    assert ticking.target.next(Tick) == Tick(1, ms(FIRST + 180), ms(FIRST + 185))
    assert clock.wait_for_sleeper() == FIRST + 240
    assert ticking.target.received() == []
    stats = ticking.stats()
    assert (stats.ticks, stats.missed_ticks, stats.overruns) == (1, 3, 0)
    assert stats.lateness_ms_max == pytest.approx(5000)


def test_back_to_back_ticks_wait_for_the_previous_one_to_finish(clock) -> None:
    ticking = Ticking(0, clock)

    assert ticking.target.next(Tick) == Tick(1, ms(START), ms(START))
    assert ticking.stats().ticks == 1
    assert ticking.target.received() == []

    clock.advance(1.5)
    ticking.finished(1)
    assert ticking.target.next(Tick) == Tick(2, ms(START + 1.5), ms(START + 1.5))

    ticking.ref.ask(StopTicking("test over"), timeout=WAIT)
    ticking.thread.join(WAIT)
    assert not ticking.thread.is_alive()
    ticking.finished(2)  # would release a third tick if the clock were still ticking
    assert ticking.target.received() == []
    stats = ticking.stats()
    assert (stats.ticks, stats.missed_ticks, stats.ticking) == (2, 0, False)


def test_stop_ticking_wakes_the_sleeping_timer_and_ends_it(clock) -> None:
    ticking = Ticking(60, clock)
    assert clock.wait_for_sleeper() == FIRST

    ticking.ref.ask(StopTicking("tick limit reached"), timeout=WAIT)

    ticking.thread.join(WAIT)
    assert not ticking.thread.is_alive()
    clock.set(FIRST + 600)
    assert ticking.target.received() == []
    assert ticking.stats().ticking is False  # the actor itself still answers


def test_stopping_the_actor_ends_its_timer_thread(clock) -> None:
    ticking = Ticking(60, clock)
    clock.wait_for_sleeper()

    ticking.ref.stop(timeout=WAIT)

    assert not ticking.thread.is_alive()  # on_stop joined it


def test_the_clock_asks_the_monitor_to_report_finished_ticks(clock) -> None:
    monitor = Inbox()
    ticking = Ticking(60, clock, monitor=monitor.ref)

    assert monitor.next(WatchTicks).clock == ticking.ref


def test_a_failed_clock_actor_stops_its_timer_thread() -> None:
    """pykka skips on_stop for an actor that dies of an exception: on_failure must halt the thread."""
    import threading

    import pykka

    from ubot.actors.clock import ClockActor
    from ubot.clocks import FakeClock

    class Nobody(pykka.ThreadingActor):
        pass

    fake = FakeClock(start=1_000.5)
    target = Nobody.start()
    clock = ClockActor.start(60, fake, target)
    fake.wait_for_sleeper()
    clock.tell("not a message the clock knows")  # raises TypeError inside the actor: it dies
    clock_thread = next(t for t in threading.enumerate() if t.name == "ubot-clock")
    clock_thread.join(timeout=10)
    assert not clock_thread.is_alive()
    assert not clock.is_alive()
    target.stop()
