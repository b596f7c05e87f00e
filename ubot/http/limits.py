"""Token buckets, one per key (a client address, a user id), in bounded memory. Pure logic: the time
comes from an injected ``now()`` (seconds), so tests step a :class:`~ubot.clocks.FakeClock`.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens a second; a request spends one.
A key seen for the first time starts with a full bucket.

Memory stays bounded in two ways:

* A bucket idle for ``burst / rate`` seconds is full again, so forgetting it changes nothing (a new
  bucket starts full too). The buckets are kept in least-recently-used order, so those idle ones are
  always at the front and are dropped, a few at a time, whenever a new key arrives.
* At most ``max_keys`` buckets are kept; beyond, the least recently used one is dropped even if it is
  not full yet (that key then starts afresh: the price of a hard memory cap).

Thread-safe: the rate limits run on the gateway's event loop, and a sync caller may be in its pool.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

DEFAULT_MAX_KEYS = 65_536  # about 10 MB of buckets at most per limiter
_EPSILON = 1e-9  # 12 s x (5/60 per s) is 0.9999999999999999 in floating point: still one token


@dataclass(frozen=True)
class Budget:
    """``rate`` tokens a second, at most ``burst`` saved up."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)) or self.burst < 1:
            raise ValueError(f"a budget needs rate > 0 and burst >= 1, not {self.rate}, {self.burst}")


class TokenBuckets:
    def __init__(self, budget: Budget, *, now: Callable[[], float], max_keys: int = DEFAULT_MAX_KEYS) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self.budget = budget
        self.max_keys = max_keys
        self._now = now
        self._idle_s = budget.burst / budget.rate  # time for an empty bucket to fill up again
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()  # key -> tokens, when
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)

    def take(self, key: Hashable) -> float:
        """Spend one of ``key``'s tokens: 0.0 when there was one, else the seconds until there is
        one (nothing is spent then)."""
        rate, burst = self.budget.rate, self.budget.burst
        now = self._now()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                self._forget_idle(now)
                tokens = float(burst)
            else:
                saved, when = bucket
                tokens = min(float(burst), saved + max(0.0, now - when) * rate)  # a clock stepped back adds 0
                self._buckets.move_to_end(key)
            if tokens >= 1.0 - _EPSILON:
                self._buckets[key] = (max(0.0, tokens - 1.0), now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / rate

    def _forget_idle(self, now: float) -> None:
        """Drop the full (long idle) buckets at the front, and make room for one more key."""
        buckets = self._buckets
        while buckets:
            _, (_, when) = next(iter(buckets.items()))
            if now - when < self._idle_s and len(buckets) < self.max_keys:
                return
            buckets.popitem(last=False)


def retry_after(wait_s: float) -> int:
    """``Retry-After`` in whole seconds, at least 1, never earlier than the token is back."""
    return max(1, math.ceil(wait_s - _EPSILON))
