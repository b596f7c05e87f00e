"""One Scanner worker's job: its strategies, their firing state, and one tick's evaluation of them.

A worker owns a fixed share of the strategies (the Scanner routes by strategy id), so the firing state
of each strategy is touched by one thread only. ``scan(frame)`` never raises for a strategy's fault: a
condition that cannot be compiled or evaluated is reported (``errors``) and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from ubot.jsonsafe import json_number
from ubot.notify.messages import Alert, AlertState
from ubot.rules import CompiledCondition, ConditionError, compile_condition
from ubot.rules.compiler import Evaluator
from ubot.scan.firing import FiringState, decide
from ubot.scan.frame import MarketFrame
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


@dataclass
class _Entry:
    spec: StrategySpec
    condition: CompiledCondition | None
    state: FiringState
    error: str | None = None  # last error reported to the owner


class ScanWorker:
    def __init__(self) -> None:
        self.entries: dict[int, _Entry] = {}
        self.evaluator = Evaluator()
        self._pending_errors: dict[int, str | None] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def strategies(self) -> list[tuple[StrategySpec, CompiledCondition]]:
        return [(e.spec, e.condition) for e in self.entries.values() if e.condition is not None]

    def replace_user(self, user_id: int, specs: Iterable[StrategySpec], forget: Collection[int] = ()) -> None:
        """Make ``specs`` this worker's strategies of ``user_id`` (the others of that user are dropped).
        Those in ``forget`` start afresh: the planner decided their firing state is over
        (:meth:`~ubot.scan.planner.ScanPlanner.set_user`)."""
        given = {spec.id: spec for spec in specs}
        for strategy_id in [
            i for i, e in self.entries.items() if e.spec.user_id == user_id and i not in given
        ]:
            del self.entries[strategy_id]
        for spec in given.values():
            entry = self.entries.get(spec.id)
            if entry is None or spec.id in forget:
                self.entries[spec.id] = self._entry(spec, FiringState())
            else:
                entry.spec = spec  # same rules (or it would be forgotten): same condition

    def _entry(self, spec: StrategySpec, state: FiringState) -> _Entry:
        try:
            condition = compile_condition(spec.condition)
        except ConditionError as error:  # validated when saved: only a language change can get here
            self._pending_errors[spec.id] = f"the condition is no longer valid: {error}"
            return _Entry(spec, None, state, self._pending_errors[spec.id])
        return _Entry(spec, condition, state)

    def restore(self, states: Iterable[AlertState]) -> None:
        """Firing state read back from the database (after a restart of this worker)."""
        by_strategy: dict[int, list[AlertState]] = {}
        for row in states:
            by_strategy.setdefault(row.strategy_id, []).append(row)
        for strategy_id, rows in by_strategy.items():
            entry = self.entries.get(strategy_id)
            if entry is not None:
                entry.state = FiringState.restore(rows)

    def scan(self, frame: MarketFrame) -> ScanResult:
        result = ScanResult(errors=self._pending_errors)
        self._pending_errors = {}
        for entry in list(self.entries.values()):
            spec = entry.spec
            if entry.condition is None or spec.expired(frame.timestamp_ms):
                continue
            if spec.on_bar_close and spec.timeframe not in frame.closed_bar:
                continue
            try:
                self._scan_one(entry, frame, result)
            except Exception:  # a bug with one strategy must not stop the others
                log.exception("strategy %d: scan failed", spec.id)
                self._report(entry, "the condition could not be evaluated", result)
        return result

    def _scan_one(self, entry: _Entry, frame: MarketFrame, result: ScanResult) -> None:
        spec, condition = entry.spec, entry.condition
        assert condition is not None
        scope = frame.scope(spec)
        # Evaluated once per tick over every coin of the frame for all strategies with this condition
        # on this timeframe (whatever their scope), then each strategy takes its own coins.
        key = (condition.text, spec.timeframe, spec.on_bar_close)
        outcome = frame.results.get(key)
        if outcome is None:
            outcome = self.evaluator.evaluate(condition, frame.values(spec, condition), len(frame))
            frame.results[key] = outcome
        result.evaluated += 1
        result.coins += len(scope)
        self._report(entry, outcome.error_for(scope), result)
        bar = frame.closed_bar[spec.timeframe] if spec.on_bar_close else frame.bar_open[spec.timeframe]
        coins = frame.ids[scope]
        matched, undefined = outcome.matched[scope], outcome.undefined[scope]
        fire, changed = decide(spec, entry.state, coins, matched, undefined, frame.timestamp_ms, bar)
        result.states += changed
        if not fire:
            return
        positions = dict(zip(coins.tolist(), scope.tolist()))
        for coin in fire:
            result.alerts.append(self._alert(spec, condition, frame, positions[coin], bar))
        if spec.frequency == "once":
            result.disable.append(spec.id)
            del self.entries[spec.id]

    @staticmethod
    def _report(entry: _Entry, error: str | None, result: ScanResult) -> None:
        if error != entry.error:
            entry.error = error
            result.errors[entry.spec.id] = error

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
        )
