"""The Scanner supervisor's logic: which worker owns which strategy, what the strategies need, and the
candle history that the tick frames are built from.

Routing is by strategy id (``id % workers``): stable across restarts and edits, so a worker keeps its
strategies' firing state without locks. The planner alone decides when that state starts afresh
(:meth:`ScanPlanner.set_user`). The histories are kept only for the timeframes some enabled
strategy uses, with the series they read; a series that is new is seeded alone from the database
through ``load`` (``scan/seeding.py``), and the strategies that read it wait outside the plan
(:attr:`ScanPlanner.waiting`) until it is merged (:meth:`ScanPlanner.merge`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping

from ubot.market.candles import CandleRows, bucket_start
from ubot.market.snapshot import Snapshot
from ubot.rules import CompiledCondition, ConditionError, compile_condition
from ubot.scan.bars import closed_bars, open_candles_of
from ubot.scan.cost import Cost, CostBook, cost_of
from ubot.scan.frame import MarketFrame, Plan, Planning
from ubot.scan.history import IndicatorHistory
from ubot.scan.messages import SetStrategies
from ubot.scan.seeding import Seeder, SeedJob
from ubot.scan.spec import StrategySpec, UserStrategies
from ubot.stopping import CHUNK, Stopped, StopToken

log = logging.getLogger(__name__)

#: load(timeframe, after_ms, before_ms) -> the stored closed candles of ``timeframe`` opened in
#: ``[after_ms, before_ms)`` (``after_ms`` None: all of them), in groups of whole coins
#: (``models.closes.closed_candles``).
Loader = Callable[[str, int | None, int], Iterable[CandleRows]]


class ScanPlanner:
    def __init__(
        self,
        workers: int,
        load: Loader | None = None,
        *,
        background: bool = False,
        clock: Callable[[], float] = time.monotonic,
        stop: StopToken | None = None,
    ) -> None:
        """``background``: new indicator series are seeded by ``seeder``'s steps, which the caller
        runs (the Scanner's :class:`~ubot.scan.seeding.SeedRunner`), and merged by :meth:`merge`;
        otherwise (and always without ``load``: nothing stored to read) at once, in the tick.
        ``stop``: the process's stop; long work (planning every strategy, a seed in the tick, reading
        the stored candles) raises :class:`~ubot.stopping.Stopped` between chunks once it is set."""
        if workers < 1:
            raise ValueError("at least one worker")
        self.workers = workers
        self.stop = stop or StopToken()
        #: Some work was abandoned at the stop: the plan or the histories are not whole.
        self.abandoned = False
        self.load = load
        self.background = background and load is not None
        self.clock = clock
        self.seeder = Seeder()
        #: Strategies whose indicator series are not all held yet: not planned (not evaluated) until
        #: their seed is merged; not given to their worker either.
        self.waiting: dict[int, tuple[StrategySpec, CompiledCondition]] = {}
        self.jobs: dict[str, list[SeedJob]] = {}
        self._promoted: set[int] = set()  # seeded since the last take_told()
        self._announced: set[int] = set()  # told their owner they wait for a seed
        self.notes: dict[int, str | None] = {}  # strategy id -> the note for its owner (None: gone)
        self._open: dict[str, CandleRows] = {}
        #: Seconds from asking for a seed to merging it, the latest ones (for /health and the bench).
        self.seed_seconds: list[float] = []
        self.specs: dict[int, StrategySpec] = {}
        #: ``once`` strategies that fired, until their owner's change without them comes.
        self.retired: dict[int, StrategySpec] = {}
        #: Per worker, the strategies it was told to forget that no scan since has confirmed; sent
        #: again to a restarted worker, so that a worker's death cannot revive an old firing state.
        self.unconfirmed: dict[int, set[int]] = {w: set() for w in range(workers)}
        self._confirming: dict[int, set[int]] = {}
        self.compiled: dict[int, CompiledCondition] = {}
        #: The plan kept up to date one strategy at a time (a change regroups only its own shape).
        self._planning = Planning(self.owner)
        self.plan = Plan()
        #: Each planned strategy's cost (``scan/cost.py``), for ``/health``'s costliest strategies.
        self.costs = CostBook()
        self._cost_values: dict[Cost, Cost] = {}
        self.histories: dict[str, IndicatorHistory] = {}
        #: While replaying stored snapshots: per timeframe, the time up to which its history was read.
        self._read_until: dict[str, int] | None = None
        #: When the snapshot of the last frame was taken: the next frame's closed bars are those since.
        self.framed_ms: int | None = None

    def _check(self) -> None:
        """Between two chunks of long work: :class:`~ubot.stopping.Stopped` once the process stops."""
        if self.stop.stopping:
            self.abandoned = True
            raise Stopped

    def owner(self, strategy_id: int) -> int:
        return strategy_id % self.workers

    def set_all(self, users: Iterable[UserStrategies]) -> dict[int, SetStrategies]:
        """Every user's strategies at once (at start; planned once, not once per user). Returns each
        worker's message: its share, by user."""
        shares: dict[int, dict[int, list[StrategySpec]]] = {w: {} for w in range(self.workers)}
        added = 0
        for user in users:
            for spec in user.specs:
                added += 1
                if added % CHUNK == 0:
                    self._check()
                self._add(spec)
                if spec.id not in self.waiting:
                    shares[self.owner(spec.id)].setdefault(user.user_id, []).append(spec)
        self._replan()
        return {
            w: SetStrategies({u: tuple(specs) for u, specs in by_user.items()})
            for w, by_user in shares.items()
        }

    def _add(self, spec: StrategySpec) -> None:
        self.specs[spec.id] = spec
        # Compiled once when it changes, not for everyone's strategies on each change. An invalid one
        # is left out of the plan; its worker reports it to the owner.
        with contextlib.suppress(ConditionError):
            self.compiled[spec.id] = compiled = compile_condition(spec.condition)
            if self._ready(spec, compiled):
                self._planning.add(spec, compiled)
                if spec.id in self._announced:
                    self._announced.discard(spec.id)
                    self.notes[spec.id] = None
            else:
                self.waiting[spec.id] = (spec, compiled)
            cost = cost_of(compiled.indicators, spec.symbols, spec.top_n)
            self.costs.set(spec.id, self._cost_values.setdefault(cost, cost))  # few distinct: one object each

    def _remove(self, strategy_id: int) -> None:
        """Out of the plan (its spec stays where the caller keeps it)."""
        self.compiled.pop(strategy_id, None)
        self.costs.drop(strategy_id)
        self.waiting.pop(strategy_id, None)
        self._planning.remove(strategy_id)

    def set_user(
        self, user_id: int, specs: Iterable[StrategySpec], moved: Iterable[int] = ()
    ) -> dict[int, SetStrategies]:
        """Replace the strategies of ``user_id``; returns each worker's message (every worker, so a
        worker that had some of this user's strategies learns they are gone).

        The one place that decides when a strategy's firing state starts afresh: when its rules
        (:attr:`StrategySpec.rules`) changed, and when it leaves the user's enabled strategies
        (disabled, deleted, or a ``once`` strategy that fired), so that it starts afresh (armed) if it
        comes back. Its owner worker is told to forget it (``SetStrategies.forget``): it resets the
        state it holds and has the saved one deleted, in order with its own outcomes.

        ``moved``: strategies that leave because another scanner process scans them from now on
        (``scan/assign.py``): dropped from this process, their saved state kept for the new owner."""
        return self.set_users([(user_id, specs, moved)])

    def set_users(
        self, changes: Iterable[tuple[int, Iterable[StrategySpec], Iterable[int]]]
    ) -> dict[int, SetStrategies]:
        """:meth:`set_user` for several users at once, ``(user_id, specs, moved)`` each (a scanner
        process's share after the view of the scanners changed: every user's at once): one pass over
        the strategies held and one replan, one message per worker with every user's strategies."""
        changes = [(user_id, list(specs), set(moved)) for user_id, specs, moved in changes]
        held_by: dict[int, dict[int, StrategySpec]] = {user_id: {} for user_id, _, _ in changes}
        for i, spec in (*self.specs.items(), *self.retired.items()):
            if spec.user_id in held_by:
                held_by[spec.user_id][i] = spec
        users: dict[int, dict[int, list[StrategySpec]]] = {w: {} for w in range(self.workers)}
        forgets: dict[int, list[int]] = {w: [] for w in range(self.workers)}
        for user_id, specs, kept in changes:
            self._check()  # a share of tens of thousands is planned user by user
            given = {spec.id: spec for spec in specs}
            held = held_by[user_id]
            forget = sorted(
                i
                for i, old in held.items()
                if (i not in given and i not in kept) or (i in given and given[i].rules != old.rules)
            )
            # A strategy given exactly as held stays where it is in the plan (its group is not rebuilt).
            same = {i for i, old in held.items() if i in self.specs and given.get(i) == old}
            for strategy_id in held.keys() - same:
                self.specs.pop(strategy_id, None)
                self.retired.pop(strategy_id, None)
                self._remove(strategy_id)
            for w in range(self.workers):  # every worker: one that had some of them learns they went
                users[w][user_id] = []
            for spec in given.values():
                if spec.id not in same:
                    self._add(spec)
                if spec.id not in self.waiting:
                    users[self.owner(spec.id)][user_id].append(spec)
            for strategy_id in forget:
                forgets[self.owner(strategy_id)].append(strategy_id)
                self.unconfirmed[self.owner(strategy_id)].add(strategy_id)
        self._announced &= self.specs.keys()
        self._replan()
        return {
            w: SetStrategies({u: tuple(specs) for u, specs in users[w].items()}, tuple(forgets[w]))
            for w in range(self.workers)
        }

    def restart(self, worker: int) -> SetStrategies:
        """The message that refills a restarted worker: its strategies, by user, and the forgets that
        its predecessor may have died before handling (see :meth:`scan_done`)."""
        users: dict[int, list[StrategySpec]] = {}
        for spec in self.specs.values():
            if self.owner(spec.id) == worker and spec.id not in self.waiting:
                users.setdefault(spec.user_id, []).append(spec)
        forget = tuple(sorted(self.unconfirmed[worker]))
        return SetStrategies({user: tuple(specs) for user, specs in users.items()}, forget)

    def scan_started(self) -> None:
        """A frame goes to every worker, behind every forget told so far."""
        self._confirming = {w: set(ids) for w, ids in self.unconfirmed.items() if ids}

    def scan_done(self, worker: int) -> None:
        """``worker`` finished the scan: it has handled every forget told before that scan started."""
        self.unconfirmed[worker] -= self._confirming.pop(worker, set())

    def retire(self, strategy_id: int) -> None:
        """A ``once`` strategy fired: out of the plan at once. Its owner disables it and tells us the
        user's strategies without it (:meth:`set_user` then forgets its state)."""
        spec = self.specs.pop(strategy_id, None)
        if spec is not None:
            self.retired[strategy_id] = spec
            self._remove(strategy_id)
            self._replan()

    def _replan(self) -> None:
        """The plan and the costs are kept up to date by :meth:`_add` and :meth:`_remove`, one
        strategy at a time; this takes the plan of what they hold."""
        self.plan = self._planning.plan()

    def update_candles(
        self, timestamp_ms: int, closed: Mapping[str, CandleRows], open_candles: Mapping[str, CandleRows]
    ) -> None:
        """Fold one live tick's candles into the histories (every tick, scanned or not); ask for the
        seeds of new series, and merge those finished."""
        self._read_until = None  # a replay of stored snapshots, if any, is over
        self._fold(timestamp_ms, closed, open_candles)

    def _fold(
        self,
        timestamp_ms: int,
        closed: Mapping[str, CandleRows],
        open_candles: Mapping[str, CandleRows],
        wait: bool = False,
    ) -> None:
        needed = self._needed()
        for timeframe in [tf for tf in self.histories if tf not in needed]:
            del self.histories[timeframe]  # no strategy uses it any more
        for timeframe, history in self.histories.items():
            if not history.calls <= needed[timeframe]:
                history.retain(needed[timeframe])  # series no strategy reads any more
        for timeframe, jobs in self.jobs.items():
            for job in [j for j in jobs if not j.calls & needed.get(timeframe, frozenset())]:
                self.seeder.cancel(job)
                jobs.remove(job)
        self._ask(timestamp_ms, wait or not self.background)
        for timeframe, candles in closed.items():
            if timeframe in self.histories:
                self.histories[timeframe].add_closed(candles)
            for job in self.jobs.get(timeframe, ()):
                job.buffer.append(candles)
        self._open = {tf: open_candles[tf] for tf in needed if tf in open_candles} or self._open
        self.merge()
        for timeframe, candles in self._open.items():
            if timeframe in self.histories and timeframe in open_candles:
                self.histories[timeframe].set_open(candles)
        if self.background:
            for strategy_id, (_, compiled) in self.waiting.items():
                if strategy_id not in self._announced:
                    self._announced.add(strategy_id)
                    series = ", ".join(sorted(str(call) for call in compiled.indicators))
                    self.notes[strategy_id] = (
                        f"not evaluated yet: its indicator series ({series}) are being seeded from the "
                        "stored candles; it is evaluated from the first tick after"
                    )

    def _needed(self) -> dict[str, frozenset]:
        """Per timeframe, the calls of every strategy held: planned or waiting for its seed."""
        if not self.waiting:
            return dict(self.plan.calls)
        calls = {tf: set(c) for tf, c in self.plan.calls.items()}
        for spec, compiled in self.waiting.values():
            calls.setdefault(spec.timeframe, set()).update(compiled.indicators)
        return {tf: frozenset(c) for tf, c in calls.items()}

    def _ready(self, spec: StrategySpec, compiled: CompiledCondition) -> bool:
        if not compiled.indicators:
            return True
        history = self.histories.get(spec.timeframe)
        return history is not None and set(compiled.indicators) <= history.calls

    def _ask(self, timestamp_ms: int, wait: bool) -> None:
        """A seed job for every series a waiting strategy reads that is neither held nor asked for
        (one job per timeframe and owner); run at once when ``wait``, one job per timeframe."""
        asked = {tf: frozenset().union(*(j.calls for j in jobs)) for tf, jobs in self.jobs.items()}
        asks: dict[tuple[str, int], set] = {}
        wanted = [
            (spec.timeframe, spec.user_id, frozenset(compiled.indicators))
            for spec, compiled in sorted(self.waiting.values(), key=lambda item: item[0].id)
        ]
        wanted += [(tf, 0, calls) for tf, calls in self.plan.calls.items()]  # a plan given as it is
        for timeframe, owner, calls in wanted:
            history = self.histories.get(timeframe)
            missing = (calls if history is None else history.untracked(calls)) - asked.get(
                timeframe, frozenset()
            )
            if missing:
                # Seeded at once: one job (one read of the history) per timeframe, whoever asked.
                asks.setdefault((timeframe, 0 if wait else owner), set()).update(missing)
                asked[timeframe] = asked.get(timeframe, frozenset()) | missing
        for (timeframe, owner), calls in asks.items():
            before_ms = int(bucket_start(timestamp_ms, timeframe))
            job = SeedJob(timeframe, calls, before_ms, self.load, owner, self.clock)
            self.jobs.setdefault(timeframe, []).append(job)
            if self._read_until is not None:
                self._read_until.setdefault(timeframe, before_ms)
            if wait:  # merged at once: one seed's history held at a time
                job.run(self._check)
                self._take(job)
            else:
                self.seeder.submit(job)

    def _take(self, job: SeedJob) -> None:
        """A finished seed's states into its timeframe's history."""
        jobs = self.jobs.get(job.timeframe, [])
        if job not in jobs:
            return  # cancelled, or the histories were reset
        jobs.remove(job)
        if job.failed or job.cancelled:
            return  # asked again at the next tick
        seeded = job.catch_up()
        history = self.histories.get(job.timeframe)
        if history is None:
            self.histories[job.timeframe] = seeded
            if job.timeframe in self._open:
                seeded.set_open(self._open[job.timeframe])
        elif differ := history.adopt(seeded):
            log.warning(
                "scanner: %d coin(s) of %s had other stored candles than the live state",
                differ,
                job.timeframe,
            )
        self.seed_seconds = [*self.seed_seconds[-19:], self.clock() - job.started_s]

    def merge(self) -> bool:
        """Hand the finished seeds to their timeframes' histories, and plan the strategies that now
        have every series they read; True if any did (their workers' messages: :meth:`take_told`)."""
        for job in self.seeder.take_done():
            self._take(job)
        ready = [i for i, (spec, compiled) in self.waiting.items() if self._ready(spec, compiled)]
        for strategy_id in ready:
            spec, compiled = self.waiting.pop(strategy_id)
            self._planning.add(spec, compiled)
            self._promoted.add(strategy_id)
            if strategy_id in self._announced:
                self._announced.discard(strategy_id)
                self.notes[strategy_id] = None
        if ready:
            self._replan()
        return bool(ready)

    def take_told(self) -> dict[int, SetStrategies]:
        """What the workers must be told of the strategies seeded since the last call: for each
        worker that owns one, its owner's strategies there now (as :meth:`set_user` tells them)."""
        promoted = {i for i in self._promoted if i in self.specs and i not in self.waiting}
        self._promoted = set()
        if not promoted:
            return {}
        wanted = {(self.owner(i), self.specs[i].user_id) for i in promoted}
        shares: dict[int, dict[int, list[StrategySpec]]] = {}
        for spec in self.specs.values():
            key = (self.owner(spec.id), spec.user_id)
            if key in wanted and spec.id not in self.waiting:
                shares.setdefault(key[0], {}).setdefault(key[1], []).append(spec)
        for worker, user in wanted:
            shares.setdefault(worker, {}).setdefault(user, [])
        return {w: SetStrategies({u: tuple(s) for u, s in users.items()}) for w, users in shares.items()}

    def take_notes(self) -> dict[int, str | None]:
        """Notes for the strategies' owners (``last_error``) since the last call: waiting for a seed,
        or no longer (None)."""
        notes, self.notes = self.notes, {}
        return notes

    def resume_after(self, timestamp_ms: int | None) -> None:
        """At start: the last snapshot before this run's first frame was taken at ``timestamp_ms``."""
        self.framed_ms = timestamp_ms

    def frame(self, tick: int, snapshot: Snapshot) -> MarketFrame:
        """The frame of ``snapshot`` over the histories as they are, with the bars closed since the
        previous frame (a tick that was never framed, skipped, adds its closed bars to the next)."""
        bars = closed_bars(self.framed_ms, snapshot.timestamp_ms)
        self.framed_ms = snapshot.timestamp_ms
        return MarketFrame(tick, snapshot, self.plan, self.histories, bars)

    def rewind(self, timestamp_ms: int | None) -> None:
        """The next :meth:`replay` is of a snapshot older than the last frame (a scanner process
        catching up strategies that came to it): its histories are read again from the database;
        the snapshot before it was taken at ``timestamp_ms``."""
        self._read_until = None
        self.framed_ms = timestamp_ms

    def replay(self, tick: int, snapshot: Snapshot, wait: bool = True) -> MarketFrame:
        """The frame of a stored snapshot (a scanner process's tick, or a snapshot the last run did
        not scan, oldest first, before any live tick), with each history as it was then: read from
        the database up to that snapshot (whole at the first one, then the candles closed since the
        one before), with its prices as the open candles. The first live tick continues from there
        with its own closed candles.

        ``wait``: a series no strategy read before is seeded at once (in this call); otherwise as in
        a live tick, by the seeder's steps (the caller's :class:`~ubot.scan.seeding.SeedRunner`),
        its strategies waiting meanwhile, the candles read since given to its seed (``buffer``). The
        first call (and one after :meth:`rewind`) seeds every series again: with ``wait`` False every
        strategy with indicators waits for it."""
        if self._read_until is None:
            self.histories, self._read_until = {}, {}
            for jobs in self.jobs.values():
                for job in jobs:
                    self.seeder.cancel(job)
            self.jobs = {}
            self.waiting.update(
                (i, (self.specs[i], c)) for i, c in self.compiled.items() if c.indicators and i in self.specs
            )
            self._planning = Planning(self.owner)
            for i, compiled in self.compiled.items():
                if i not in self.waiting and i in self.specs:
                    self._planning.add(self.specs[i], compiled)
            self._replan()
        for timeframe, since in list(self._read_until.items()):
            until = int(bucket_start(snapshot.timestamp_ms, timeframe))
            history, jobs = self.histories.get(timeframe), self.jobs.get(timeframe, ())
            if history is None and not jobs:
                del self._read_until[timeframe]  # no strategy reads it any more
                continue
            if self.load is not None and since < until:
                rows = []
                for chunk in self.load(timeframe, since, until):
                    self._check()
                    rows.append(chunk)
                if history is not None:
                    history.add_history(rows)
                for job in jobs:  # seeded up to ``since``: these follow
                    job.buffer.extend(rows)
            self._read_until[timeframe] = until
        self._fold(snapshot.timestamp_ms, {}, open_candles_of(snapshot), wait=wait)
        return self.frame(tick, snapshot)
