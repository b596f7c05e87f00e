"""Periodic on a FakeClock: one call per period of the clock, an end on close or on False."""

from __future__ import annotations

import queue
import threading

from ubot.clocks import FakeClock
from ubot.periodic import Periodic

WAIT = 10.0


def test_calls_once_per_period_until_closed() -> None:
    clock = FakeClock(100.0)
    calls: queue.Queue[float] = queue.Queue()
    beat = Periodic(clock, 0.5, lambda: calls.put(clock.now()), "test-periodic").start()
    try:
        assert clock.wait_for_sleeper() == 100.5
        assert calls.empty()
        clock.set(100.5)
        assert calls.get(timeout=WAIT) == 100.5
        assert clock.wait_for_sleeper() == 101.0  # the next period starts from the call
    finally:
        beat.close(join_s=WAIT)
    assert not beat.thread.is_alive()


def test_a_call_answering_false_ends_the_loop() -> None:
    clock = FakeClock(0.0)
    beat = Periodic(clock, 1.0, lambda: False, "test-periodic").start()
    clock.set(clock.wait_for_sleeper())
    beat.thread.join(WAIT)
    assert not beat.thread.is_alive()


def test_on_exit_runs_in_the_thread_when_it_ends() -> None:
    clock = FakeClock(0.0)
    ended: queue.Queue[str] = queue.Queue()
    beat = Periodic(
        clock, 1.0, lambda: None, "test-periodic", on_exit=lambda: ended.put(threading.current_thread().name)
    ).start()
    clock.wait_for_sleeper()
    assert ended.empty()
    beat.close(join_s=WAIT)
    assert ended.get(timeout=WAIT) == "test-periodic"
