"""Per-destination paced queues: plain logic, no threads, time passed in (seconds, any clock).

Each destination (a Telegram chat, a phone number, a webhook host, ...) has its own queue. An item
can be taken when it is due, its destination has nothing in flight (one send at a time per
destination, so their order holds), and the destination's pace allows: ``min_interval_s`` after
the previous send to it ended, or longer when the provider asked to wait (``pause_s``). Different
destinations never wait for each other. Among the items ready, the one ready the longest goes first.
"""

from __future__ import annotations

import heapq
import itertools
import math
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Destination(Generic[T]):
    waiting: list[tuple[float, int, T]] = field(default_factory=list)  # heap of (due, seq, item)
    busy: bool = False
    ready_at: float = -math.inf  # pacing: no send before this

    def ready_time(self) -> float | None:
        """When its next item may go (ignoring ``busy``); ``None`` when it has none."""
        if not self.waiting:
            return None
        return max(self.waiting[0][0], self.ready_at)


class PacedQueues(Generic[T]):
    def __init__(self, min_interval_s: float = 0.0) -> None:
        self.min_interval_s = min_interval_s
        self._destinations: dict[str, _Destination[T]] = {}
        self._seq = itertools.count()

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
            if ready is not None and ready <= now:
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
        return best[2], item

    def done(self, destination: str, at: float, pause_s: float | None = None) -> None:
        """The send to ``destination`` ended at ``at``; its next one waits ``min_interval_s``, or
        ``pause_s`` when the provider asked for longer."""
        state = self._destinations[destination]
        state.busy = False
        state.ready_at = at + max(self.min_interval_s, pause_s or 0.0)

    def next_time(self) -> float | None:
        """The earliest time :meth:`take` may return an item (maybe already past), or ``None`` when
        nothing waits except behind sends in flight."""
        times = [
            ready
            for state in self._destinations.values()
            if not state.busy and (ready := state.ready_time()) is not None
        ]
        return min(times, default=None)
