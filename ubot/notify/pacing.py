"""Per-destination paced queues: plain logic, no threads, time passed in (seconds, any clock).

Each destination (a Telegram chat, a phone number, a webhook host, ...) has its own queue. An item
can be taken when it is due, its destination has nothing in flight (one send at a time per
destination, so their order holds), and the destination's pace allows: ``min_interval_s`` after
the previous send to it ended, or longer when the provider asked to wait (``pause_s``). Different
destinations never wait for each other. Among the items ready, the one ready the longest goes first.

With an ``owner`` function and ``per_owner``, at most that many items of one owner (a user) are in
flight at once, over all destinations: one user's slow destinations cannot take every sender. A
destination whose next item belongs to an owner at the cap waits (its order holds) until one of
that owner's sends ends.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Destination(Generic[T]):
    waiting: list[tuple[float, int, T]] = field(default_factory=list)  # heap of (due, seq, item)
    busy: bool = False
    busy_owner: Hashable = None  # the owner of the item in flight
    ready_at: float = -math.inf  # pacing: no send before this

    def ready_time(self) -> float | None:
        """When its next item may go (ignoring ``busy``); ``None`` when it has none."""
        if not self.waiting:
            return None
        return max(self.waiting[0][0], self.ready_at)


class PacedQueues(Generic[T]):
    def __init__(
        self,
        min_interval_s: float = 0.0,
        owner: Callable[[T], Hashable] | None = None,
        per_owner: int | None = None,
    ) -> None:
        self.min_interval_s = min_interval_s
        self.owner = owner
        self.per_owner = per_owner
        self._destinations: dict[str, _Destination[T]] = {}
        self._seq = itertools.count()
        self._owners_busy: Counter[Hashable] = Counter()

    def _owner_of(self, item: T) -> Hashable:
        return None if self.owner is None else self.owner(item)

    def _capped(self, state: _Destination[T]) -> bool:
        """Its next item's owner has ``per_owner`` items in flight already."""
        if self.per_owner is None or self.owner is None or not state.waiting:
            return False
        return self._owners_busy[self._owner_of(state.waiting[0][2])] >= self.per_owner

    def owner_in_flight(self, owner: Hashable) -> int:
        return self._owners_busy[owner]

    def __len__(self) -> int:
        """Items waiting (not in flight)."""
        return sum(len(d.waiting) for d in self._destinations.values())

    @property
    def in_flight(self) -> int:
        return sum(d.busy for d in self._destinations.values())

    def push(self, destination: str, item: T, due: float) -> None:
        """Queue ``item`` for ``destination``, not to be sent before ``due``."""
        state = self._destinations.setdefault(destination, _Destination())
        heapq.heappush(state.waiting, (due, next(self._seq), item))

    def reschedule(self, change: Callable[[T], T | None], due: float) -> int:
        """Bring forward to ``due`` every waiting item due later for which ``change(item)`` gives its
        replacement (``None``: leave it); among items due together the order they were queued in
        holds. How many moved."""
        moved = 0
        for state in self._destinations.values():
            waiting = []
            for item_due, seq, item in state.waiting:
                new = change(item) if item_due > due else None
                if new is None:
                    waiting.append((item_due, seq, item))
                else:
                    waiting.append((due, seq, new))
                    moved += 1
            heapq.heapify(waiting)
            state.waiting = waiting
        return moved

    def take(self, now: float) -> tuple[str, T] | None:
        """The item to send now, and its destination, which is then in flight until :meth:`done`;
        ``None`` when nothing can go yet."""
        best: tuple[float, int, str] | None = None
        forget = []
        for name, state in self._destinations.items():
            if state.busy:
                continue
            if not state.waiting and state.ready_at <= now:
                forget.append(name)  # nothing left, and its pace no longer matters
                continue
            ready = state.ready_time()
            if ready is not None and ready <= now and not self._capped(state):
                key = (ready, state.waiting[0][1], name)
                if best is None or key < best:
                    best = key
        for name in forget:
            del self._destinations[name]
        if best is None:
            return None
        state = self._destinations[best[2]]
        _, _, item = heapq.heappop(state.waiting)
        state.busy = True
        state.busy_owner = self._owner_of(item)
        self._owners_busy[state.busy_owner] += 1
        return best[2], item

    def done(self, destination: str, at: float, pause_s: float | None = None) -> None:
        """The send to ``destination`` ended at ``at``; its next one waits ``min_interval_s``, or
        ``pause_s`` when the provider asked for longer."""
        state = self._destinations[destination]
        state.busy = False
        self._owners_busy[state.busy_owner] -= 1
        if self._owners_busy[state.busy_owner] <= 0:
            del self._owners_busy[state.busy_owner]
        state.busy_owner = None
        state.ready_at = at + max(self.min_interval_s, pause_s or 0.0)

    def next_time(self) -> float | None:
        """The earliest time :meth:`take` may return an item (maybe already past), or ``None`` when
        nothing waits except behind sends in flight (of its destination, or of its owner)."""
        times = [
            ready
            for state in self._destinations.values()
            if not state.busy and not self._capped(state) and (ready := state.ready_time()) is not None
        ]
        return min(times, default=None)
