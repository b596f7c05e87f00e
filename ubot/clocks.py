"""Time sources, injected wherever time matters, so tests step time instead of sleeping.

``now()`` is wall-clock time in epoch seconds (UTC). ``sleep_until(deadline, stop)`` blocks until
the clock reaches ``deadline`` or ``stop`` is set (returns ``False`` then); ``wake()`` makes a
sleeper re-check ``stop``.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool: ...

    def wake(self) -> None: ...


class SystemClock:
    """The real clock. Sleeps in one timed wait per deadline: no polling, ~0 CPU between ticks."""

    def now(self) -> float:
        return time.time()

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        while True:
            remaining = deadline - time.time()
            if remaining <= 0:
                return True
            # Event.wait measures with the monotonic clock; the loop re-checks the wall clock in
            # case it was stepped (NTP) while we slept.
            if stop.wait(remaining):
                return False

    def wake(self) -> None:
        """Nothing to do: setting ``stop`` already wakes :meth:`sleep_until`."""


class FakeClock:
    """A clock that only moves when a test says so. Thread-safe."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._cond = threading.Condition()
        self._sleepers: dict[int, float] = {}  # thread id -> the deadline it sleeps until

    def now(self) -> float:
        with self._cond:
            return self._now

    def advance(self, seconds: float) -> None:
        with self._cond:
            self._now += seconds
            self._cond.notify_all()

    def set(self, when: float) -> None:
        with self._cond:
            self._now = float(when)
            self._cond.notify_all()

    def sleep_until(self, deadline: float, stop: threading.Event) -> bool:
        me = threading.get_ident()
        with self._cond:
            self._sleepers[me] = deadline
            self._cond.notify_all()
            try:
                while self._now < deadline and not stop.is_set():
                    self._cond.wait()
                return not stop.is_set()
            finally:
                del self._sleepers[me]
                self._cond.notify_all()

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def wait_for_sleeper(self, timeout: float = 5.0) -> float:
        """Block until some thread sleeps on this clock; return the earliest deadline a thread sleeps
        until (several threads may sleep on one clock).

        A sleeper whose deadline the clock has already reached is about to wake up, not asleep: it
        does not count (so ``set(deadline)`` then ``wait_for_sleeper()`` waits for the next sleep).
        """

        def earliest() -> float | None:
            waiting = [d for d in self._sleepers.values() if d > self._now]
            return min(waiting) if waiting else None

        with self._cond:
            if not self._cond.wait_for(lambda: earliest() is not None, timeout):
                raise TimeoutError("nobody is sleeping on the fake clock")
            return earliest()  # type: ignore[return-value]
