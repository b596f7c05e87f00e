"""A wall-clock deadline for each delivery attempt, whatever the far end does.

A socket timeout bounds one read: a receiver that sends its status line and then one byte every few
seconds never trips it, and one attempt could last for days. Here an attempt has one deadline for
all of it (name lookup, connect, TLS, sending, the answer's headers and body): a :class:`Watchdog`
thread shuts down the attempt's sockets when it passes, so a read or write blocked on them returns
at once, and the channel reports a retryable failure that names the deadline.

- :func:`attempt` opens an attempt's :class:`Deadline` (or joins the one already open in this
  thread) and makes it current; the connection classes of the channels call :func:`watch` on each
  socket they open or reuse, and :func:`bound` on each timeout they are given.
- A socket is watched through a duplicate of its descriptor: ``shutdown`` acts on the connection
  both share, so it also ends a TLS socket built on the same descriptor, and the duplicate (closed
  with the attempt) cannot be confused with a descriptor number the process reuses.
- A :class:`Scope` groups the attempts of some threads (a channel's senders): :meth:`Scope.cut` ends
  every attempt in it now, and any later one at once: a stop never waits for a receiver.
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

#: Why an attempt was cut.
DEADLINE = "deadline"
STOPPING = "stopping"


class Deadline:
    """One attempt's deadline: ``seconds`` from when it was opened (on ``clock``, monotonic)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self.end = clock() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []  # duplicates, closed with the attempt
        self._on_cut: list[Callable[[], None]] = []
        self._closed = False
        #: ``None`` while the attempt may go on; :data:`DEADLINE` or :data:`STOPPING` once cut.
        self.cut_reason: str | None = None

    @property
    def expired(self) -> bool:
        """The attempt was cut (its deadline passed, or its scope was cut)."""
        return self.cut_reason is not None

    def remaining(self) -> float:
        """Seconds left (0 once cut or past)."""
        return 0.0 if self.expired else max(0.0, self.end - self._clock())

    def bound(self, timeout: object) -> float:
        """``timeout`` (seconds; anything else means none) but no later than the deadline."""
        left = max(self.remaining(), 0.001)  # 0 would make a socket non-blocking
        return min(timeout, left) if isinstance(timeout, int | float) and timeout > 0 else left

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the attempt is cut (at once if it already is)."""
        try:
            watched = socket.socket(fileno=os.dup(sock.fileno()))
        except OSError:  # already closed: nothing to cut
            return
        with self._lock:
            if self._closed:
                watched.close()
                return
            self._sockets.append(watched)
            if self.cut_reason is not None:
                _shutdown(watched)

    def on_cut(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the attempt is cut (at once if it already is)."""
        with self._lock:
            now = self.cut_reason is not None
            if not now:
                self._on_cut.append(callback)
        if now:
            callback()

    def cut(self, reason: str = DEADLINE) -> None:
        """End the attempt now: every watched socket is shut down (the first reason stays)."""
        with self._lock:
            if self._closed or self.cut_reason is not None:
                return
            self.cut_reason = reason
            for watched in self._sockets:
                _shutdown(watched)
            callbacks, self._on_cut = self._on_cut, []
        for callback in callbacks:
            callback()

    def close(self) -> None:
        """The attempt is over: nothing is cut any more; the duplicates are closed."""
        with self._lock:
            self._closed = True
            sockets, self._sockets, self._on_cut = self._sockets, [], []
        for watched in sockets:
            watched.close()


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # not connected any more
        sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """One daemon thread that cuts each registered :class:`Deadline` when its time comes."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._heap: list[tuple[float, int, Deadline]] = []
        self._seq = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def open(self, seconds: float) -> Deadline:
        """A new deadline, ``seconds`` from now, that this watchdog will cut."""
        deadline = Deadline(seconds, self.clock)
        with self._changed:
            heapq.heappush(self._heap, (deadline.end, next(self._seq), deadline))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ubot-deadlines", daemon=True)
                self._thread.start()
            self._changed.notify()
        return deadline

    def due(self, now: float) -> list[Deadline]:
        """Take the deadlines whose time has come (closed ones are dropped on the way)."""
        taken = []
        with self._changed:
            while self._heap and self._heap[0][0] <= now:
                taken.append(heapq.heappop(self._heap)[2])
        return taken

    def _run(self) -> None:
        while True:
            for deadline in self.due(self.clock()):
                deadline.cut(DEADLINE)
            with self._changed:
                wait = self._heap[0][0] - self.clock() if self._heap else None
                if wait is None or wait > 0:
                    self._changed.wait(wait)


class Scope:
    """The attempts of the threads that entered it; :meth:`cut` ends them all (a stop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[Deadline] = set()
        self.cut_reason: str | None = None

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Attempts opened in this thread meanwhile belong to the scope."""
        token = _scope.set(self)
        try:
            yield
        finally:
            _scope.reset(token)

    def add(self, deadline: Deadline) -> None:
        with self._lock:
            self._live.add(deadline)
            reason = self.cut_reason
        if reason is not None:
            deadline.cut(reason)

    def discard(self, deadline: Deadline) -> None:
        with self._lock:
            self._live.discard(deadline)

    def cut(self, reason: str = STOPPING) -> None:
        """Cut every attempt in the scope now, and every later one as soon as it opens."""
        with self._lock:
            self.cut_reason = self.cut_reason or reason
            live = list(self._live)
        for deadline in live:
            deadline.cut(reason)


WATCHDOG = Watchdog()
_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("ubot_deadline", default=None)
_scope: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("ubot_deadline_scope", default=None)


@contextlib.contextmanager
def attempt(seconds: float, watchdog: Watchdog = WATCHDOG) -> Iterator[Deadline]:
    """The current attempt's deadline: the one already open in this thread, or a new one of
    ``seconds`` (in the thread's :class:`Scope`, if any), closed on leaving."""
    open_already = _current.get()
    if open_already is not None:
        yield open_already
        return
    deadline = watchdog.open(seconds)
    scope = _scope.get()
    if scope is not None:
        scope.add(deadline)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)
        deadline.close()
        if scope is not None:
            scope.discard(deadline)


def current() -> Deadline | None:
    """The deadline of the attempt open in this thread, if any."""
    return _current.get()


def watch(sock: socket.socket) -> None:
    """Watch ``sock`` for the current attempt (nothing outside an attempt)."""
    deadline = _current.get()
    if deadline is not None:
        deadline.watch(sock)


def bound(timeout: object) -> object:
    """``timeout`` bounded by the current attempt's deadline (unchanged outside an attempt)."""
    deadline = _current.get()
    return timeout if deadline is None else deadline.bound(timeout)


def within(function: Callable[..., T], *args: object) -> T:
    """``function(*args)``, given up at the current attempt's deadline: for a blocking call that no
    socket shutdown can end (a name lookup, which the far end's own DNS server can make slow). It
    runs in a thread of its own, left to finish by itself when given up (``TimeoutError``)."""
    deadline = _current.get()
    if deadline is None:
        return function(*args)
    done = threading.Event()
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = function(*args)
        except BaseException as error:  # handed to the caller
            result["error"] = error
        finally:
            done.set()

    threading.Thread(target=run, name="ubot-deadline-call", daemon=True).start()
    deadline.on_cut(done.set)
    done.wait(deadline.remaining())
    if "value" in result:
        return result["value"]
    if "error" in result:
        raise result["error"]
    deadline.cut(DEADLINE)
    raise TimeoutError("given up at the attempt's deadline")


def describe(deadline: Deadline) -> str:
    """Why a cut attempt ended, for an outcome's detail."""
    if deadline.cut_reason == STOPPING:
        return "the attempt was interrupted: uBot is stopping"
    return (
        f"no complete answer within {deadline.seconds:g} s: the attempt was cut off at its deadline "
        "([notify] attempt_deadline_s)"
    )
