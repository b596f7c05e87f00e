"""One Scanner worker's job: its strategies, their firing state, and one tick's evaluation of them.

A worker owns a fixed share of the strategies (the Scanner routes by strategy id), so the firing state
of each strategy is touched by one thread only. A tick's evaluation is shared between the workers: the
strategies are evaluated in groups (:mod:`ubot.scan.groups`, one evaluation per condition shape over
every worker's strategies of that shape, cached in the frame); each worker then takes its strategies'
pairs from the groups' results and decides what fires over all of them at once
(:meth:`~ubot.scan.firing.FiringTable.decide`). ``scan(frame)`` never raises for a strategy's fault: a
condition that cannot be compiled or evaluated is reported (``errors``) and the others go on.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ubot.jsonsafe import json_number
from ubot.notify.messages import Alert, AlertState
from ubot.rules import CompiledCondition, ConditionError, compile_condition
from ubot.rules.compiler import UNEVALUABLE, Evaluator
from ubot.scan import groups
from ubot.scan.firing import FiringState, FiringTable, Rules
from ubot.scan.frame import MarketFrame
from ubot.scan.groups import Group, GroupResult
from ubot.scan.spec import StrategySpec

log = logging.getLogger(__name__)


@dataclass
class ScanResult:
    alerts: list[Alert] = field(default_factory=list)
    states: list[AlertState] = field(default_factory=list)
    #: strategy id -> the runtime error now (None: the error it had is gone). Changes only.
    errors: dict[int, str | None] = field(default_factory=dict)
    #: ``once`` strategies that fired and must be disabled.
    disable: list[int] = field(default_factory=list)
    evaluated: int = 0  # strategies evaluated
    coins: int = 0  # (strategy, coin) pairs evaluated
    #: every strategy this scan was for (evaluated or not: on a bar not closed, expired, erred)
    scanned: list[int] = field(default_factory=list)


@dataclass(eq=False)
class _Entry:
    spec: StrategySpec
    condition: CompiledCondition | None
    table: FiringTable
    error: str | None = None  # last error reported to the owner

    @property
    def state(self) -> FiringState:
        return self.table.state_of(self.spec.id)


@dataclass(eq=False)
class _Binding:
    """This worker's strategies in one group: ``members`` (indices into the group) and their entries."""

    group: Group
    members: np.ndarray
    entries: list[_Entry]
    rules: Rules
    expires_ms: np.ndarray  # int64; the largest int64 for none
    local: dict[int, int]  # index in the group -> index in ``members``
    contiguous: bool  # ``members`` are consecutive

    @classmethod
    def of(cls, group: Group, members: list[int], entries: list[_Entry]) -> _Binding:
        never = np.iinfo(np.int64).max
        expires = [never if e.spec.expires_at_ms is None else e.spec.expires_at_ms for e in entries]
        return cls(
            group,
            np.array(members, dtype=np.int64),
            entries,
            Rules.of([e.spec for e in entries]),
            np.array(expires, dtype=np.int64),
            {i: k for k, i in enumerate(members)},
            members == list(range(members[0], members[0] + len(members))),
        )


