"""StreamHub: a gateway process's window on the bus's ``events`` topic, that its SSE streams read.

* One :class:`~ubot.bus.Relay` per process follows ``events`` and appends each
  :class:`~ubot.bus.StreamEvent` to a bounded ring in memory, waking every reader: one bus reader
  per process whatever the number of streams (one blocked Redis connection, not one per client).
* An event's id is its bus entry id (``ms-seq``), the same on every gateway: a client resumes after
  it on any gateway, after any restart, for as long as the bus keeps the entry.
* :meth:`StreamHub.read` answers from the ring when it holds everything after the asked id; an id
  older than the ring (evicted, or from before this process followed the topic) is caught up from
  the bus itself (a non-blocking read), then from the ring. An id the bus no longer has (trimmed,
  from a log that is gone, or never issued) answers ``reset=True`` at once: the reader missed events
  and must re-fetch the state (``/v1/snapshot``, ``/v1/me/alerts``), then go on from ``cursor``.
* An event with ``user_id=None`` is public; one with a user id is visible to that user only.
* :meth:`StreamHub.close` wakes every reader for good (``closed=True``), so a server stopping with
  streams open does not wait for them. It does not close the bus.

* :meth:`StreamHub.read_async` is the same read for a coroutine (an ASGI gateway's streams): it
  answers from the ring on the event loop and waits there on a :class:`Pulse` (one per loop, fired
  by the relay after each batch), so an open stream holds no thread; only what the ring cannot answer
  (a catch-up from the bus) runs :meth:`read` in a thread.

Publishing is the engine's side: :class:`ubot.stream.publisher.EventPublisher`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import itertools
import logging
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ubot.bus import EVENTS, Bus, BusUnavailable, EntryId, Relay, StreamEvent
from ubot.bus import Batch as BusBatch
from ubot.bus.ids import MAX_SEQ

log = logging.getLogger(__name__)

DEFAULT_CAPACITY = 1024
#: An id no bus ever gave: what a malformed ``Last-Event-ID`` becomes (the reader gets a reset).
UNKNOWN = EntryId(MAX_SEQ, MAX_SEQ)
#: How long a reader whose bus is unreachable waits before trying again (within its timeout).
RETRY_S = 1.0
#: The granularity of a coroutine reader's timeout (:class:`Pulse`): it ends up to this much late.
TIMEOUT_RESOLUTION_S = 0.05
#: How many waiting streams one round of the event loop wakes after an event (:class:`Pulse`).
WAKE_BATCH = 100


@dataclass(frozen=True)
class Event:
    id: EntryId
    event: str
    data: str  # JSON text, without newlines
    user_id: int | None = None

    def visible_to(self, user_id: int | None) -> bool:
        return self.user_id is None or self.user_id == user_id

    @functools.cached_property
    def sse(self) -> bytes:
        """The event in the Server-Sent Events wire format, encoded once for every stream (the
        relay encodes it as it takes the event, off the event loop)."""
        return sse_frame(self.id, self.event, self.data)


def sse_frame(event_id: EntryId, event: str, data: str) -> bytes:
    """One event in the SSE wire format (``data`` is one line: JSON has no raw newlines)."""
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n".encode()


@dataclass(frozen=True)
class Batch:
    """What one :meth:`StreamHub.read` found.

    ``events``: visible events after the asked id, oldest first (empty on a timeout: time for a
    heartbeat). ``cursor``: the id to read after next time (it also moves past events the reader may
    not see). ``reset``: the asked id is unknown; events were missed. ``closed``: the hub is closed
    and nothing visible is left to read.
    """

    events: tuple[Event, ...]
    cursor: EntryId
    reset: bool = False
    closed: bool = False


class Pulse:
    """Wakes the coroutines of one event loop from any thread, cheaply enough for thousands of them:
    each waits on a future of its own (:meth:`waiter`, then :meth:`wait`), and :meth:`fire` (from
    any thread) resolves every registered one in a single callback on the loop.

    A wait creates no task and no timer of its own: its deadline is rounded up to the next multiple
    of :data:`TIMEOUT_RESOLUTION_S`, and the waits ending in the same slot share one timer (streams
    woken by the same event also time out together). A wait may so end up to that much late, never
    early. A timer per wait would cost, with thousands of streams, a heap of thousands of timers
    that every event cancels and re-creates."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._waiters: set[asyncio.Future[bool]] = set()
        self._slots: dict[int, set[asyncio.Future[bool]]] = {}  # deadline slot -> its waiters

    def waiter(self) -> asyncio.Future[bool]:
        """A future the next :meth:`fire` resolves (call on the loop; pass it to :meth:`wait`)."""
        waiter: asyncio.Future[bool] = self.loop.create_future()
        self._waiters.add(waiter)
        return waiter

    def fire(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(self._fire)

    def _fire(self) -> None:
        waiters, self._waiters = self._waiters, set()
        self._wake(iter(waiters))

    def _wake(self, waiters: Iterator[asyncio.Future[bool]]) -> None:
        """Resolve :data:`WAKE_BATCH` waiters, and the rest in the loop's next rounds: between two
        batches the loop serves what else is ready (a request need not wait for every stream)."""
        for waiter in itertools.islice(waiters, WAKE_BATCH):
            _resolve(waiter, True)
        if (following := next(waiters, None)) is not None:
            self.loop.call_soon(self._wake, itertools.chain((following,), waiters))

    async def wait(
        self, waiter: asyncio.Future[bool], timeout: float, also: asyncio.Future[Any] | None = None
    ) -> bool:
        """Wait for ``waiter`` (from :meth:`waiter`) to be fired, at most ``timeout`` seconds (see
        the class), or until ``also`` is done; whether it was fired."""
        slot = math.ceil((self.loop.time() + timeout) / TIMEOUT_RESOLUTION_S)
        timing = self._slots.get(slot)
        if timing is None:
            timing = self._slots[slot] = set()
            self.loop.call_at(slot * TIMEOUT_RESOLUTION_S, self._expire, slot)
        timing.add(waiter)
        if also is not None:
            also.add_done_callback(left := functools.partial(_resolve_on, waiter))
        try:
            return await waiter
        finally:
            timing.discard(waiter)
            self._waiters.discard(waiter)
            if also is not None:
                also.remove_done_callback(left)

    def _expire(self, slot: int) -> None:
        for waiter in self._slots.pop(slot, ()):
            _resolve(waiter, False)

    def discard(self, waiter: asyncio.Future[bool]) -> None:
        """Forget a waiter that will not be waited on."""
        self._waiters.discard(waiter)


def _resolve(waiter: asyncio.Future[bool], fired: bool) -> None:
    if not waiter.done():
        waiter.set_result(fired)


def _resolve_on(waiter: asyncio.Future[bool], _done: asyncio.Future[Any]) -> None:
    _resolve(waiter, False)


#: How a coroutine runs a blocking call (``ubot.http.asgi.Offload``; ``asyncio.to_thread`` by default).
Offloader = Callable[..., Awaitable[Any]]


def _events(batch: BusBatch) -> list[Event]:
    return [
        Event(entry.id, m.event, m.data, m.user_id)
        for entry in batch.entries
        if isinstance(m := entry.message, StreamEvent)
    ]


class StreamHub:
    def __init__(
        self, bus: Bus, capacity: int = DEFAULT_CAPACITY, *, topic: str = EVENTS, poll_s: float = 5.0
    ) -> None:
        """``poll_s``: the relay's longest single wait (it also bounds how long a stop takes)."""
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.bus = bus
        self.topic = topic
        self.capacity = capacity
        start = bus.last_id(topic)
        self._events: deque[Event] = deque(maxlen=capacity)
        self._floor = start  # the ring holds every event after this id (up to _last)
        self._last = start  # the newest id the relay has read
        self._closed = False
        self._changed = threading.Condition(threading.Lock())
        self._pulses: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Pulse] = (
            weakref.WeakKeyDictionary()
        )
        self._relay = Relay(bus, topic, self._take, after=start, timeout_s=poll_s)

    def start(self) -> StreamHub:
        self._relay.start()
        return self

    @property
    def last_id(self) -> EntryId:
        """The newest id of the topic (the bus's own, so an event published before a stream opens
        is never sent to it); a new reader starts after it."""
        try:
            return self.bus.last_id(self.topic)
        except BusUnavailable:
            with self._changed:
                return self._last

    def caught_up(self, entry_id: EntryId, timeout: float) -> bool:
        """Wait until the ring has read up to ``entry_id``; whether it has (tests, tools)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._last >= entry_id, timeout)

    @property
    def closed(self) -> bool:
        with self._changed:
            return self._closed

    def _take(self, batch: BusBatch) -> None:
        """The relay's callback: append the batch's events, wake the readers."""
        events = _events(batch)
        for event in events:
            _ = event.sse  # encoded here, once, rather than by each stream on the event loop
        with self._changed:
            if batch.missed:  # the relay lost entries: the ring cannot vouch for what came before
                self._events.clear()
                first = batch.entries[0].id.predecessor() if batch.entries else batch.cursor
                self._floor = first
                log.warning("events: entries were missed before %s (readers before it get a reset)", first)
            for event in events:
                if len(self._events) == self.capacity:
                    self._floor = self._events[0].id
                self._events.append(event)
            self._last = max(self._last, batch.cursor)
            self._changed.notify_all()
            pulses = list(self._pulses.values())
        for pulse in pulses:
            pulse.fire()

    def read(self, after: EntryId, user_id: int | None, timeout: float) -> Batch:
        """The events after ``after`` that ``user_id`` (None: anonymous) may see.

        Waits up to ``timeout`` seconds for at least one; answers at once when there are some, when
        ``after`` is unknown (``reset``) or when the hub is closed."""
        deadline = time.monotonic() + timeout
        cursor = after
        while True:
            with self._changed:
                while self._holds(cursor):
                    events = tuple(e for e in self._after(cursor) if e.visible_to(user_id))
                    cursor = self._last
                    if events:  # a closed hub still delivers what it holds, then ends
                        return Batch(events, cursor)
                    if self._closed:
                        return Batch((), cursor, closed=True)
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return Batch((), cursor)
                    self._changed.wait(remaining)
                if self._closed:
                    return Batch((), cursor, closed=True)
                ahead = cursor > self._last
            # Not in the ring: older than it (catch up from the bus) or newer (the relay lags, or
            # the id is unknown). The bus decides.
            try:
                found = self.bus.read(self.topic, cursor, timeout=0)
            except BusUnavailable:
                if self._wait(deadline, RETRY_S):
                    continue
                return Batch((), cursor)
            if found.missed:
                return Batch((), self.last_id, reset=True)
            if found.closed:
                return Batch((), cursor, closed=True)
            events = tuple(e for e in _events(found) if e.visible_to(user_id))
            if events:
                return Batch(events, found.cursor)
            if found.entries:  # only others' events: go on after them
                cursor = found.cursor
                continue
            if not ahead:  # the ring moved on meanwhile: read it again
                continue
            # A valid id the relay has not reached yet: wait for it.
            if not self._wait(deadline, None, until=cursor):
                return Batch((), cursor)

    def _wait(self, deadline: float, at_most: float | None, until: EntryId | None = None) -> bool:
        """Wait for the ring to change (or reach ``until``) within the deadline; False at the deadline."""
        with self._changed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if until is not None and self._last >= until:
                return True
            self._changed.wait(remaining if at_most is None else min(remaining, at_most))
            return deadline > time.monotonic() or (until is not None and self._last >= until)

    def close(self) -> None:
        """Wake every reader; from now on reads end with ``closed=True``. Idempotent."""
        self._relay.stop()
        with self._changed:
            self._closed = True
            self._changed.notify_all()
            pulses = list(self._pulses.values())
        for pulse in pulses:
            pulse.fire()

    def _pulse(self) -> Pulse:
        loop = asyncio.get_running_loop()
        with self._changed:
            pulse = self._pulses.get(loop)
            if pulse is None:
                pulse = self._pulses[loop] = Pulse(loop)
            return pulse

    async def read_async(
        self,
        after: EntryId,
        user_id: int | None,
        timeout: float,
        *,
        also: asyncio.Event | asyncio.Future[Any] | None = None,
        offload: Offloader = asyncio.to_thread,
    ) -> Batch:
        """:meth:`read` for a coroutine: the same answers, waiting on the event loop (no thread)
        while the ring holds ``after``; it also returns (with no events) once ``also`` is set or
        done (the client left: a future is the cheap form, an event costs a task per call). What
        the ring cannot answer is read from the bus by :meth:`read` through ``offload``, waiting
        there at most :data:`RETRY_S`."""
        loop = asyncio.get_running_loop()
        pulse = self._pulse()
        deadline = loop.time() + timeout
        cursor = after
        watch = None
        if isinstance(also, asyncio.Event):
            also = watch = asyncio.ensure_future(also.wait())
        try:
            while True:
                waiter = None
                with self._changed:
                    holds = self._holds(cursor)
                    if holds:
                        events = self._visible(cursor, user_id)
                        cursor = self._last
                        if events:
                            return Batch(events, cursor)
                        waiter = pulse.waiter()  # under the lock: a batch taken after this fires it
                    closed = self._closed
                remaining = deadline - loop.time()
                if waiter is None:  # not in the ring (closed or not)
                    if closed:
                        return Batch((), cursor, closed=True)
                    return await offload(self.read, cursor, user_id, max(0.0, min(remaining, RETRY_S)))
                if closed or remaining <= 0 or (also is not None and also.done()):
                    pulse.discard(waiter)
                    return Batch((), cursor, closed=closed)
                if not await pulse.wait(waiter, remaining, also):
                    return Batch((), cursor)
        finally:
            if watch is not None:
                watch.cancel()

    def _visible(self, cursor: EntryId, user_id: int | None) -> tuple[Event, ...]:
        """The retained events after ``cursor`` that ``user_id`` may see (call holding the lock)."""
        if cursor == self._last:
            return ()
        return tuple(e for e in self._after(cursor) if e.visible_to(user_id))

    def _holds(self, cursor: EntryId) -> bool:
        """Whether the ring alone answers a reader after ``cursor``: an id it gave (its floor, its
        newest, an event's). Any other id, even one in its range, is judged by the bus (an id of
        another log must get a reset, not the events after it)."""
        if cursor in (self._floor, self._last):
            return True
        if not self._floor < cursor < self._last:
            return False
        i = bisect.bisect_left(self._events, cursor, key=_id)
        return i < len(self._events) and self._events[i].id == cursor

    def _after(self, cursor: EntryId) -> list[Event]:
        """The retained events with an id above ``cursor``."""
        start = bisect.bisect_right(self._events, cursor, key=_id)
        return list(itertools.islice(self._events, start, None))


def _id(event: Event) -> EntryId:
    return event.id
