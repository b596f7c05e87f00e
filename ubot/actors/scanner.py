"""Scanner supervisor and its worker pool: each new snapshot against every enabled strategy.

The supervisor (:class:`Scanner`) receives every ``Candled`` tick from the OHLC actor, folds its candles
into the indicator history, builds one shared :class:`~ubot.scan.frame.MarketFrame` and sends it to
every :class:`ScanWorker` actor. Each worker evaluates the strategies it owns (routed by strategy id)
and tells the Notifier its alerts and firing-state changes, then tells the supervisor it is done.

* A tick that arrives while a scan is still running is not piled up: the latest one waits (its candles
  are folded in at once), any older waiting one is dropped and counted in ``scans_skipped``.
* A worker that dies (a bug) tells the supervisor from ``on_failure``; the supervisor starts a new one
  with the same strategies, which reads their firing state back from the Notifier (after every write
  already in the Notifier's mailbox), logs it and counts it in ``worker_restarts``. If it died during
  a scan, the new one gets that tick's frame again (once). Other workers are not touched.
* A failure in the supervisor's own work (loading candle history from a database that is down) loses
  that tick's scan, logged; the supervisor stays up.
* A new indicator series is seeded by a thread of its own (``scan/seeding.py``: the planner's
  :class:`~ubot.scan.seeding.Seeder`, stepped by a :class:`~ubot.scan.seeding.SeedRunner` that is
  paused while a scan runs and tells ``SeedsReady`` when a seed is done): the strategies that read
  it are not evaluated until it is merged; everybody else's are, every tick.
* Strategies come from the UserManager: all of them at start (:class:`WatchStrategies`), then each
  user's enabled strategies whenever they or the user's settings change.
* In a scanner process (``--role scanner``, ``shares`` given) ticks come as :class:`ScanStored`
  (from the bus's ``TickReady``) instead of ``Candled``: the snapshot and its candles are read from
  the database when its scan starts, and only this process's share of the strategies is scanned, as
  that tick's view of the live scanners splits them (``scan/assign.py``). A strategy that comes to
  this process reads its firing state from the database, and is scanned first for the snapshots
  after its scan mark (``scan/backlog.py``); one that moves away keeps its state there. A new
  series is seeded by the seeding thread here too (``ScanPlanner.replay(wait=False)``), but for the
  strategies a tick hands over, which are seeded in that tick (their missed snapshots need them).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pykka

from ubot.actors.stage import not_fatal, stopping, tell_if_alive, unexpected
from ubot.messages import Candled
from ubot.models.db import close_connection
from ubot.models.snapshots import SnapshotReader
from ubot.notify.messages import GetAlertState, GetScanMarks, GetScanWatermark, Scanned, ScanOutcome
from ubot.scan.assign import Shares
from ubot.scan.backlog import Backlog, Scan
from ubot.scan.messages import (
    DisableStrategy,
    ScanDone,
    ScanFinished,
    ScannerStats,
    ScanStored,
    ScanTick,
    SeedsReady,
    SetStrategies,
    StrategiesChanged,
    StrategyErrors,
    WatchStrategies,
    WorkerDied,
)
from ubot.scan.planner import Loader, ScanPlanner
from ubot.scan.rounds import Round, ScanFigures
from ubot.scan.seeding import SeedRunner
from ubot.scan.worker import ScanWorker
from ubot.stopping import Stopped, StopToken

log = logging.getLogger(__name__)
ASK_TIMEOUT = 60.0


class ScanWorkerActor(pykka.ThreadingActor):
    def __init__(
        self,
        index: int,
        supervisor: pykka.ActorRef,
        notifier: pykka.ActorRef | None,
        workers: int = 1,
        turn: threading.Lock | None = None,
        stop_token: StopToken | None = None,
    ) -> None:
        super().__init__()
        self.index = index
        self.stop_token = stop_token  # its process stops: the messages left are dropped
        self.turn = turn or contextlib.nullcontext()
        self.supervisor = supervisor
        self.notifier = notifier
        self.worker = ScanWorker(index, workers)

    @functools.singledispatchmethod
    def on_receive(self, message: Any) -> Any:
        unexpected(self, message)

    @on_receive.register
    def _set(self, message: SetStrategies) -> None:
        if stopping(self):
            return
        known = set(self.worker.entries)
        for user_id, specs in message.users.items():
            self.worker.replace_user(user_id, specs, message.forget)
        if self.notifier is None:
            return
        if message.forget:  # the saved state goes too, after this worker's earlier outcomes
            tell_if_alive(
                self.notifier, ScanOutcome(worker=self.index, tick=0, snapshot_ms=0, forget=message.forget)
            )
        # Strategies this worker has not seen in this run: continue from their saved state.
        if new := tuple(sorted(set(self.worker.entries) - known - set(message.forget))):
            try:
                self.worker.restore(self.notifier.ask(GetAlertState(new), timeout=ASK_TIMEOUT))
            except Exception:  # the database is down: start them afresh rather than not at all
                log.exception(
                    "scan worker %d: firing state of %d strategy(ies) unknown", self.index, len(new)
                )

    @on_receive.register
    def _scan(self, message: ScanTick) -> None:
        if stopping(self):  # its outcome unwritten: the strategies' scan marks stay where they were
            return
        started = time.perf_counter()
        frame = message.frame
        with self.turn:
            result = self.worker.scan(frame, message.only, message.skip)
        # A scanner process's outcome is told every time: it moves the scan marks of what it scanned.
        if self.notifier is not None and (result.alerts or result.states or message.snapshot_id):
            tell_if_alive(
                self.notifier,
                ScanOutcome(
                    worker=self.index,
                    tick=frame.tick,
                    snapshot_ms=frame.timestamp_ms,
                    alerts=tuple(result.alerts),
                    states=tuple(result.states),
                    snapshot_id=message.snapshot_id,
                    scanned=tuple(result.scanned) if message.snapshot_id else (),
                ),
            )
        tell_if_alive(
            self.supervisor,
            ScanDone(
                worker=self.index,
                tick=frame.tick,
                evaluated=result.evaluated,
                coins=result.coins,
                alerts=len(result.alerts),
                errors=result.errors,
                disable=tuple(result.disable),
                ms=(time.perf_counter() - started) * 1000,
            ),
        )

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        name = getattr(exception_type, "__name__", exception_type)
        tell_if_alive(self.supervisor, WorkerDied(self.index, f"{name}: {exception_value}"))


class Scanner(pykka.ThreadingActor):
    def __init__(
        self,
        workers: int = 10,
        *,
        users: pykka.ActorRef | None = None,
        notifier: pykka.ActorRef | None = None,
        monitor: pykka.ActorRef | None = None,
        load: Loader | None = None,
        snapshots: SnapshotReader | None = None,
        now_ms: Any = None,
        parallel: bool = False,
        timer: Callable[[], float] = time.perf_counter,
        shares: Shares | None = None,
        background_seeding: bool = True,
        clock: Callable[[], float] = time.monotonic,
        on_scan: Callable[[ScannerStats], object] | None = None,
        stop: StopToken | None = None,
    ) -> None:
        """``load``: candle history from the database; ``snapshots``: stored snapshots, to scan those
        a crash left unscanned (both None in tests without a database); ``timer``: seconds, for the
        scan times of ``/health``; ``shares``: this scanner process's share of the strategies
        (``--role scanner``; None: every strategy); ``background_seeding``: new indicator series
        are seeded by a thread of their own (``scan/seeding.py``), never in a tick (False: in the
        tick that needs them); ``clock``: seconds, for the seeds' durations; ``on_scan``: called with
        the figures after each scan (a scanner process's metrics: it has no Monitor); ``stop``: its
        process's stop (``ubot/stopping.py``): once set, long work (reading and planning every
        strategy, a seed in the tick, reading stored candles) is abandoned between chunks. A scanner
        process then drops every message left (its workers and Notifier too): the strategies' scan
        marks stay where they were, and whoever scans them next scans those snapshots again. In
        ``all`` and ``engine`` the tick in flight is scanned and written before the stop (the
        graceful stop), unless work was abandoned: then nothing more is scanned, and the next
        start catches up from the scan watermark."""
        super().__init__()
        self.process_stop = stop
        self.abandoned = False  # on_start's reading of the strategies, abandoned at the stop
        self.planner = ScanPlanner(workers, load, background=background_seeding, clock=clock, stop=stop)
        self.seeding: SeedRunner | None = None
        self.snapshots = snapshots
        self.shares = shares
        self.caught_up = False
        self.backlog = Backlog(self.planner, snapshots)
        self.round: Round | None = None  # the scan in progress
        self.figures = ScanFigures()
        self.timer = timer
        #: Seconds spent folding ticks' candles into the indicator state (and seeding it) since the
        #: last scan started: counted in the next scan's time, as building its frame is.
        self.folding = 0.0
        self.users = users
        self.notifier = notifier
        self.monitor = monitor
        self.on_scan = on_scan
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.pool: list[pykka.ActorRef] = []
        # The workers take turns (one scans at a time) unless ``parallel``: a worker's scan is mostly
        # Python under the GIL (its share of the firing decisions, its alerts), and ten threads at
        # once only add switching (docs/architecture.md, Scanner, has the figures of bench/scanner.py).
        self.turn = None if parallel else threading.Lock()

    def on_start(self) -> None:
        me = self.actor_ref
        if self.planner.background:
            self.seeding = SeedRunner(self.planner.seeder, lambda: tell_if_alive(me, SeedsReady()))
            self.seeding.start()
        self.pool = [
            ScanWorkerActor.start(i, me, self.notifier, self.planner.workers, stop_token=self.stop_token)
            for i in range(self.planner.workers)
        ]
        if self.users is not None:
            try:
                everyone = self.users.ask(WatchStrategies(me, self.process_stop), timeout=ASK_TIMEOUT)
                if self.shares is not None:
                    everyone = self.shares.set_all(everyone)
                for worker, message in self.planner.set_all(everyone).items():
                    self.pool[worker].tell(message)
            except Stopped:
                self.abandoned = True  # the process stops before the strategies were all read or planned
                return
            log.info("scanner: %d strategies over %d workers", len(self.planner.specs), len(self.pool))

    @property
    def stop_token(self) -> StopToken | None:
        """The token that makes ``not_fatal`` drop this actor's messages (``actors/stage.py``): a
        scanner process's at once; in ``all`` and ``engine`` once some work was abandoned."""
        if self.shares is not None or self.abandoned or self.planner.abandoned:
            return self.process_stop
        return None

    def on_stop(self) -> None:
        if self.seeding is not None:
            self.seeding.stop()
        for ref in self.pool:
            try:
                ref.stop(block=True, timeout=30)
            except pykka.Timeout:
                log.error("a scan worker did not stop within 30 s")
        close_connection()

    # Told messages only: a failure (e.g. the database is down while loading candle history) loses that
    # message's work (logged; a tick's scan), and the Scanner stays up for the next one.
    @functools.singledispatchmethod
    def on_receive(self, message: Any) -> Any:
        unexpected(self, message)

    # -- ticks -------------------------------------------------------------------------------------

    @on_receive.register
    @not_fatal
    def _tick(self, message: Candled) -> None:
        if not self.caught_up:
            self.caught_up = True
            self._catch_up(message.snapshot_id)
        snapshot = message.snapshot
        started = self.timer()
        self.planner.update_candles(snapshot.timestamp_ms, message.closed_candles, message.open_candles)
        self._seeded()
        folded = self.timer() - started
        self.folding += folded
        self.figures.history_ms = folded * 1000
        replaced = self.backlog.wait(message)
        if replaced is not None:
            self.figures.skipped += 1
            log.warning("scanner: tick %d not scanned, a scan is still running", replaced.tick.number)
            self._finished(replaced.tick.number)
        if self.round is None:
            self._next()

    @on_receive.register
    @not_fatal
    def _stored(self, message: ScanStored) -> None:
        if self.shares is not None:
            changes = self.shares.view(message.members)
            if gained := [i for change in changes for i in change.gained]:
                self.backlog.taken_over = True  # their series are seeded in the tick: see backlog.py
                # Read before their workers read their firing state: a scan written in between is
                # scanned again and not written twice (``AlertStore.record``), never skipped.
                marks = self._marks(tuple(gained))
                self.backlog.marks.update(marks)
                log.info(
                    "scanner: %d strategy(ies) taken over at snapshot %d, %d of them scanned before (scan "
                    "marks %s)",
                    len(gained),
                    message.snapshot_id,
                    len(marks),
                    f"{min(marks.values())} to {max(marks.values())}" if marks else "none",
                )
            if changes:  # every user's at once: one replan, one message per worker
                told = self.planner.set_users((c.user_id, c.specs, c.moved) for c in changes)
                for worker, share in told.items():
                    tell_if_alive(self.pool[worker], share)
        replaced = self.backlog.wait_stored(message.number, message.snapshot_id)
        if replaced is not None:
            self.figures.skipped += 1
            log.warning(
                "scanner: tick %d not scanned on time, a scan is still running; scanning it next", replaced[0]
            )
        if self.round is None:
            self._next()

    def _marks(self, strategy_ids: tuple[int, ...]) -> dict[int, int]:
        """The scan marks of strategies that came to this scanner process (none known: scanned from
        this tick on, as a new strategy is)."""
        if self.notifier is None:
            return {}
        try:
            return self.notifier.ask(GetScanMarks(strategy_ids), timeout=ASK_TIMEOUT)
        except Exception:
            log.exception(
                "scanner: the scan marks of %d strategy(ies) taken over are unknown", len(strategy_ids)
            )
            return {}

    def _catch_up(self, live_id: int) -> None:
        """Queue the scans of the snapshots the last run stored but did not scan (``scan/backlog.py``)."""
        if self.notifier is None or self.snapshots is None:
            return
        watermark = self.notifier.ask(GetScanWatermark(), timeout=ASK_TIMEOUT)
        if missed := self.backlog.catch_up_from(self.snapshots, watermark, live_id):
            log.info("scanner: scanning %d snapshot(s) stored before a crash but never scanned", missed)

    def _next(self) -> None:
        """Start the next waiting scan, if any. A live tick with no strategy to scan is done at once."""
        while True:
            if self.process_stop is not None and self.process_stop.stopping and self.backlog.catch_up:
                # The snapshots a crash left unscanned come before the live tick: the next start scans
                # them (from the scan watermark), and this one after them.
                self.abandoned = True
                return
            # a scan's time includes building its frame, and the indicator state's work since the last
            # scan (the candles folded in, a history seeded from the database)
            started = self.timer()
            stored = self.backlog.stored
            if stored is not None and not self.backlog.catch_up and not self.planner.specs:
                self.backlog.stored = None  # nothing of this process's to scan: not even read
                self._scanned(stored[1])
                continue
            if (scan := self.backlog.next()) is None:
                return
            if scan.live:
                started, self.folding = started - self.folding, 0.0
            if scan.live and not self.planner.specs:
                self._scanned(scan.snapshot_id)
                self._finished(scan.frame.tick)
                continue
            self._start(scan, started)
            return

    def _seeded(self) -> None:
        """Tell the workers of the strategies whose seeds were merged, their owners what waits for a
        seed (``last_error``), and the seeding thread that there is work."""
        for worker, told in self.planner.take_told().items():
            tell_if_alive(self.pool[worker], told)
        notes = self.planner.take_notes()
        if notes and self.users is not None:
            tell_if_alive(self.users, StrategyErrors(notes, self.now_ms()))
        if self.seeding is not None:
            self.seeding.wake()

    @on_receive.register
    @not_fatal
    def _seeds_ready(self, message: SeedsReady) -> None:
        """A seed finished (the seeding thread says so): its strategies are planned, and evaluated
        from the next scan that starts."""
        if self.planner.merge():
            self._seeded()
            if self.monitor is not None:
                tell_if_alive(self.monitor, self.stats())

    def _start(self, scan: Scan, started: float) -> None:
        self._seeded()
        if self.seeding is not None:
            self.seeding.pause(True)  # the scan has the CPU; a seed continues after it
        # A scanner process's workers name the snapshot: their outcomes move its scan marks.
        told = (
            ScanTick(scan.frame, scan.snapshot_id, scan.only, scan.skip) if self.shares is not None else None
        )
        self.round = Round(scan.frame, scan.snapshot_id, set(range(len(self.pool))), started, message=told)
        self.planner.scan_started()
        for worker in self.pool:
            # A worker that died after its last message is replaced when its WorkerDied arrives,
            # and gets this frame then.
            tell_if_alive(worker, self.round.told)

    def _finished(self, tick: int) -> None:
        if self.monitor is not None:
            tell_if_alive(self.monitor, ScanFinished(tick))

    def _scanned(self, snapshot_id: int) -> None:
        """Every worker told the Notifier its outcome for this snapshot: the watermark may move."""
        if self.notifier is not None and snapshot_id:
            tell_if_alive(self.notifier, Scanned(snapshot_id))

    @on_receive.register
    @not_fatal
    def _done(self, message: ScanDone) -> None:
        if self.round is None or not self.round.done(message):
            return
        self.planner.scan_done(message.worker)
        for strategy_id in message.disable:
            self.planner.retire(strategy_id)
        if self.round.finished:
            self._finish(self.round)

    def _finish(self, scan: Round) -> None:
        self.round = None
        if self.seeding is not None:
            self.seeding.pause(False)
        self.figures.finished(scan, (self.timer() - scan.started) * 1000)
        if self.users is not None:
            if scan.errors:
                tell_if_alive(self.users, StrategyErrors(dict(scan.errors), self.now_ms()))
            for strategy_id in scan.disable:
                tell_if_alive(self.users, DisableStrategy(strategy_id))
        self._scanned(scan.snapshot_id)
        if self.monitor is not None:
            tell_if_alive(self.monitor, self.stats())  # for /health
        if self.on_scan is not None:
            self.on_scan(self.stats())
        if scan.live:  # catch-up scans are no tick of this run
            self._finished(scan.tick)
        self._next()

    # -- strategies and workers ---------------------------------------------------------------------

    @on_receive.register
    @not_fatal
    def _change(self, message: StrategiesChanged) -> None:
        specs = message.specs if self.shares is None else self.shares.set_user(message.user_id, message.specs)
        for worker, change in self.planner.set_user(message.user_id, specs).items():
            tell_if_alive(self.pool[worker], change)  # a dead one gets it on restart

    @on_receive.register
    @not_fatal
    def _restart(self, message: WorkerDied) -> None:
        index = message.worker
        if self.pool[index].is_alive():  # already replaced
            return
        self.figures.worker_restarts += 1
        log.error("scan worker %d died (%s); restarting it with its strategies", index, message.reason)
        self.pool[index] = ScanWorkerActor.start(
            index, self.actor_ref, self.notifier, self.planner.workers, self.turn, self.stop_token
        )
        self.pool[index].tell(self.planner.restart(index))
        scan = self.round
        if scan is None or index not in scan.outstanding:
            return
        if scan.resend(index):  # its part of this scan, once
            self.pool[index].tell(scan.told)
            return
        log.error("scan worker %d died twice on tick %d: its part of that tick is lost", index, scan.tick)
        if scan.finished:
            self._finish(scan)

    def stats(self) -> ScannerStats:
        seeds = self.planner.seed_seconds
        return self.figures.stats(
            len(self.pool),
            len(self.planner.specs),
            self.planner.costs,
            len(self.planner.waiting),
            seeds[-1] if seeds else None,
        )
