"""Where argon2 runs: a small, bounded pool of threads beside the UserManager's mailbox.

argon2 costs ~150 ms a hash (``ubot/users/passwords.py``) and argon2-cffi releases the GIL while it
works, so a few threads hash in parallel while every other request goes on. The pool admits at most
``workers`` running plus ``queue`` waiting jobs; one more is refused at once with
:class:`~ubot.users.errors.Busy` (HTTP 503 with ``Retry-After``): a burst of logins waits in a short
line of its own or is turned away, and no other request (a token check, a settings read) ever waits
behind it.

:class:`Inline` runs the same jobs in the caller's thread (the UserManager's own ``login``,
``register`` and ``change_password``, used without a gateway: tests, scripts, benches).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, TypeVar

from ubot.users.errors import Busy

T = TypeVar("T")

#: Defaults of ``[accounts] hash_workers`` and ``hash_queue`` (``settings.ini``).
DEFAULT_WORKERS = 2
DEFAULT_QUEUE = 1
#: Seconds a refused client is told to wait: a few hashes' time.
RETRY_AFTER_S = 1


class Hashing(Protocol):
    def run(self, work: Callable[..., T], *args: object) -> T: ...


class Inline:
    """Runs each job in the calling thread (no bound: the caller is the bound)."""

    def run(self, work: Callable[..., T], *args: object) -> T:
        return work(*args)


class HashPool:
    """``workers`` threads and room for ``queue`` more jobs waiting; beyond that, :class:`Busy`."""

    def __init__(
        self, workers: int = DEFAULT_WORKERS, queue: int = DEFAULT_QUEUE, retry_after_s: int = RETRY_AFTER_S
    ) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"a hash pool needs workers >= 1 and queue >= 0, not {workers} and {queue}")
        self.workers = workers
        self.queue = queue
        self.retry_after_s = retry_after_s
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._lock = threading.Lock()
        self._admitted = 0
        self.refused = 0  # jobs turned away since the start (for benches and logs)

    @property
    def admitted(self) -> int:
        """Jobs running or waiting now."""
        with self._lock:
            return self._admitted

    def submit(self, work: Callable[..., T], *args: object) -> Future[T]:
        """Start ``work(*args)`` on a pool thread; :class:`Busy` at once if the pool and its queue
        are full (nothing started)."""
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.refused += 1
            raise Busy(
                f"every password check is taken ({self.workers} running, {self.queue} waiting); "
                f"try again in {self.retry_after_s} s",
                self.retry_after_s,
            )
        with self._lock:
            self._admitted += 1
        try:
            future = self._executor.submit(work, *args)
        except RuntimeError:  # closed: stopping
            self._release(None)
            raise Busy("the server is stopping; try again shortly", self.retry_after_s) from None
        future.add_done_callback(self._release)
        return future

    def run(self, work: Callable[..., T], *args: object) -> T:
        """``work(*args)`` on a pool thread, waited for (its exception re-raised here)."""
        return self.submit(work, *args).result()

    def close(self) -> None:
        """Refuse new jobs and drop the waiting ones (those running finish)."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _release(self, future: object) -> None:
        with self._lock:
            self._admitted -= 1
        self._slots.release()
