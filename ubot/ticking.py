"""The thread that fires ticks: sleeps until each deadline, fires one tick, waits for it to finish.

Plain thread machinery, kept out of the Clock actor (which only receives messages and calls this).
The deadline arithmetic and the missed-tick and lateness bookkeeping are in
:class:`ubot.schedule.Ticker`; this class adds the waiting: one timed wait per deadline on the
injected clock (no polling), and in back-to-back mode (``interval_s == 0``) a wait until the
previous tick is reported finished.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ubot import metrics
from ubot.clocks import Clock
from ubot.health import ClockStats
from ubot.schedule import LatenessStats, Tick, Ticker

log = logging.getLogger(__name__)


class TickLoop:
    """Fire a :class:`Tick` through ``fire`` on each deadline, one in flight at a time."""

    def __init__(self, interval_s: float, clock: Clock, fire: Callable[[Tick], None]) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._fire = fire
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._busy = False
        self._ticker: Ticker | None = None
        self._number = 0  # back-to-back mode
        self._last_fired: float | None = None
        self._thread = threading.Thread(target=self._run, name="ubot-clock", daemon=True)

    def start(self) -> None:
        if self.interval_s > 0:
            self._ticker = Ticker(self.interval_s, self.clock.now())
        self._thread.start()

    def halt(self) -> None:
        """Stop firing (idempotent); the thread ends at its next wake-up, which this causes."""
        self._stopping.set()
        self.clock.wake()
        with self._lock:
            self._lock.notify_all()

    def join(self) -> None:
        if self._thread.is_alive():
            self._thread.join()

    def finished(self) -> None:
        """The tick in flight is done: the next deadline may fire (back-to-back: fires at once)."""
        with self._lock:
            self._busy = False
            self._lock.notify_all()

    def stats(self) -> ClockStats:
        with self._lock:
            ticker = self._ticker
            lateness = ticker.lateness if ticker else LatenessStats()
            return ClockStats(
                interval_s=self.interval_s,
                ticks=ticker.number if ticker else self._number,
                missed_ticks=ticker.missed if ticker else 0,
                overruns=ticker.overruns if ticker else 0,
                lateness_ms_p50=lateness.percentile(50),
                lateness_ms_p99=lateness.percentile(99),
                lateness_ms_max=lateness.max_ms,
                ticking=not self._stopping.is_set(),
                last_fired_at=self._last_fired,
            )

    def _run(self) -> None:
        while not self._stopping.is_set():
            tick = self._next_tick()
            if tick is not None:
                self._fire(tick)

    def _next_tick(self) -> Tick | None:
        if self._ticker is None:  # back-to-back
            with self._lock:
                self._lock.wait_for(lambda: not self._busy or self._stopping.is_set())
                if self._stopping.is_set():
                    return None
                self._busy = True
                self._number += 1
                now = self.clock.now()
                self._last_fired = now
                ms = round(now * 1000)
                return Tick(self._number, ms, ms)
        if not self.clock.sleep_until(self._ticker.next_deadline, self._stopping):
            return None
        now = self.clock.now()
        with self._lock:
            missed_before = self._ticker.missed
            tick = self._ticker.fire(now, busy=self._busy)
            if self._ticker.missed > missed_before:
                metrics.ticks_missed(self._ticker.missed - missed_before)
                log.warning(
                    "clock: %d tick(s) missed (%s)",
                    self._ticker.missed - missed_before,
                    "pipeline still busy" if tick is None else "woke up late",
                )
            if tick is not None:
                self._busy = True
                self._last_fired = now
            return tick
