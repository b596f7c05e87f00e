"""Clock actor: ticks on exact multiples of the interval (UTC), drives the pipeline, measures itself.

The waiting is :class:`ubot.ticking.TickLoop` (its own thread: one timed wait per deadline, no
polling), which tells the Fetcher each :class:`~ubot.schedule.Tick`. The actor's mailbox stays free
for ``TickFinished`` (from the Monitor), ``StopTicking`` and ``GetClockStats``.

With ``interval_s == 0`` ticks run back-to-back: the next one fires as soon as the previous one is
finished (replays as fast as the pipeline can go).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import pykka

from ubot.actors.stage import unexpected
from ubot.clocks import Clock
from ubot.health import ClockStats
from ubot.messages import GetClockStats, StopTicking, TickFinished, WatchTicks
from ubot.ticking import TickLoop

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
        self.loop = TickLoop(interval_s, clock, target.tell)

    def on_start(self) -> None:
        if self.monitor is not None:
            self.monitor.tell(WatchTicks(self.actor_ref))
        self.loop.start()

    def on_stop(self) -> None:
        self.loop.halt()
        self.loop.join()

    def on_failure(self, *exc_info: object) -> None:
        """pykka stops a failed actor without calling on_stop: the tick loop must stop too."""
        self.loop.halt()

    @functools.singledispatchmethod
    def on_receive(self, message: Any) -> Any:
        unexpected(self, message)

    @on_receive.register
    def _finished(self, message: TickFinished) -> None:
        self.loop.finished()

    @on_receive.register
    def _stop_ticking(self, message: StopTicking) -> None:
        log.info("clock stopped: %s", message.reason)
        self.loop.halt()

    @on_receive.register
    def _get_stats(self, message: GetClockStats) -> ClockStats:
        return self.loop.stats()
