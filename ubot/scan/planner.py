"""The Scanner supervisor's logic: which worker owns which strategy, what the strategies need, and the
candle history that the tick frames are built from.

Routing is by strategy id (``id % workers``): stable across restarts and edits, so a worker keeps its
strategies' firing state without locks. The planner alone decides when that state starts afresh
(:meth:`ScanPlanner.set_user`). The histories are kept only for the timeframes some enabled
strategy uses, as deep as its indicators need (:func:`ubot.rules.indicators.window`); a timeframe that
appears, or needs more depth, is (re)loaded from the database through ``load``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping

from ubot.market.candles import CandleRows, bucket_start
from ubot.market.snapshot import Snapshot
from ubot.rules import CompiledCondition, ConditionError, compile_condition
from ubot.scan.bars import closed_bars, open_candles_of
from ubot.scan.cost import Cost, cost_of
from ubot.scan.frame import MarketFrame, Plan
from ubot.scan.history import IndicatorHistory
from ubot.scan.messages import SetStrategies
from ubot.scan.spec import StrategySpec, UserStrategies

#: load(timeframe, after_ms, before_ms) -> the stored closed candles of ``timeframe`` opened in
#: ``[after_ms, before_ms)`` (``after_ms`` None: all of them), in groups of whole coins
#: (``models.closes.closed_candles``).
Loader = Callable[[str, int | None, int], Iterable[CandleRows]]


class ScanPlanner:
    def __init__(self, workers: int, load: Loader | None = None) -> None:
        if workers < 1:
            raise ValueError("at least one worker")
        self.workers = workers
        self.load = load
        self.specs: dict[int, StrategySpec] = {}
        #: ``once`` strategies that fired, until their owner's change without them comes.
        self.retired: dict[int, StrategySpec] = {}
        #: Per worker, the strategies it was told to forget that no scan since has confirmed; sent
        #: again to a restarted worker, so that a worker's death cannot revive an old firing state.
        self.unconfirmed: dict[int, set[int]] = {w: set() for w in range(workers)}
        self._confirming: dict[int, set[int]] = {}
        self.compiled: dict[int, CompiledCondition] = {}
        self.plan = Plan()
        #: Each planned strategy's cost (``scan/cost.py``), for ``/health``'s costliest strategies.
        self.costs: dict[int, Cost] = {}
        self.histories: dict[str, IndicatorHistory] = {}
        #: While replaying stored snapshots: per timeframe, the time up to which its history was read.
        self._read_until: dict[str, int] | None = None
        #: When the snapshot of the last frame was taken: the next frame's closed bars are those since.
        self.framed_ms: int | None = None

    def owner(self, strategy_id: int) -> int:
        return strategy_id % self.workers

    def set_all(self, users: Iterable[UserStrategies]) -> dict[int, SetStrategies]:
        """Every user's strategies at once (at start; planned once, not once per user). Returns each
        worker's message: its share, by user."""
        shares: dict[int, dict[int, list[StrategySpec]]] = {w: {} for w in range(self.workers)}
        for user in users:
            for spec in user.specs:
                self._add(spec)
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
            self.compiled[spec.id] = compile_condition(spec.condition)

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
        given = {spec.id: spec for spec in specs}
        held = {i: s for i, s in (*self.specs.items(), *self.retired.items()) if s.user_id == user_id}
        kept = set(moved)
        forget = sorted(
            i
            for i, old in held.items()
            if (i not in given and i not in kept) or (i in given and given[i].rules != old.rules)
        )
        for strategy_id in held:
            self.specs.pop(strategy_id, None)
            self.retired.pop(strategy_id, None)
            self.compiled.pop(strategy_id, None)
        shares: dict[int, list[StrategySpec]] = {w: [] for w in range(self.workers)}
        for spec in given.values():
            self._add(spec)
            shares[self.owner(spec.id)].append(spec)
        forgets: dict[int, list[int]] = {w: [] for w in range(self.workers)}
        for strategy_id in forget:
            forgets[self.owner(strategy_id)].append(strategy_id)
            self.unconfirmed[self.owner(strategy_id)].add(strategy_id)
        self._replan()
        return {w: SetStrategies({user_id: tuple(shares[w])}, tuple(forgets[w])) for w in range(self.workers)}

    def restart(self, worker: int) -> SetStrategies:
        """The message that refills a restarted worker: its strategies, by user, and the forgets that
        its predecessor may have died before handling (see :meth:`scan_done`)."""
        users: dict[int, list[StrategySpec]] = {}
        for spec in self.specs.values():
            if self.owner(spec.id) == worker:
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
            self.compiled.pop(strategy_id, None)
            self._replan()

    def _replan(self) -> None:
        self.plan = Plan.of(((self.specs[i], c) for i, c in self.compiled.items()), self.owner)
        self.costs = {
            i: cost_of(c.indicators, self.specs[i].symbols, self.specs[i].top_n)
            for i, c in self.compiled.items()
        }

    def update_candles(
        self, timestamp_ms: int, closed: Mapping[str, CandleRows], open_candles: Mapping[str, CandleRows]
    ) -> None:
        """Fold one live tick's candles into the histories (every tick, scanned or not)."""
        self._read_until = None  # a replay of stored snapshots, if any, is over
        self._fold(timestamp_ms, closed, open_candles)

    def _fold(
        self, timestamp_ms: int, closed: Mapping[str, CandleRows], open_candles: Mapping[str, CandleRows]
    ) -> None:
        for timeframe, calls in self.plan.calls.items():
            history = self.histories.get(timeframe)
            if history is None or not calls <= history.calls:
                history = self._loaded(timeframe, calls, int(bucket_start(timestamp_ms, timeframe)))
                self.histories[timeframe] = history
            if timeframe in closed:
                history.add_closed(closed[timeframe])
            if timeframe in open_candles:
                history.set_open(open_candles[timeframe])
        for timeframe in [tf for tf in self.histories if tf not in self.plan.calls]:
            del self.histories[timeframe]  # no strategy uses it any more

    def _loaded(self, timeframe: str, calls: frozenset, before_ms: int) -> IndicatorHistory:
        """A history of ``calls`` seeded from every stored closed candle opened before ``before_ms``
        (the whole stored history, read a group of coins at a time). A history that tracks more calls than needed is kept
        as it is: only a call it lacks makes it read again."""
        history = IndicatorHistory(timeframe, calls)
        if self.load is not None:
            for candles in self.load(timeframe, None, before_ms):
                history.add_closed(candles)
        if self._read_until is not None:
            self._read_until[timeframe] = before_ms
        return history

    def resume_after(self, timestamp_ms: int | None) -> None:
        """At start: the last snapshot before this run's first frame was taken at ``timestamp_ms``."""
        self.framed_ms = timestamp_ms

    def frame(self, tick: int, snapshot: Snapshot) -> MarketFrame:
        """The frame of ``snapshot`` over the histories as they are, with the bars closed since the
        previous frame (a tick that was never framed, skipped, adds its closed bars to the next)."""
        bars = closed_bars(self.framed_ms, snapshot.timestamp_ms)
        self.framed_ms = snapshot.timestamp_ms
        return MarketFrame(tick, snapshot, self.plan, self.histories, bars)

    def replay(self, tick: int, snapshot: Snapshot) -> MarketFrame:
        """The frame of a stored snapshot that the last run did not scan (oldest first, before any live
        tick), with each history as it was then: read from the database up to that snapshot (whole at
        the first one, then the candles closed since the one before), with its prices as the open
        candles. The first live tick continues from there with its own closed candles."""
        if self._read_until is None:
            self.histories, self._read_until = {}, {}
        for timeframe, history in self.histories.items():
            since, until = self._read_until[timeframe], int(bucket_start(snapshot.timestamp_ms, timeframe))
            if self.load is not None and since < until:
                for candles in self.load(timeframe, since, until):
                    history.add_closed(candles)
            self._read_until[timeframe] = until
        self._fold(snapshot.timestamp_ms, {}, open_candles_of(snapshot))
        return self.frame(tick, snapshot)
