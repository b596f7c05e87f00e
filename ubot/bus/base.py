"""The bus interface, once: :class:`Bus`. Two implementations: :class:`ubot.bus.memory.InProcessBus`
(role ``all``, threads in one process) and :class:`ubot.bus.redis_streams.RedisBus` (every other
role). Both pass the same tests (``tests/bus/``).

An implementation provides the byte-level operations (:meth:`Bus.append`, :meth:`Bus.read_raw`,
:meth:`Bus.put`, :meth:`Bus.get`, membership, health); this class turns them into typed messages,
in one place: encoding, decoding, skipping what cannot be decoded (logged, never raised to a
reader), and the reader's cursor.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from ubot.bus.ids import EntryId
from ubot.bus.messages import MalformedMessage, Message, decode, encode

log = logging.getLogger(__name__)

#: Topic, key and group names: short, no spaces or separators that would confuse a Redis key.
_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,63}")
DEFAULT_COUNT = 256


class BusUnavailable(RuntimeError):
    """The bus could not be reached within the time allowed (Redis down or unreachable)."""


class BusClosed(BusUnavailable):
    """The bus was closed by this process."""


def check_name(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid {kind} name {name!r} (lower-case letters, digits, _ . -; 64 at most)")
    return name


@dataclass(frozen=True)
class Entry:
    id: EntryId
    message: Message


@dataclass(frozen=True)
class RawBatch:
    """What :meth:`Bus.read_raw` found: ``(id, payload)`` pairs after the asked id, oldest first."""

    entries: tuple[tuple[EntryId, bytes], ...] = ()
    missed: bool = False
    cursor: EntryId | None = None  # where to go on from when nothing was read (None: the asked id)
    closed: bool = False


@dataclass(frozen=True)
class Batch:
    """What one :meth:`Bus.read` found.

    ``entries``: decoded messages after the asked id, oldest first (empty on a timeout).
    ``cursor``: the id to read after next time; it moves past entries that could not be decoded.
    ``missed``: entries after the asked id are gone (trimmed by ``MAXLEN``, or the log is not the
    one the id came from: an earlier run, a Redis restart): catch up from the database.
    ``closed``: the bus was closed; nothing more will come.
    """

    entries: tuple[Entry, ...]
    cursor: EntryId
    missed: bool = False
    closed: bool = False


@dataclass(frozen=True)
class BusHealth:
    """For ``/health``: ``connected`` false means degraded (``error`` says the last failure)."""

    kind: str  # "in-process" | "redis"
    connected: bool
    error: str | None = None


class Bus(ABC):
    """Topics (fan-out logs), latest values, and group membership.

    * A **topic** is an append-only log capped at ``maxlen`` entries (approximately, at least that
      many are kept). :meth:`publish` appends and returns the entry's id; every reader reads every
      entry (fan-out), each from its own cursor, so a reader resumes after any id it was given.
    * A **latest value** is one message under a key (:meth:`set_latest`/:meth:`get_latest`).
    * **Membership**: :meth:`heartbeat` keeps a member of a group alive for ``ttl_s`` seconds;
      :meth:`members` lists the live ones in a stable (sorted) order, so each member can compute
      the same split of the work (rendezvous hashing) without any coordinator.

    Every call may raise :class:`BusUnavailable` (after retrying with backoff within its time
    budget); the bus then reports itself disconnected in :meth:`health` until a call succeeds.
    Nothing kept travels only on the bus: a message that did not arrive is caught up from the
    database.
    """

    # --- typed layer (this class) ----------------------------------------------------------------

    def publish(self, topic: str, message: Message) -> EntryId:
        """Append ``message`` to ``topic``; its id. At least once: a publish retried after a lost
        connection may appear twice (with two ids)."""
        return self.append(check_name("topic", topic), encode(message))

    def read(self, topic: str, after: EntryId, timeout: float, count: int = DEFAULT_COUNT) -> Batch:
        """Messages of ``topic`` after ``after``; waits up to ``timeout`` seconds for the first one.
        Entries that cannot be decoded are logged and skipped."""
        raw = self.read_raw(check_name("topic", topic), after, timeout, count)
        entries = []
        for entry_id, payload in raw.entries:
            try:
                entries.append(Entry(entry_id, decode(payload)))
            except MalformedMessage as error:
                log.warning("skipped entry %s of topic %s: %s", entry_id, topic, error)
        if raw.entries:
            cursor = raw.entries[-1][0]
        else:
            cursor = after if raw.cursor is None else raw.cursor
        return Batch(tuple(entries), cursor, raw.missed, raw.closed)

    def subscribe(self, topic: str, after: EntryId | None = None) -> Subscription:
        """A reader of ``topic`` that keeps its own cursor: after ``after``, or (None) after the
        newest entry at its first read (only what comes next)."""
        return Subscription(self, check_name("topic", topic), after)

    def set_latest(self, key: str, message: Message) -> None:
        self.put(check_name("key", key), encode(message))

    def get_latest(self, key: str) -> Message | None:
        """The message last set under ``key``; None if there is none or it cannot be decoded."""
        payload = self.get(check_name("key", key))
        if payload is None:
            return None
        try:
            return decode(payload)
        except MalformedMessage as error:
            log.warning("skipped the latest value %s: %s", key, error)
            return None

    # --- what an implementation provides ---------------------------------------------------------

    @abstractmethod
    def append(self, topic: str, payload: bytes) -> EntryId:
        """Append encoded bytes (what :meth:`publish` does after encoding)."""

    @abstractmethod
    def read_raw(self, topic: str, after: EntryId, timeout: float, count: int) -> RawBatch:
        """Up to ``count`` entries after ``after``, waiting up to ``timeout`` s for one; returns at
        once when there are some, when entries were missed, or when the bus is closed."""

    @abstractmethod
    def last_id(self, topic: str) -> EntryId:
        """The newest id ``topic`` ever gave (``0-0``: none yet); a reader after it reads what comes next."""

    @abstractmethod
    def put(self, key: str, payload: bytes) -> None: ...

    @abstractmethod
    def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def heartbeat(self, group: str, member: str, ttl_s: float) -> None:
        """``member`` of ``group`` is alive for ``ttl_s`` more seconds (call again well before)."""

    @abstractmethod
    def leave(self, group: str, member: str) -> None:
        """``member`` leaves ``group`` now (a clean stop: the others take over at once)."""

    @abstractmethod
    def members(self, group: str) -> tuple[str, ...]:
        """The live members of ``group``, sorted."""

    @abstractmethod
    def ping(self) -> None:
        """Check the bus answers (``BusUnavailable`` otherwise): for start-up checks."""

    @abstractmethod
    def health(self) -> BusHealth: ...

    @property
    def connected(self) -> bool:
        return self.health().connected

    @abstractmethod
    def close(self) -> None:
        """Wake every blocked reader (their reads end ``closed``); later calls raise
        :class:`BusClosed`. Idempotent."""


class Subscription:
    """One reader's position in one topic (see :meth:`Bus.subscribe`)."""

    def __init__(self, bus: Bus, topic: str, after: EntryId | None) -> None:
        self.bus = bus
        self.topic = topic
        self.cursor = after

    def next(self, timeout: float, count: int = DEFAULT_COUNT) -> Batch:
        """The next messages (see :meth:`Bus.read`); the cursor moves past them. On
        :class:`BusUnavailable` the cursor stays: call again to resume without loss."""
        if self.cursor is None:
            self.cursor = self.bus.last_id(self.topic)
        batch = self.bus.read(self.topic, self.cursor, timeout, count)
        self.cursor = batch.cursor
        return batch