class _Places:
    """Strategy id -> (its binding, its index there): built on first use, as most scans never ask
    (only a strategy whose error went away, or a ``once`` strategy that fired)."""

    def __init__(self, bindings: list[_Binding]) -> None:
        self._bindings = bindings
        self._map: dict[int, tuple[_Binding, int]] | None = None

    def _built(self) -> dict[int, tuple[_Binding, int]]:
        if self._map is None:
            self._map = {e.spec.id: (b, k) for b in self._bindings for k, e in enumerate(b.entries)}
        return self._map

    def get(self, strategy_id: int, default: tuple | None = None) -> tuple | None:
        return self._built().get(strategy_id, default)

    def __getitem__(self, strategy_id: int) -> tuple[_Binding, int]:
        return self._built()[strategy_id]

    def __contains__(self, strategy_id: object) -> bool:
        return strategy_id in self._built()

    def pop(self, strategy_id: int) -> tuple[_Binding, int]:
        return self._built().pop(strategy_id)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The indices ``starts[i] .. starts[i] + counts[i] - 1`` for every i, end to end."""
    total = int(counts.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return np.arange(total, dtype=np.int64) + shift


class ScanWorker:
    def __init__(self, index: int = 0, workers: int = 1) -> None:
        #: Where this worker starts in the list of groups (the workers spread out over them).
        self.start = (index, max(1, workers))
        self.entries: dict[int, _Entry] = {}
        self._users: dict[int, set[int]] = {}  # user id -> the ids of its strategies here
        self.table = FiringTable()
        self.evaluator = Evaluator()
        self._pending_errors: dict[int, str | None] = {}
        self._erred: set[int] = set()  # strategies whose last reported error is not None
        self._version = 0  # entries changed: the bindings are rebuilt
        self._bound: tuple[object, int, list[_Binding], _Places] | None = None
        #: Each group's binding as last built (None: none of this worker's strategies in it), and the
        #: strategies added, changed or dropped since: a group that is the same object and holds none
        #: of them keeps its binding, so a change costs its own groups, not every group.
        self._group_bindings: dict[Group, _Binding | None] = {}
        self._changed: set[int] = set()

    def __len__(self) -> int:
        return len(self.entries)

    def strategies(self) -> list[tuple[StrategySpec, CompiledCondition]]:
        return [(e.spec, e.condition) for e in self.entries.values() if e.condition is not None]

    def replace_user(self, user_id: int, specs: Iterable[StrategySpec], forget: Collection[int] = ()) -> None:
        """Make ``specs`` this worker's strategies of ``user_id`` (the others of that user are dropped).
        Those in ``forget`` start afresh: the planner decided their firing state is over
        (:meth:`~ubot.scan.planner.ScanPlanner.set_user`)."""
        given = {spec.id: spec for spec in specs}
        dropped = [i for i in self._users.get(user_id, ()) if i in self.entries and i not in given]
        for strategy_id in dropped:
            self._drop(strategy_id)
        self._users[user_id] = set(given)
        self._changed.update(given)
        self.table.forget(dropped + [i for i in given if i in forget])
        for spec in given.values():
            entry = self.entries.get(spec.id)
            if entry is None or spec.id in forget:
                self._erred.discard(spec.id)
                self.entries[spec.id] = self._entry(spec)
            else:
                entry.spec = spec  # same rules (or it would be forgotten): same condition
        self._version += 1

    def _drop(self, strategy_id: int) -> None:
        del self.entries[strategy_id]
        self._erred.discard(strategy_id)
        self._changed.add(strategy_id)
        self._version += 1

    def _entry(self, spec: StrategySpec) -> _Entry:
        try:
            condition = compile_condition(spec.condition)
        except ConditionError as error:  # validated when saved: only a language change can get here
            self._pending_errors[spec.id] = f"the condition is no longer valid: {error}"
            self._erred.add(spec.id)
            return _Entry(spec, None, self.table, self._pending_errors[spec.id])
        return _Entry(spec, condition, self.table)

    def restore(self, states: Iterable[AlertState]) -> None:
        """Firing state read back from the database (after a restart of this worker)."""
        self.table.restore(row for row in states if row.strategy_id in self.entries)

    def _bindings(self, plan: object) -> tuple[list[_Binding], _Places]:
        """Where this worker's strategies are in ``plan``'s groups (rebuilt when either changes, and
        then only for the groups that are new or hold a strategy changed since). A strategy that the
        plan does not have as this worker has it (a frame planned before a change reached this
        worker) is evaluated in a group of this worker's own."""
        if self._bound is not None and self._bound[0] is plan and self._bound[1] == self._version:
            return self._bound[2], self._bound[3]
        planned: tuple[Group, ...] = tuple(getattr(plan, "groups", ()))
        mine = np.sort(np.fromiter(self.entries, dtype=np.int64, count=len(self.entries)))
        previous, self._group_bindings = self._group_bindings, {}
        touched = np.zeros(len(planned), dtype=bool)
        if self._changed and planned:
            changed = np.fromiter(self._changed, dtype=np.int64, count=len(self._changed))
            hit = np.isin(np.concatenate([g.ids for g in planned]), changed)
            starts = np.cumsum([0] + [len(g) for g in planned[:-1]])
            touched = np.add.reduceat(hit, starts) > 0
        self._changed.clear()
        bindings: list[_Binding] = []
        for group, changed_here in zip(planned, touched.tolist(), strict=True):
            binding = previous.get(group, False)
            if binding is False or changed_here:
                binding = self._bind(group, mine)
            self._group_bindings[group] = binding
            if binding is not None:
                bindings.append(binding)
        bound = [b.group.ids[b.members] for b in bindings]
        loose = np.setdiff1d(mine, np.concatenate(bound)) if bound else mine
        strays = [(e.spec, e.condition) for e in map(self.entries.__getitem__, loose.tolist()) if e.condition]
        for own in groups.group(strays):
            bindings.append(_Binding.of(own, list(range(len(own))), [self.entries[s.id] for s in own.specs]))
        where = _Places(bindings)
        self._bound = (plan, self._version, bindings, where)
        return bindings, where

    def _bind(self, group: Group, mine: np.ndarray) -> _Binding | None:
        """This worker's strategies in ``group`` (those it holds with the rules the group has);
        ``mine``: the ids of the strategies it holds, sorted."""
        members, entries = [], []
        at = np.minimum(np.searchsorted(mine, group.ids), max(len(mine) - 1, 0))
        held = mine[at] == group.ids if len(mine) else np.zeros(len(group), dtype=bool)
        for i in np.flatnonzero(held).tolist():
            entry = self.entries[int(group.ids[i])]
            if entry.condition is not None and entry.spec.rules == group.specs[i].rules:
                members.append(i)
                entries.append(entry)
        return _Binding.of(group, members, entries) if members else None

    def scan(
        self, frame: MarketFrame, only: Collection[int] | None = None, skip: Collection[int] = ()
    ) -> ScanResult:
        """Evaluate this worker's strategies on ``frame`` and decide what fires; ``only`` those of
        ``only`` (None: all) and none of ``skip`` (a scanner process catching up part of its share)."""
        result = ScanResult(errors=self._pending_errors)
        self._pending_errors = {}
        bindings, where = self._bindings(frame.plan)
        result.scanned = [i for i in self.entries if (only is None or i in only) and i not in skip]
        keep = None if only is None and not skip else np.array(result.scanned, dtype=np.int64)
        now = frame.timestamp_ms
        evaluated: dict[int, tuple[_Binding, np.ndarray, GroupResult]] = {}
        # Each worker starts at its own place in the groups, so that they evaluate different groups
        # at the same time; a group another worker is evaluating is waited for.
        start = self.start[0] * len(bindings) // self.start[1]
        for at in [*range(start, len(bindings)), *range(start)]:
            binding = bindings[at]
            group = binding.group
            if group.on_bar_close and group.timeframe not in frame.closed_bar:
                continue
            live = np.flatnonzero(binding.expires_ms > now)
            if keep is not None:
                live = live[np.isin(group.ids[binding.members[live]], keep)]
            if len(live) == 0:
                continue
            try:
                outcome = frame.result(
                    group, functools.partial(groups.evaluate, frame, group, self.evaluator)
                )
            except Exception:  # a bug with one group must not stop the others
                log.exception("strategies %s: scan failed", group.ids[:10].tolist())
                for k in live.tolist():
                    self._report(binding.entries[k], UNEVALUABLE, result)
                continue
            evaluated[at] = (binding, live, outcome)
        parts = [evaluated[at] for at in sorted(evaluated)]
        self._errors(parts, where, frame, result)
        if parts:
            self._fire(parts, frame, result)
        return result

    def _errors(
        self,
        parts: list[tuple[_Binding, np.ndarray, GroupResult]],
        where: _Places,
        frame: MarketFrame,
        result: ScanResult,
    ) -> None:
        """Report each evaluated strategy's error when it changed (most have none, before and after),
        naming the coins it is about (:func:`naming_coins`)."""
        now_ms = frame.timestamp_ms
        now_erred: dict[int, tuple[_Entry, str | None]] = {}
        for binding, _, outcome in parts:
            for i, error in outcome.errors.items():
                k = binding.local.get(i)
                if k is not None and binding.expires_ms[k] > now_ms:
                    pairs = slice(int(outcome.offsets[i]), int(outcome.offsets[i + 1]))
                    scope = outcome.positions[pairs].astype(np.int64)
                    undefined = np.zeros(len(frame), dtype=bool)
                    undefined[scope[outcome.undefined[pairs]]] = True
                    named = naming_coins(error, frame.symbols, scope, undefined)
                    now_erred[binding.entries[k].spec.id] = (binding.entries[k], named)
        evaluated = {id(binding) for binding, _, _ in parts}
        for strategy_id in self._erred - set(now_erred):
            binding, k = where.get(strategy_id, (None, 0))
            if id(binding) in evaluated and binding.expires_ms[k] > now_ms:
                self._report(binding.entries[k], None, result)
        for entry, error in now_erred.values():
            self._report(entry, error, result)

    def _fire(
        self, parts: list[tuple[_Binding, np.ndarray, GroupResult]], frame: MarketFrame, result: ScanResult
    ) -> None:
        """What fires, for every pair of this worker's evaluated strategies at once."""
        entries: list[_Entry] = []
        rules, bars, counts, positions, matched, undefined = [], [], [], [], [], []
        for binding, live, outcome in parts:
            group = binding.group
            every = len(live) == len(binding.members)
            members = binding.members if every else binding.members[live]
            entries += binding.entries if every else [binding.entries[k] for k in live.tolist()]
            rules.append(binding.rules if every else binding.rules.take(live))
            bar = frame.closed_bar[group.timeframe] if group.on_bar_close else frame.bar_open[group.timeframe]
            bars.append(np.full(len(members), bar, dtype=np.int64))
            starts = outcome.offsets[members]
            counts.append(outcome.offsets[members + 1] - starts)
            if every and binding.contiguous:  # this worker's share is one slice (the usual case)
                pairs = slice(int(starts[0]), int(outcome.offsets[members[-1] + 1]))
            else:
                pairs = _ranges(starts, counts[-1])
            positions.append(outcome.positions[pairs])
            matched.append(outcome.matched[pairs])
            undefined.append(outcome.undefined[pairs])
        count = np.concatenate(counts)
        position = np.concatenate(positions)
        bar_ms = np.concatenate(bars)
        result.evaluated += len(entries)
        result.coins += len(position)
        fire, changed = self.table.decide(
            Rules.concatenate(rules),
            bar_ms,
            count,
            frame.ids[position],
            np.concatenate(matched),
            np.concatenate(undefined),
            frame.timestamp_ms,
        )
        result.states += changed
        fired = np.flatnonzero(fire)
        if len(fired) == 0:
            return
        owner = np.repeat(np.arange(len(entries)), count)[fired]
        once: list[int] = []
        for k, at in zip(owner.tolist(), position[fired].tolist()):
            entry = entries[k]
            assert entry.condition is not None
            result.alerts.append(self._alert(entry.spec, entry.condition, frame, at, int(bar_ms[k])))
            if entry.spec.frequency == "once" and (not once or once[-1] != entry.spec.id):
                once.append(entry.spec.id)
        for strategy_id in once:
            result.disable.append(strategy_id)
            self._retire(strategy_id)
        self.table.forget(once)

    def _retire(self, strategy_id: int) -> None:
        """A ``once`` strategy that fired is gone; its place in the bindings is only marked (expired),
        so that they need not be rebuilt."""
        del self.entries[strategy_id]
        self._erred.discard(strategy_id)
        if self._bound is not None and strategy_id in self._bound[3]:
            binding, k = self._bound[3].pop(strategy_id)
            binding.expires_ms[k] = np.iinfo(np.int64).min
        else:
            self._changed.add(strategy_id)
            self._version += 1

    def _report(self, entry: _Entry, error: str | None, result: ScanResult) -> None:
        if error != entry.error:
            entry.error = error
            result.errors[entry.spec.id] = error
        if error is None:
            self._erred.discard(entry.spec.id)
        else:
            self._erred.add(entry.spec.id)

    @staticmethod
    def _alert(
        spec: StrategySpec, condition: CompiledCondition, frame: MarketFrame, at: int, bar: int
    ) -> Alert:
        values: dict[str, float | None] = {}
        for _, key, _ in condition.inputs:
            column = frame.column(spec, key, condition.calls.get(key))
            value = column if isinstance(column, float) or column is None else column[at]
            values[key] = json_number(value)
        price = frame.fields["price"][at]
        price_value = json_number(price)
        symbol = frame.symbols[at]
        return Alert(  # worded by the Notifier (ubot/notify/words.py)
            strategy_id=spec.id,
            user_id=spec.user_id,
            strategy_name=spec.name,
            coin_id=int(frame.ids[at]),
            symbol=symbol,
            name=frame.names[at],
            price=price_value,
            currency=frame.currency,
            rank=_rank(frame, at),
            timeframe=spec.timeframe,
            fired_at_ms=frame.timestamp_ms,
            bar_open_ms=bar,
            condition=spec.condition,
            values=values,
            subject="",
            text="",
            deliveries=spec.deliveries,
            quiet_hours=spec.quiet_hours,
            timezone=spec.timezone,
            template=spec.template,
            muted_until_ms=spec.muted_until_ms,
        )


def _rank(frame: MarketFrame, at: int) -> int | None:
    """The coin's market cap rank, ``None`` when CoinMarketCap gave none."""
    rank = json_number(frame.fields["rank"][at])
    return None if rank is None else int(rank)


def naming_coins(
    error: str | None, symbols: Sequence[str], scope: np.ndarray, undefined: np.ndarray
) -> str | None:
    """The error, naming the coins of ``scope`` it is about, unless it is about all of several:
    ``division by zero (for DOGE)``, ``... (for DOGE, PEPE, SHIB and 4 more)``."""
    coins = scope[undefined[scope]]
    if error is None or not len(coins) or (len(coins) > 1 and len(coins) == len(scope)):
        return error
    named = ", ".join(symbols[i] for i in coins[:3].tolist())
    return f"{error} (for {named}{f' and {len(coins) - 3} more' if len(coins) > 3 else ''})"
