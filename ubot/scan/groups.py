"""One evaluation per condition shape: strategies whose conditions differ only in their literal numbers
are evaluated together, once per tick, over all their (strategy, coin) pairs.

The compiler lifts the literals out of a condition (``price > 67400`` -> ``op_gt(price, lit_0)`` with
``lit_0 = 67400``; :attr:`~ubot.rules.compiler.CompiledCondition.shape_key`). Strategies with the same
shape, timeframe and candles (open or closed) form a :class:`Group` (at most :data:`GROUP_SIZE`
strategies, so that the arrays of one evaluation stay small). Each tick, :func:`evaluate` gathers every
input over the group's pairs (each strategy's own scope, laid end to end), and the literals as arrays
(each strategy's value repeated over its coins), and runs the shape once with asteval
(:class:`~ubot.rules.compiler.Evaluator`): a few numpy operations over every pair, whatever the number
of distinct thresholds. The literal arrays are float64 numbers taken from the compiled conditions; the
evaluator refuses anything else.

Memory: a group's arrays are one element per pair of that group; a :class:`GroupResult` keeps its
pairs' frame positions and outcomes (about 6 bytes a pair) until the tick's frame is dropped. No
(strategy x coin) matrix exists anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ubot.rules import CompiledCondition, EvalResult
from ubot.rules.compiler import Evaluator
from ubot.scan.spec import StrategySpec

if TYPE_CHECKING:
    from ubot.scan.frame import MarketFrame

#: Strategies per group at most (a larger set of strategies with one shape is split).
GROUP_SIZE = 2048


@dataclass(frozen=True, eq=False)
class Group:
    """Strategies evaluated as one: same shape, timeframe and candles. Hashable by identity."""

    condition: CompiledCondition  # the shape (any member's compiled condition)
    timeframe: str
    on_bar_close: bool
    specs: tuple[StrategySpec, ...]  # by worker, then id
    ids: np.ndarray  # their ids (int64)
    literals: np.ndarray  # (strategies, literals) float64: row i is specs[i]'s literals

    def __len__(self) -> int:
        return len(self.specs)


def group(
    strategies: Iterable[tuple[StrategySpec, CompiledCondition]],
    owner: Callable[[int], int] | None = None,
    size: int = GROUP_SIZE,
) -> tuple[Group, ...]:
    """``strategies`` in groups: each group's strategies by ``owner`` (the worker of a strategy id),
    then id, so that each worker's share of a group's pairs is one slice; groups in order of their
    first strategy."""
    grouping = Grouping(owner, size)
    for spec, compiled in strategies:
        grouping.add(spec, compiled)
    return grouping.groups()


Key = tuple  # (shape key, timeframe, on bar close)


class Grouping:
    """The groups of a set of strategies that changes a few at a time: a change regroups only the
    strategies of its own key (shape, timeframe, candles); every other group stays the same object.
    :meth:`groups` equals :func:`group` over the strategies held (``tests/scan/test_groups.py``)."""

    def __init__(self, owner: Callable[[int], int] | None = None, size: int = GROUP_SIZE) -> None:
        self._owner = owner
        self._size = size
        self._members: dict[Key, dict[int, tuple[StrategySpec, CompiledCondition]]] = {}
        self._key_of: dict[int, Key] = {}
        self._groups: dict[Key, tuple[Group, ...]] = {}
        self._dirty: set[Key] = set()
        self._ordered: tuple[Group, ...] | None = ()

    def __len__(self) -> int:
        return len(self._key_of)

    def add(self, spec: StrategySpec, compiled: CompiledCondition) -> None:
        """Add ``spec`` (replacing the strategy of the same id, if held)."""
        self.remove(spec.id)
        key = (compiled.shape_key, spec.timeframe, spec.on_bar_close)
        self._members.setdefault(key, {})[spec.id] = (spec, compiled)
        self._key_of[spec.id] = key
        self._dirty.add(key)
        self._ordered = None

    def get(self, strategy_id: int) -> tuple[StrategySpec, CompiledCondition] | None:
        """The strategy held with this id, and its compiled condition; None if none is."""
        key = self._key_of.get(strategy_id)
        return None if key is None else self._members[key][strategy_id]

    def remove(self, strategy_id: int) -> None:
        key = self._key_of.pop(strategy_id, None)
        if key is None:
            return
        members = self._members[key]
        del members[strategy_id]
        if not members:
            del self._members[key]
        self._dirty.add(key)
        self._ordered = None

    def groups(self) -> tuple[Group, ...]:
        """Every group, in order of its first strategy."""
        if self._ordered is not None:
            return self._ordered
        for key in self._dirty:
            members = self._members.get(key)
            if members:
                self._groups[key] = self._chunks(list(members.values()))
            else:
                self._groups.pop(key, None)
        self._dirty.clear()
        everything = [g for chunks in self._groups.values() for g in chunks]
        everything.sort(key=lambda g: int(g.ids[0]))
        self._ordered = tuple(everything)
        return self._ordered

    def _chunks(self, members: list[tuple[StrategySpec, CompiledCondition]]) -> tuple[Group, ...]:
        owner = self._owner
        members.sort(key=lambda member: (owner(member[0].id) if owner else 0, member[0].id))
        chunks = []
        for start in range(0, len(members), self._size):
            chunk = members[start : start + self._size]
            spec, compiled = chunk[0]
            literals = np.array([c.literals for _, c in chunk], dtype=np.float64).reshape(
                len(chunk), len(compiled.literals)
            )
            chunks.append(
                Group(
                    condition=compiled,
                    timeframe=spec.timeframe,
                    on_bar_close=spec.on_bar_close,
                    specs=tuple(s for s, _ in chunk),
                    ids=np.array([s.id for s, _ in chunk], dtype=np.int64),
                    literals=literals,
                )
            )
        return tuple(chunks)


@dataclass(frozen=True, eq=False)
class GroupResult:
    """A group's outcome: strategy ``i``'s pairs are ``offsets[i]:offsets[i + 1]``, over the frame
    positions ``positions`` (its scope, in the frame's order). ``errors``: strategy index -> why some
    of its coins had no result (only strategies with such coins)."""

    positions: np.ndarray
    offsets: np.ndarray
    matched: np.ndarray
    undefined: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)


def evaluate(frame: MarketFrame, group: Group, evaluator: Evaluator) -> GroupResult:
    """``group`` over ``frame``, once for all its (strategy, coin) pairs."""
    scopes = [frame.scope(spec) for spec in group.specs]
    counts = np.fromiter((len(s) for s in scopes), dtype=np.int64, count=len(scopes))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    pairs = int(offsets[-1])
    positions = np.concatenate(scopes).astype(np.int32) if pairs else np.empty(0, dtype=np.int32)
    owner = np.repeat(np.arange(len(group)), counts)
    spec, condition = group.specs[0], group.condition
    values: dict[str, np.ndarray | float] = {}
    for _, key, _ in condition.inputs:
        column = frame.column(spec, key, condition.calls.get(key))
        if column is not None:
            values[key] = column[positions] if isinstance(column, np.ndarray) else column
    literals = [np.ascontiguousarray(group.literals[owner, k]) for k in range(group.literals.shape[1])]
    outcome = evaluator.evaluate(condition, values, pairs, literals)
    return GroupResult(positions, offsets, outcome.matched, outcome.undefined, _errors(outcome, offsets))


def _errors(outcome: EvalResult, offsets: np.ndarray) -> dict[int, str]:
    """Per strategy with undefined pairs: the reasons that touch its undefined pairs (what
    :meth:`EvalResult.error_for` says for its scope), counted with cumulative sums, not per strategy."""
    undefined = outcome.undefined
    if not undefined.any():
        return {}

    def per_strategy(mask: np.ndarray) -> np.ndarray:
        totals = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        return totals[offsets[1:]] - totals[offsets[:-1]] > 0

    some = np.flatnonzero(per_strategy(undefined))
    if not outcome.causes:
        return dict.fromkeys(some.tolist(), outcome.error or "")
    hits = {
        message: per_strategy(np.broadcast_to(mask, undefined.shape) & undefined)
        for message, mask in outcome.causes.items()
    }
    return {
        i: "; ".join(m for m, hit in hits.items() if hit[i]) or outcome.error or "" for i in some.tolist()
    }
