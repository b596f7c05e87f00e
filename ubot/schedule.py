"""When to tick: exact multiples of the interval on the UTC wall clock, and how late we were.

Pure logic, used by the Clock actor. Deadlines are ``k * interval`` for integer ``k`` (never
"previous + interval", so nothing accumulates: no drift). When the clock wakes more than one
interval after a deadline (machine suspended, the process stalled), the deadlines it slept through
are counted as *missed* and only the most recent one fires: no burst of catch-up ticks. A deadline
that arrives while the previous tick is still in the pipeline is missed too (*overrun*).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tick:
    number: int  # 1, 2, ... since start
    scheduled_ms: int  # the deadline this tick belongs to (epoch ms, UTC)
    fired_ms: int  # when it actually fired

    @property
    def lateness_ms(self) -> int:
        return self.fired_ms - self.scheduled_ms


class LatenessStats:
    """Lateness of the last ``window`` ticks (p50, p99) and the worst ever (max)."""

    def __init__(self, window: int = 4096) -> None:
        self._recent: deque[float] = deque(maxlen=window)
        self.max_ms = 0.0

    def add(self, lateness_ms: float) -> None:
        self._recent.append(lateness_ms)
        self.max_ms = max(self.max_ms, lateness_ms)

    def percentile(self, q: float) -> float | None:
        if not self._recent:
            return None
        return float(np.percentile(np.fromiter(self._recent, dtype=np.float64), q))


class Ticker:
    """Deadline bookkeeping for a fixed interval (seconds > 0)."""

    def __init__(self, interval_s: float, now: float) -> None:
        if not interval_s > 0:
            raise ValueError("interval must be > 0")
        self.interval = interval_s
        k = self._last_index(now)
        self._k = k if k * interval_s == now else k + 1  # next deadline = k * interval
        self.number = 0
        self.missed = 0
        self.overruns = 0
        self.lateness = LatenessStats()

    @property
    def next_deadline(self) -> float:
        return self._k * self.interval

    def _last_index(self, now: float) -> int:
        """The largest ``k`` with ``k * interval <= now`` (``now / interval`` may round either way)."""
        k = math.floor(now / self.interval)
        while k * self.interval > now:
            k -= 1
        while (k + 1) * self.interval <= now:
            k += 1
        return k

    def fire(self, now: float, busy: bool = False) -> Tick | None:
        """Called when woken at ``now`` (>= :attr:`next_deadline`); the tick to send, if any."""
        if now < self.next_deadline:
            return None
        behind = self._last_index(now) - self._k
        self._k += behind
        self.missed += behind
        deadline = self.next_deadline
        self._k += 1
        if busy:
            self.missed += 1
            self.overruns += 1
            return None
        self.number += 1
        tick = Tick(self.number, round(deadline * 1000), round(now * 1000))
        self.lateness.add((now - deadline) * 1000)
        return tick
