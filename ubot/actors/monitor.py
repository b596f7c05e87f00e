"""Monitor actor: the end of every tick. Logs it, keeps the health figures, paces the Clock.

It tells the Clock when each tick is finished (so the Clock never sends a tick into a busy
pipeline), stops the Clock when the source is exhausted or ``--ticks N`` is reached, and then calls
``on_finished`` so that ``run.py`` can exit (or keep serving HTTP after a replay).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
from collections.abc import Callable
from typing import Any

import pykka

from ubot import metrics
from ubot.actors.stage import unexpected
from ubot.clocks import Clock
from ubot.health import PipelineStats, database_lost_line, tick_line
from ubot.messages import (
    GetHealth,
    SourceExhausted,
    SourceFailed,
    StageFault,
    StopTicking,
    TickDone,
    TickFinished,
    WatchTicks,
)
from ubot.progress import Progress
from ubot.scan.messages import ScanFinished, ScannerStats

log = logging.getLogger(__name__)


class Monitor(pykka.ThreadingActor):
    def __init__(
        self,
        source: str,
        clock: Clock,
        max_ticks: int = 0,
        on_finished: Callable[[str], None] | None = None,
        progress: Progress | None = None,
        source_status: Callable[[], Any] | None = None,
        wait_for_scans: bool = False,
        database_watch: Callable[[], str | None] | None = None,
    ) -> None:
        """``wait_for_scans``: a tick is finished (for the Clock) only once the Scanner has scanned
        it too. Set with back-to-back ticks (interval 0: replays), so the Scanner is never outrun
        and no snapshot goes unscanned; with a real interval the Scanner skips instead (counted).
        ``database_watch``: checked at the end of every tick (``DatabaseWatch.check``); when it says
        the database is lost, ticking stops ("failed") and ``/health`` says why."""
        super().__init__()
        self.wait_for_scans = wait_for_scans
        # With interval 0 one tick is in flight at a time: at most one scan finishes before its TickDone.
        self.scanned_early: int | None = None
        self.awaiting: int | None = None  # a tick done here whose scan has not finished
        self.clock = clock
        self.stats = PipelineStats(source=source, started_at=clock.now())
        self.max_ticks = max_ticks
        self.on_finished = on_finished
        self.progress = progress or Progress()
        #: The source's own health (CoinMarketCap: credits, rate limits), if it reports one.
        self.source_status = source_status
        self.database_watch = database_watch
        self.ticker: pykka.ActorRef | None = None
        self.finished = False

    @functools.singledispatchmethod
    def on_receive(self, message: Any) -> Any:
        unexpected(self, message)

    @on_receive.register
    def _exhausted(self, message: SourceExhausted) -> None:
        self.stats.exhausted = True
        log.info("source exhausted after %d tick(s): no more ticks", self.stats.ticks)
        self._finish("exhausted")

    @on_receive.register
    def _failed(self, message: SourceFailed) -> None:
        self.stats.failed = message.reason
        log.error("no more ticks: %s", message.reason)
        self._finish("failed")

    @on_receive.register
    def _scanner_stats(self, message: ScannerStats) -> None:
        metrics.scanned(message, self.stats.scanner)
        self.stats.scanner = message.as_dict()

    @on_receive.register
    def _fault(self, message: StageFault) -> None:
        self.stats.fault(message.stage, message.problem)
        if not message.problem:
            log.info("%s: works again", message.stage)

    @on_receive.register
    def _watch(self, message: WatchTicks) -> None:
        self.ticker = message.clock

    @on_receive.register
    def _health(self, message: GetHealth) -> PipelineStats:
        stats = copy.deepcopy(self.stats)  # a value, not our live object
        if self.source_status is not None:
            stats.source_status = self.source_status().as_dict()
        return stats

    @on_receive.register
    def _done(self, done: TickDone) -> None:
        self.stats.record(done, self.clock.now())
        metrics.tick_done(done)
        level = logging.INFO if done.outcome == "ok" else logging.WARNING
        log.log(level, tick_line(done))
        if done.position is not None:
            self.progress.update(*done.position)
        lost = self.database_watch() if self.database_watch is not None else None
        if lost is not None:
            if not self.stats.database_lost:
                self.stats.database_lost = lost
                log.error("%s", database_lost_line(lost))
            self._finish("database")
        elif self.max_ticks and self.stats.ticks >= self.max_ticks:
            self._finish("ticks")
        elif self.wait_for_scans and done.outcome == "ok" and done.tick.number != self.scanned_early:
            self.awaiting = done.tick.number  # TickFinished when its scan is over
        else:
            self.scanned_early = None
            self._tell_clock(TickFinished(done.tick.number))

    @on_receive.register
    def _scan_finished(self, message: ScanFinished) -> None:
        tick = message.tick
        if not self.wait_for_scans:
            return
        if tick == self.awaiting:
            self.awaiting = None
            self._tell_clock(TickFinished(tick))
        else:
            self.scanned_early = tick

    def _tell_clock(self, message: Any) -> None:
        if self.ticker is None:
            return
        # At shutdown the Clock stops first; the ticks still in flight end here all the same.
        with contextlib.suppress(pykka.ActorDeadError):
            self.ticker.tell(message)

    def _finish(self, why: str) -> None:
        """``why``: "exhausted" (no more data), "failed" (the source can never work again),
        "database" (the database file is lost) or "ticks" (--ticks N reached)."""
        if self.finished:
            return
        self.finished = True
        reasons = {
            "exhausted": "source exhausted",
            "failed": "source failed",
            "database": "database lost",
            "ticks": "tick limit reached",
        }
        self._tell_clock(StopTicking(reasons[why]))
        if self.on_finished is not None:
            self.on_finished(why)
