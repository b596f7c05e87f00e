"""The bus inside one process (role ``all``): per-topic bounded logs guarded by one condition
variable, with Redis Streams' id and ``MAXLEN`` rules (:mod:`ubot.bus.ids`), so that code written
against :class:`~ubot.bus.base.Bus` behaves the same on either implementation.

* Ids come from the injected clock's milliseconds (a later run's ids start above an earlier run's,
  so a ``Last-Event-ID`` kept across a restart is recognised as missed, not matched by accident).
* A topic keeps exactly its last ``maxlen`` entries (Redis' ``MAXLEN ~`` keeps at least that many,
  trimming whole nodes of entries).
* Membership expiry is measured on the injected clock: tests step it.
* It is always connected; nothing here survives the process (nothing kept travels only on the bus).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ubot.bus.base import Bus, BusClosed, BusHealth, RawBatch, check_name
from ubot.bus.ids import ZERO, EntryId, LogState
from ubot.clocks import Clock, SystemClock

DEFAULT_MAXLEN = 10_000


@dataclass
class _Log:
    ids: list[EntryId] = field(default_factory=list)
    payloads: list[bytes] = field(default_factory=list)
    state: LogState = field(default_factory=LogState)


class InProcessBus(Bus):
    def __init__(
        self,
        clock: Clock | None = None,
        *,
        maxlen: int = DEFAULT_MAXLEN,
        maxlens: Mapping[str, int] | None = None,
    ) -> None:
        """``maxlen``: entries kept per topic; ``maxlens``: per-topic exceptions."""
        self.clock = clock or SystemClock()
        self.maxlen = maxlen
        self.maxlens = dict(maxlens or {})
        if min([maxlen, *self.maxlens.values()]) < 1:
            raise ValueError("maxlen must be at least 1")
        self._logs: dict[str, _Log] = {}
        self._latest: dict[str, bytes] = {}
        self._groups: dict[str, dict[str, float]] = {}  # group -> member -> expiry (clock seconds)
        self._closed = False
        self._changed = threading.Condition(threading.Lock())

    # --- topics ----------------------------------------------------------------------------------

    def append(self, topic: str, payload: bytes) -> EntryId:
        with self._changed:
            self._check_open()
            now_ms = int(self.clock.now() * 1000)
            log = self._logs.get(topic)
            if log is None:
                entry_id = ZERO.successor(now_ms)
                log = self._logs[topic] = _Log(state=LogState(max_deleted=entry_id.predecessor()))
            else:
                entry_id = log.state.last.successor(now_ms)
            log.ids.append(entry_id)
            log.payloads.append(payload)
            state = log.state
            excess = len(log.ids) - self.maxlens.get(topic, self.maxlen)
            if excess > 0:
                del log.ids[:excess], log.payloads[:excess]
            log.state = LogState(
                len(log.ids), state.entries_added + 1, log.ids[0], entry_id, state.max_deleted
            )
            self._changed.notify_all()
            return entry_id

    def read_raw(self, topic: str, after: EntryId, timeout: float, count: int) -> RawBatch:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                if self._closed:
                    return RawBatch(closed=True)
                log = self._logs.get(topic)
                state = log.state if log is not None else LogState()
                if after > state.last:
                    return RawBatch(missed=True, cursor=state.last)
                missed = state.missed(after)
                if log is not None:
                    start = bisect.bisect_right(log.ids, after)
                    if start < len(log.ids):
                        end = start + count
                        found = tuple(zip(log.ids[start:end], log.payloads[start:end]))
                        return RawBatch(found, missed)
                if missed:
                    return RawBatch(missed=True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return RawBatch()
                self._changed.wait(remaining)

    def last_id(self, topic: str) -> EntryId:
        check_name("topic", topic)
        with self._changed:
            self._check_open()
            log = self._logs.get(topic)
            return ZERO if log is None else log.state.last

    # --- latest values ---------------------------------------------------------------------------

    def put(self, key: str, payload: bytes) -> None:
        with self._changed:
            self._check_open()
            self._latest[key] = payload

    def get(self, key: str) -> bytes | None:
        with self._changed:
            self._check_open()
            return self._latest.get(key)

    # --- membership ------------------------------------------------------------------------------

    def heartbeat(self, group: str, member: str, ttl_s: float) -> None:
        check_name("group", group)
        if not member:
            raise ValueError("a member needs a name")
        with self._changed:
            self._check_open()
            self._groups.setdefault(group, {})[member] = self.clock.now() + ttl_s

    def leave(self, group: str, member: str) -> None:
        check_name("group", group)
        with self._changed:
            self._check_open()
            self._groups.get(group, {}).pop(member, None)

    def members(self, group: str) -> tuple[str, ...]:
        check_name("group", group)
        with self._changed:
            self._check_open()
            now = self.clock.now()
            live = self._groups.get(group, {})
            for member in [m for m, expiry in live.items() if expiry <= now]:
                del live[member]
            return tuple(sorted(live))

    # --- health ----------------------------------------------------------------------------------

    def ping(self) -> None:
        with self._changed:
            self._check_open()

    def health(self) -> BusHealth:
        with self._changed:
            closed = self._closed
        return BusHealth("in-process", not closed, "closed" if closed else None)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _check_open(self) -> None:
        if self._closed:
            raise BusClosed("the bus is closed")
