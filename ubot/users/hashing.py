"""Where argon2 runs: a small, bounded pool of threads beside the UserManager's mailbox.

argon2 costs ~150 ms a hash (``ubot/users/passwords.py``) and argon2-cffi releases the GIL while it
works, so a few threads hash in parallel while every other request goes on. The pool admits at most
``workers`` running plus ``queue`` waiting jobs; one more is refused at once with
:class:`~ubot.users.errors.Busy` (HTTP 503 with ``Retry-After``): a burst of logins waits in a short
line of its own or is turned away, and no other request (a token check, a settings read) ever waits
behind it.

:class:`Inline` runs the same jobs in the caller's thread (the UserManager's own ``login``,
``register`` and ``change_password``, used without a gateway: tests, scripts, benches).

argon2 with ``parallelism=4`` starts four threads of its own for every hash, and on a machine with
fewer cores than that they compete with the threads answering requests. The pool's threads run at a
lower scheduling priority (``nice``, ``[accounts] hash_nice``); on Linux each thread has its own
nice value and argon2's threads inherit it from the pool thread that starts them, so the kernel
serves requests first and hashes with what is left. Logins are slower only while the machine is
busy with something else.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol, TypeVar

from ubot.users.errors import Busy

T = TypeVar("T")

#: Defaults of ``[accounts] hash_workers`` and ``hash_queue`` (``settings.ini``).
DEFAULT_WORKERS = 2
DEFAULT_QUEUE = 1
#: Default of ``[accounts] hash_nice``: the nice value added to the pool's threads (0: none).
DEFAULT_NICE = 10
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
        self,
        workers: int = DEFAULT_WORKERS,
        queue: int = DEFAULT_QUEUE,
        retry_after_s: int = RETRY_AFTER_S,
        nice: int = DEFAULT_NICE,
    ) -> None:
        if workers < 1 or queue < 0:
            raise ValueError(f"a hash pool needs workers >= 1 and queue >= 0, not {workers} and {queue}")
        if not 0 <= nice <= 19:
            raise ValueError(f"a hash pool's nice value is 0..19, not {nice}")
        self.workers = workers
        self.queue = queue
        self.retry_after_s = retry_after_s
        self.nice = nice
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="argon2", initializer=lower_priority, initargs=(nice,)
        )
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


def lower_priority(nice: int) -> None:
    """Add ``nice`` to the calling thread's nice value (Linux, where it is per thread; elsewhere
    ``setpriority`` would lower the whole process, so nothing is done)."""
    if nice and sys.platform.startswith("linux"):
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + nice))
