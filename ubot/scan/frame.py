"""One tick's market as the strategies see it, built once and shared read-only by every worker.

* the coins: those of the snapshot that any strategy looks at (the top N by rank for the largest N,
  plus every coin named explicitly), in snapshot order;
* their fields (read-only float arrays) and the market-wide fields (numbers);
* every indicator any strategy uses, read once per (timeframe, open/closed candles, call) over all
  those coins at once from the timeframe's indicator state (:mod:`ubot.scan.history`): O(1) per coin;
* caches that workers fill as they go: each scope's coins, and each group's result
  (:mod:`ubot.scan.groups`: strategies whose conditions differ only in their literals, evaluated once
  over all their (strategy, coin) pairs). Workers run in threads, in parallel: a scope raced for is
  only computed twice, never wrong; a group is evaluated once (:meth:`MarketFrame.result`), by the
  first worker that needs it, while the others wait for it or evaluate other groups.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ubot.market.candles import TIMEFRAMES, bucket_start
from ubot.market.snapshot import Snapshot
from ubot.rules import CompiledCondition, IndicatorCall
from ubot.rules.language import COIN_FIELDS, GLOBAL_FIELDS
from ubot.scan.groups import Group, Grouping, GroupResult
from ubot.scan.history import IndicatorHistory
from ubot.scan.spec import StrategySpec

#: (timeframe, closed candles only, call)
IndicatorKey = tuple[str, bool, IndicatorCall]


@dataclass(frozen=True)
class Plan:
    """What the enabled strategies need from each tick: coins, timeframes (with the indicator calls
    tracked on each), indicators; and the strategies in groups evaluated as one."""

    top_n: int = 0
    symbols: frozenset[str] = frozenset()
    calls: Mapping[str, frozenset[IndicatorCall]] = field(default_factory=dict)
    indicators: frozenset[IndicatorKey] = frozenset()
    groups: tuple[Group, ...] = ()

    @classmethod
    def of(
        cls,
        strategies: Iterable[tuple[StrategySpec, CompiledCondition]],
        owner: Callable[[int], int] | None = None,
    ) -> Plan:
        planning = Planning(owner)
        for spec, compiled in strategies:
            planning.add(spec, compiled)
        return planning.plan()


class Planning:
    """The :class:`Plan` of a set of strategies that changes a few at a time: each change updates
    counts of what the strategies need and regroups only its own shape's strategies
    (:class:`~ubot.scan.groups.Grouping`), so a change costs about what the changed strategies do,
    not what all do. :meth:`plan` equals :meth:`Plan.of` over the strategies held."""

    def __init__(self, owner: Callable[[int], int] | None = None) -> None:
        self._grouping = Grouping(owner)
        self._top_n: Counter[int] = Counter()
        self._symbols: Counter[str] = Counter()
        self._calls: Counter[tuple[str, IndicatorCall]] = Counter()
        self._needed: Counter[IndicatorKey] = Counter()
        self._plan: Plan | None = None

    def __len__(self) -> int:
        return len(self._grouping)

    def add(self, spec: StrategySpec, compiled: CompiledCondition) -> None:
        """Add ``spec`` (replacing the strategy of the same id, if held)."""
        self.remove(spec.id)
        self._count(spec, compiled, 1)
        self._grouping.add(spec, compiled)
        self._plan = None

    def remove(self, strategy_id: int) -> None:
        held = self._grouping.get(strategy_id)
        if held is None:
            return
        self._count(*held, -1)
        self._grouping.remove(strategy_id)
        self._plan = None

    def _count(self, spec: StrategySpec, compiled: CompiledCondition, step: int) -> None:
        def count(counter: Counter, key: object) -> None:
            counter[key] += step
            if not counter[key]:
                del counter[key]

        if spec.symbols is None:
            count(self._top_n, spec.top_n or 0)
        else:
            for symbol in spec.symbols:
                count(self._symbols, symbol)
        for call in compiled.indicators:
            count(self._needed, (spec.timeframe, spec.on_bar_close, call))
            count(self._calls, (spec.timeframe, call))

    def plan(self) -> Plan:
        if self._plan is None:
            calls: dict[str, set[IndicatorCall]] = {}
            for timeframe, call in self._calls:
                calls.setdefault(timeframe, set()).add(call)
            self._plan = Plan(
                max(self._top_n, default=0),
                frozenset(self._symbols),
                {timeframe: frozenset(c) for timeframe, c in calls.items()},
                frozenset(self._needed),
                self._grouping.groups(),
            )
        return self._plan


class MarketFrame:
    def __init__(
        self,
        tick: int,
        snapshot: Snapshot,
        plan: Plan,
        histories: Mapping[str, IndicatorHistory],
        closed_bars: Mapping[str, int],
    ) -> None:
        self.tick = tick
        self.plan = plan
        self.timestamp_ms = snapshot.timestamp_ms
        self.currency = snapshot.convert
        positions = _positions(snapshot, plan)
        self.ids: np.ndarray = snapshot.ids[positions]
        self.symbols: list[str] = [snapshot.symbols[i] for i in positions.tolist()]
        self.names: list[str] = [snapshot.names[i] for i in positions.tolist()]
        self.fields: dict[str, np.ndarray] = {
            name: _clean(snapshot.columns[name][positions]) for name in COIN_FIELDS
        }
        metrics = snapshot.global_metrics.values if snapshot.global_metrics else {}
        self.globals: dict[str, float] = {name: _number(metrics.get(name)) for name in GLOBAL_FIELDS}
        #: Open time of the current candle per timeframe, and of the candle that closed in this tick.
        self.bar_open = {tf: int(bucket_start(self.timestamp_ms, tf)) for tf in TIMEFRAMES}
        self.closed_bar = dict(closed_bars)
        self.indicators: dict[IndicatorKey, np.ndarray] = {}
        self._first_of: dict[str, int] | None = None
        self.scopes: dict[tuple, np.ndarray] = {}
        self.results: dict[Group, GroupResult] = {}
        self._evaluating: dict[Group, threading.Lock] = {}
        self._guard = threading.Lock()
        self._compute(plan, histories)

    def __len__(self) -> int:
        return len(self.ids)

    def _compute(self, plan: Plan, histories: Mapping[str, IndicatorHistory]) -> None:
        """Each indicator read from its timeframe's state: O(1) per coin, whatever its period."""
        rows: dict[str, np.ndarray] = {}
        for key in sorted(plan.indicators, key=lambda k: (k[0], k[1], str(k[2]))):
            timeframe, closed_only, call = key
            history = histories.get(timeframe)
            if (
                history is None
                or call not in history.calls
                or (closed_only and timeframe not in self.closed_bar)
            ):
                continue
            if timeframe not in rows:
                rows[timeframe] = history.rows_for(self.ids)
            self.indicators[key] = _clean(history.value(call, rows[timeframe], closed_only=closed_only))

    def result(self, group: Group, evaluate: Callable[[], GroupResult]) -> GroupResult:
        """``group``'s result, from ``evaluate()`` by the first caller (once per frame, whatever the
        threads: a second caller waits for the first)."""
        done = self.results.get(group)
        if done is not None:
            return done
        with self._guard:
            lock = self._evaluating.setdefault(group, threading.Lock())
        with lock:
            done = self.results.get(group)
            if done is None:
                done = self.results[group] = evaluate()
        return done

    def scope(self, spec: StrategySpec) -> np.ndarray:
        """Positions (in this frame) of the coins ``spec`` looks at."""
        key = spec.scope
        index = self.scopes.get(key)
        if index is None:
            if spec.symbols is None:
                index = np.flatnonzero(self.fields["rank"] <= (spec.top_n or 0))
            else:
                first = self._first_positions()
                index = np.array(sorted({first[s] for s in spec.symbols if s in first}), dtype=np.int64)
            index.flags.writeable = False
            self.scopes[key] = index
        return index

    def _first_positions(self) -> dict[str, int]:
        if self._first_of is None:
            first: dict[str, int] = {}
            for i, symbol in enumerate(self.symbols):
                first.setdefault(symbol.upper(), i)  # best rank wins, as everywhere in the API
            self._first_of = first
        return self._first_of

    def column(self, spec: StrategySpec, key: str, call: IndicatorCall | None) -> np.ndarray | float | None:
        """Input ``key`` (a field, or ``call``'s canonical text) over the whole frame, or None."""
        if call is not None:
            return self.indicators.get((spec.timeframe, spec.on_bar_close, call))
        if key in self.fields:
            return self.fields[key]
        return self.globals.get(key)

    def values(self, spec: StrategySpec, condition: CompiledCondition) -> dict[str, np.ndarray | float]:
        """The condition's inputs over every coin of the frame; an input that is missing is left out."""
        out: dict[str, np.ndarray | float] = {}
        for _, key, _ in condition.inputs:
            column = self.column(spec, key, condition.calls.get(key))
            if column is not None:
                out[key] = column
        return out


def _positions(snapshot: Snapshot, plan: Plan) -> np.ndarray:
    rank = snapshot.columns["rank"]
    wanted = rank <= plan.top_n
    if plan.symbols:
        seen: set[str] = set()
        for i, symbol in enumerate(snapshot.symbols):
            upper = symbol.upper()
            if upper in plan.symbols and upper not in seen:
                seen.add(upper)
                wanted[i] = True
    return np.flatnonzero(wanted)


def _clean(values: np.ndarray) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    array[~np.isfinite(array)] = np.nan
    array.flags.writeable = False
    return array


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and np.isfinite(value) else float("nan")
