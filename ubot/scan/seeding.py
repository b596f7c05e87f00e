"""Seeding new indicator series from the stored history, off the scan path.

When a strategy reads an indicator series that its timeframe's state does not hold yet (``rsi(7)``
where only ``rsi(14)`` is tracked, or a timeframe no strategy used), only that series is seeded: a
:class:`SeedJob` holds an :class:`~ubot.scan.history.IndicatorHistory` of the new calls alone, reads
every stored closed candle of the timeframe opened before the tick that asked for it
(``models/closes.py``), folds them in, and keeps the closed candles of the ticks since in a buffer.
When it is done, the planner (``scan/planner.py``) folds the buffer in and hands its states to the
timeframe's live history (:meth:`IndicatorHistory.adopt`): the values are those over each coin's whole
history, as if the series had been tracked from the start, and the series already tracked were never
touched. Until then, the strategies that read the series are not evaluated (the planner holds them
back); everybody else's are, every tick.

A job works in bounded steps (:meth:`SeedJob.step`: one database read of a group of coins, or states
seeded over matrices of coins x candles, or candle columns of a fold, worth about :data:`STEP_UNITS`
state-coin advances), so that the
:class:`Seeder` can take turns between jobs and a :class:`SeedRunner` thread can stop between steps:
while a scan is in progress (:meth:`SeedRunner.pause`) and when the Scanner stops. The Seeder is plain
(its tests step it by hand); the runner is its one thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from ubot.market.candles import CandleRows
from ubot.models.db import close_connection
from ubot.rules import IndicatorCall
from ubot.scan.history import FOLD_CELLS, IndicatorHistory, joined

log = logging.getLogger(__name__)

#: load(timeframe, after_ms, before_ms): the stored closed candles (``models.closes.closed_candles``).
Loader = Callable[[str, int | None, int], Iterable[CandleRows]]

#: Work of one step, in state-coin advances (one state advanced by one candle for one coin, about
#: 0.1 µs on the development machine; a coin without state seeded at once counts one a candle and
#: state too, for less): about 25 ms.
STEP_UNITS = 250_000
#: Jobs in progress at once (each holds up to FOLD_CELLS candles while it folds); the others wait.
ACTIVE_JOBS = 4


class SeedJob:
    """The new ``calls`` of one timeframe, seeded from every stored closed candle opened before
    ``before_ms``. ``owner``: the user whose strategies asked for them (jobs take turns by owner)."""

    def __init__(
        self,
        timeframe: str,
        calls: Iterable[IndicatorCall],
        before_ms: int,
        load: Loader | None,
        owner: int = 0,
        clock: Callable[[], float] = time.monotonic,
        cells: int = FOLD_CELLS,
    ) -> None:
        self.timeframe = timeframe
        self.calls = frozenset(calls)
        self.before_ms = before_ms
        self.owner = owner
        self.history = IndicatorHistory(timeframe, self.calls)
        #: Closed candles of the ticks since the job was made, folded in when it is merged.
        self.buffer: list[CandleRows] = []
        self.started_s = clock()
        self.finished_s: float | None = None
        self.candles = 0  # stored candles folded in
        self.done = False
        self.cancelled = False
        self.failed = False
        self._clock = clock
        self._load = load
        self._cells = cells
        self._chunks: Iterator[CandleRows] | None = None
        self._pending: list[CandleRows] = []
        self._size = 0
        self._folding: Iterator[int] | None = None

    def step(self, units: int = STEP_UNITS) -> bool:
        """About ``units`` of work (at most one database read); True once the job is done."""
        spent = 0
        while not self.done and spent < units:
            if self._folding is not None:
                for work in self._folding:
                    spent += work
                    if spent >= units:
                        return False
                self._folding = None
                continue
            if self._chunks is None:
                self._chunks = iter(
                    () if self._load is None else self._load(self.timeframe, None, self.before_ms)
                )
            chunk = next(self._chunks, None)
            if chunk is not None:
                self._pending.append(chunk)
                self._size += len(chunk)
                if self._size < self._cells:
                    return False  # one read a step
            if self._pending:
                candles, self._pending, self._size = joined(self._pending), [], 0
                self.candles += len(candles)
                self._folding = self.history.folding(candles)
                continue
            self.done = True
            self.finished_s = self._clock()
            self._chunks = None
        return self.done

    def run(self, check: Callable[[], None] = lambda: None) -> None:
        """To the end, at once (no stored history to read, or a caller that must wait for it);
        ``check()`` between steps (``StopToken.check``: it raises when the process stops)."""
        while not self.step():
            check()

    def catch_up(self) -> IndicatorHistory:
        """The seeded history with the candles closed since the job was made (the overlap with the
        stored ones is ignored: ``IndicatorHistory.add_closed``)."""
        if self.buffer:
            self.history.add_closed(joined(self.buffer))
            self.buffer = []
        return self.history


class Seeder:
    """The jobs waiting or in progress, stepped one at a time: the first :data:`ACTIVE_JOBS` owners'
    oldest jobs take turns, so one account's large seed does not hold back another's small one.
    :meth:`step` may run in another thread than the rest (a lock guards the lists; a job itself is
    only stepped by one thread)."""

    def __init__(self, units: int = STEP_UNITS, active: int = ACTIVE_JOBS) -> None:
        self.units = units
        self.active = active
        self._lock = threading.Lock()
        self._jobs: list[SeedJob] = []
        self._done: list[SeedJob] = []
        self._turn = 0
        self.finished = 0  # jobs finished (or failed) so far

    def __len__(self) -> int:
        """Jobs not merged yet (waiting, in progress, or done)."""
        with self._lock:
            return len(self._jobs) + len(self._done)

    def submit(self, job: SeedJob) -> None:
        with self._lock:
            self._jobs.append(job)

    def cancel(self, job: SeedJob) -> None:
        with self._lock:
            job.cancelled = True
            if job in self._jobs:
                self._jobs.remove(job)

    def busy(self) -> bool:
        with self._lock:
            return bool(self._jobs)

    def step(self) -> bool:
        """One step of the next job in turn; True while work remains."""
        with self._lock:
            owners: dict[int, SeedJob] = {}
            for job in self._jobs:
                if job.owner not in owners and len(owners) < self.active:
                    owners[job.owner] = job
            if not owners:
                return False
            job = list(owners.values())[self._turn % len(owners)]
            self._turn += 1
        try:
            done = job.step(self.units)
        except Exception:  # the database is down: the job ends failed; the planner asks again
            job.failed = done = True
            raise
        finally:
            with self._lock:
                if done and job in self._jobs:
                    self._jobs.remove(job)
                    self.finished += 1
                    if not job.cancelled:
                        self._done.append(job)
        return self.busy()

    def take_done(self) -> list[SeedJob]:
        """The jobs finished since the last call, in the order they finished."""
        with self._lock:
            done, self._done = self._done, []
        return done


class SeedRunner:
    """The Seeder's thread: steps it while it has work, never while a scan is in progress
    (:meth:`pause`), and calls ``on_done`` (from its thread) when a job finished, so that the
    Scanner merges it. Stops between steps."""

    def __init__(self, seeder: Seeder, on_done: Callable[[], None], name: str = "seeder") -> None:
        self.seeder = seeder
        self.on_done = on_done
        self._wake = threading.Condition()
        self._paused = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def wake(self) -> None:
        """New work was submitted."""
        with self._wake:
            self._wake.notify_all()

    def pause(self, paused: bool) -> None:
        """True while a scan is in progress: no step starts until False."""
        with self._wake:
            self._paused = paused
            self._wake.notify_all()

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    self._wake.wait_for(lambda: self._stopping or (not self._paused and self.seeder.busy()))
                    if self._stopping:
                        return
                before = self.seeder.finished
                try:
                    self.seeder.step()
                except Exception:
                    log.exception("scanner: seeding indicator series failed (asked again at the next tick)")
                if self.seeder.finished != before:
                    self.on_done()
        finally:
            close_connection()
