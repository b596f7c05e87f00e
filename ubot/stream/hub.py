"""StreamHub: a bounded, thread-safe, in-memory log of live events (actors write, SSE streams read).

* :meth:`StreamHub.publish` appends an event and wakes every reader. The data is serialized to JSON
  once, there; readers only copy the text. Publishing never blocks on a reader.
* Ids increase strictly by one. The first id is the start time in microseconds since the epoch, so
  the ids of a later run start above those of an earlier one (a run would have to publish more
  events than it lived microseconds to overlap): a ``Last-Event-ID`` kept across a restart is
  recognised as unknown instead of silently matching a different event. They stay below 2**53, so
  JavaScript reads them exactly.
* An event with ``user_id=None`` is public; one with a user id is visible to that user only.
* The log keeps the last ``capacity`` events (a ring). :meth:`StreamHub.read` waits for visible
  events after a given id; when that id is no longer in the ring (evicted, from an earlier run, or
  never issued) it answers ``reset=True`` at once: the reader missed events and must re-fetch the
  state (``/v1/snapshot``, ``/v1/me/alerts``), then go on from ``cursor``.
* :meth:`StreamHub.close` wakes every reader for good (``closed=True``), so a server stopping with
  streams open does not wait for them.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_CAPACITY = 1024
_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Event:
    id: int
    event: str
    data: str  # JSON text, without newlines
    user_id: int | None = None

    def visible_to(self, user_id: int | None) -> bool:
        return self.user_id is None or self.user_id == user_id


@dataclass(frozen=True)
class Batch:
    """What one :meth:`StreamHub.read` found.

    ``events``: visible events after the asked id, oldest first (empty on a timeout: time for a
    heartbeat). ``cursor``: the id to read after next time (it also moves past events the reader may
    not see). ``reset``: the asked id is unknown; events were missed. ``closed``: the hub is closed
    and nothing visible is left to read.
    """

    events: tuple[Event, ...]
    cursor: int
    reset: bool = False
    closed: bool = False


def _start_id(clock: Callable[[], float] = time.time) -> int:
    return int(clock() * 1_000_000)


class StreamHub:
    def __init__(self, capacity: int = DEFAULT_CAPACITY, first_id: int | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        first = _start_id() if first_id is None else first_id
        self.capacity = capacity
        self._events: deque[Event] = deque(maxlen=capacity)
        self._last_id = first - 1  # the id of the newest event (none yet: one below the first)
        self._evicted_id = first - 1  # the id of the newest event no longer in the ring
        self._closed = False
        self._changed = threading.Condition(threading.Lock())

    @property
    def last_id(self) -> int:
        """The id of the newest event; a new reader starts after it (reading only what comes next)."""
        with self._changed:
            return self._last_id

    @property
    def closed(self) -> bool:
        with self._changed:
            return self._closed

    def publish(self, event: str, data: Mapping[str, Any], user_id: int | None = None) -> int:
        """Append an event, wake the readers, return its id.

        ``event`` is a name such as ``snapshot`` or ``alert``; ``data`` must serialize to strict
        JSON (no NaN): otherwise ``ValueError``/``TypeError`` and nothing is published. Publishing
        to a closed hub is accepted (actors may still be finishing a tick) and reaches nobody.
        """
        if not _EVENT_NAME.fullmatch(event):
            raise ValueError(f"invalid event name {event!r}")
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        with self._changed:
            self._last_id += 1
            if len(self._events) == self.capacity:
                self._evicted_id = self._events[0].id
            self._events.append(Event(self._last_id, event, text, user_id))
            self._changed.notify_all()
            return self._last_id

    def read(self, after_id: int, user_id: int | None, timeout: float) -> Batch:
        """The events after ``after_id`` that ``user_id`` (None: anonymous) may see.

        Waits up to ``timeout`` seconds for at least one; answers at once when there are some, when
        ``after_id`` is unknown (``reset``) or when the hub is closed.
        """
        deadline = time.monotonic() + timeout
        cursor = after_id
        with self._changed:
            while True:
                if not self._evicted_id <= cursor <= self._last_id:
                    return Batch((), self._last_id, reset=True, closed=self._closed)
                events = tuple(e for e in self._after(cursor) if e.visible_to(user_id))
                cursor = self._last_id
                if events:
                    return Batch(events, cursor)
                if self._closed:
                    return Batch((), cursor, closed=True)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return Batch((), cursor)
                self._changed.wait(remaining)

    def close(self) -> None:
        """Wake every reader; from now on reads end with ``closed=True``. Idempotent."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _after(self, cursor: int) -> itertools.islice[Event]:
        """The retained events with an id above ``cursor`` (ids are consecutive)."""
        if not self._events:
            return itertools.islice((), 0)
        return itertools.islice(self._events, cursor - self._events[0].id + 1, None)
