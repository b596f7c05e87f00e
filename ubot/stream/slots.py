"""How many event streams may be open at once: in all, per client address and per user.

One address (or one account) must not take every stream slot of a gateway. :class:`StreamSlots`
holds the three counts under one lock and takes a slot only when all three caps allow it; a refusal
is a :class:`TooManyStreams` naming the cap that refused (the client's own caps are checked before
the server's, so the client is told what it can fix). The HTTP side (``ubot/http/stream.py``)
answers 429 for a client's cap and 503 for the server's. No threads here: callers take and give back.

Defaults (``[http]``) and why: ``stream_max`` 4 in all (each stream holds one of gunicorn's 8 threads
today; it becomes large once the gateway is async), 2 per address (a browser tab and a program, or
two tabs; a third from the same place waits), 3 per user (a user on two or three devices; more than
one address's worth, fewer than every slot).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass

#: The caps, as the refusals name them: the client's own first.
PER_USER = "per user"
PER_ADDRESS = "per address"
IN_ALL = "in all"


@dataclass(frozen=True)
class StreamCaps:
    total: int = 4
    per_address: int = 2
    per_user: int = 3


class TooManyStreams(Exception):
    """No slot: ``cap`` (:data:`PER_USER`, :data:`PER_ADDRESS` or :data:`IN_ALL`) is reached."""

    def __init__(self, cap: str, limit: int) -> None:
        super().__init__(f"{limit} event streams are open {cap}, the most allowed")
        self.cap = cap
        self.limit = limit


@dataclass(frozen=True)
class Slot:
    """One taken slot: give it back with :meth:`StreamSlots.release` (once)."""

    address: str
    user_id: int | None


class StreamSlots:
    """The open streams, counted in all, by address and by user; safe across threads."""

    def __init__(self, caps: StreamCaps) -> None:
        self.caps = caps
        self._total = 0
        self._by_address: Counter[str] = Counter()
        self._by_user: Counter[int] = Counter()
        self._lock = threading.Lock()

    def acquire(self, address: str, user_id: int | None) -> Slot:
        """A slot for a stream of ``address`` (and ``user_id``, None when anonymous), or
        :class:`TooManyStreams` naming the first cap reached."""
        caps = self.caps
        with self._lock:
            if user_id is not None and self._by_user[user_id] >= caps.per_user:
                raise TooManyStreams(PER_USER, caps.per_user)
            if self._by_address[address] >= caps.per_address:
                raise TooManyStreams(PER_ADDRESS, caps.per_address)
            if self._total >= caps.total:
                raise TooManyStreams(IN_ALL, caps.total)
            self._total += 1
            self._by_address[address] += 1
            if user_id is not None:
                self._by_user[user_id] += 1
        return Slot(address, user_id)

    def release(self, slot: Slot) -> None:
        with self._lock:
            self._total -= 1
            _decrement(self._by_address, slot.address)
            if slot.user_id is not None:
                _decrement(self._by_user, slot.user_id)

    def open(self, address: str | None = None, user_id: int | None = None) -> int:
        """How many are open: in all, or of ``address``, or of ``user_id``."""
        with self._lock:
            if address is not None:
                return self._by_address[address]
            if user_id is not None:
                return self._by_user[user_id]
            return self._total


def _decrement(counts: Counter, key: object) -> None:
    """One fewer; a key at zero is dropped, so the counters hold only open streams."""
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]
