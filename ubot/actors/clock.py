"""Clock actor: ticks on exact multiples of the interval (UTC), drives the pipeline, measures itself.

A dedicated timer thread sleeps until each deadline (one timed wait, no polling), then tells the
Fetcher a :class:`~ubot.schedule.Tick`. The actor's own mailbox stays free for ``TickFinished``
(from the Monitor), ``StopTicking`` and ``GetClockStats``. The deadline arithmetic, missed-tick and
lateness bookkeeping are in :class:`ubot.schedule.Ticker`.

With ``interval_s == 0`` ticks run back-to-back: the next one fires as soon as the previous one is
finished (replays as fast as the pipeline can go).
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any

import pykka

from ubot import metrics
from ubot.actors.stage import unexpected
from ubot.clocks import Clock
from ubot.health import ClockStats
from ubot.messages import GetClockStats, StopTicking, TickFinished, WatchTicks
from ubot.schedule import LatenessStats, Tick, Ticker

log = logging.getLogger(__name__)


class ClockActor(pykka.ThreadingActor):
    def __init__(
        self,
        interval_s: float,
        clock: Clock,
        target: pykka.ActorRef,
        monitor: pykka.ActorRef | None = None,
    ) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.clock = clock
        self.target = target
        self.monitor = monitor
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._busy = False
        self._ticker: Ticker | None = None
        self._number = 0  # back-to-back mode
        self._last_fired: float | None = None
        self._thread = threading.Thread(target=self._run, name="ubot-clock", daemon=True)

    # -- actor side ---------------------------------------------------------------------------

    def on_start(self) -> None:
        if self.monitor is not None:
            self.monitor.tell(WatchTicks(self.actor_ref))
        if self.interval_s > 0:
            self._ticker = Ticker(self.interval_s, self.clock.now())
        self._thread.start()

    def on_stop(self) -> None:
        self._halt()
        self._thread.join()

    def on_failure(self, *exc_info: object) -> None:
        """pykka stops a failed actor without calling on_stop: the timer thread must stop too."""
        self._halt()

    @functools.singledispatchmethod
    def on_receive(self, message: Any) -> Any:
        unexpected(self, message)

    @on_receive.register
    def _finished(self, message: TickFinished) -> None:
        with self._lock:
            self._busy = False
            self._lock.notify_all()

    @on_receive.register
    def _stop_ticking(self, message: StopTicking) -> None:
        log.info("clock stopped: %s", message.reason)
        self._halt()

    @on_receive.register
    def _get_stats(self, message: GetClockStats) -> ClockStats:
        return self._stats()

    def _halt(self) -> None:
        self._stopping.set()
        self.clock.wake()
        with self._lock:
            self._lock.notify_all()

    def _stats(self) -> ClockStats:
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

    # -- timer thread -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            tick = self._next_tick()
            if tick is not None:
                self.target.tell(tick)

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
