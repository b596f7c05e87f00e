"""TickLoop without any actor: the deadlines it sleeps until, one tick in flight, halting."""

from __future__ import annotations

import queue

from ubot.clocks import FakeClock
from ubot.schedule import Tick
from ubot.ticking import TickLoop

WAIT = 10.0


def loop_on(interval_s: float, clock: FakeClock) -> tuple[TickLoop, queue.Queue[Tick]]:
    fired: queue.Queue[Tick] = queue.Queue()
    loop = TickLoop(interval_s, clock, fired.put)
    loop.start()
    return loop, fired


def test_fires_on_the_boundary_and_skips_a_deadline_while_busy() -> None:
    clock = FakeClock(1_700_000_030.0)
    loop, fired = loop_on(60, clock)
    try:
        first = clock.wait_for_sleeper()
        assert first == 1_700_000_040.0
        clock.set(first)
        assert fired.get(timeout=WAIT) == Tick(1, 1_700_000_040_000, 1_700_000_040_000)
        second = clock.wait_for_sleeper()
        clock.set(second)  # tick 1 still in flight: this deadline is an overrun
        assert clock.wait_for_sleeper() == second + 60
        assert fired.empty()
        loop.finished()
        clock.set(second + 60)
        assert fired.get(timeout=WAIT) == Tick(2, 1_700_000_160_000, 1_700_000_160_000)
        stats = loop.stats()
        assert (stats.ticks, stats.missed_ticks, stats.overruns) == (2, 1, 1)
    finally:
        loop.halt()
        loop.join()


def test_back_to_back_fires_the_next_tick_when_the_previous_is_finished() -> None:
    clock = FakeClock(1_700_000_000.0)
    loop, fired = loop_on(0, clock)
    try:
        assert fired.get(timeout=WAIT).number == 1
        loop.finished()
        assert fired.get(timeout=WAIT).number == 2
        assert loop.stats().ticks == 2
    finally:
        loop.halt()
        loop.join()
    assert not loop.stats().ticking


def test_halt_ends_the_thread_while_it_sleeps() -> None:
    clock = FakeClock(1_700_000_000.5)
    loop, fired = loop_on(60, clock)
    clock.wait_for_sleeper()
    loop.halt()
    loop.join()
    assert fired.empty()
    assert not loop.stats().ticking
