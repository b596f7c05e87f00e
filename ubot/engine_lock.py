"""One engine per database: the lock a running pipeline holds, so a second uBot on the same database
refuses to start instead of skipping the first one's ticks as duplicates.

- SQLite: ``fcntl.flock`` on ``<database file>.lock``, beside it. The holder writes its pid, host and
  start time into the file. The kernel releases the lock when the process ends, however it ends
  (a crash, SIGKILL).
- PostgreSQL: a session-level advisory lock, ``pg_try_advisory_lock(key)``, held on a connection of
  its own for the life of the process. PostgreSQL releases it when that connection closes (the
  process ended). ``key`` is derived from ``ubot-engine`` and the schema uBot's tables are in
  (``current_schema()``): one engine per set of tables. The holder is named from
  ``pg_stat_activity`` (its ``application_name``, backend pid and client address); the connection
  sets ``application_name`` to ``ubot-engine pid <pid> on <host>`` unless the URL chooses one.

Both are the same small interface, :class:`EngineLock` (``try_acquire``, ``release``, ``holder``), so
that an engine/standby election (a standby waiting to take over) can reuse them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import time
from typing import Any, Protocol

from ubot.models.db import DatabaseConfigError, redact, sqlite_path
from ubot.timeutil import iso_from_ms

#: The name the PostgreSQL advisory lock key is derived from.
LOCK_NAME = "ubot-engine"
#: How long a start waits for PostgreSQL to release the lock of an engine that just died (its
#: connection is closed by the kernel at once, but the server notices it a moment later).
POSTGRES_WAIT_S = 5.0


class EngineLocked(RuntimeError):
    """Another engine holds the database; ``str()`` is the one line to show, naming it."""


class EngineLock(Protocol):
    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; whether this process holds it now."""
        ...

    def release(self) -> None:
        """Let go of the lock (also done by the OS or the server when the process ends)."""
        ...

    def holder(self) -> str:
        """Who holds the lock, for a message ("pid 123 on host ..."); ``"unknown"`` if unsaid."""
        ...


def engine_lock(url: str) -> EngineLock:
    """The lock of the database at ``url``."""
    path = sqlite_path(url)
    if path is not None:
        return FileEngineLock(path + ".lock")
    return PostgresEngineLock(url)


def acquire(url: str, wait_s: float | None = None) -> EngineLock:
    """The lock of ``url``, taken; :class:`EngineLocked` naming the holder when another engine has
    it. On PostgreSQL a lock still held is waited for up to ``wait_s`` (default
    :data:`POSTGRES_WAIT_S`), so an engine restarted right after a crash gets it."""
    lock = engine_lock(url)
    if isinstance(lock, PostgresEngineLock):
        taken = lock.acquire_within(POSTGRES_WAIT_S if wait_s is None else wait_s)
    else:
        taken = lock.try_acquire()
    if taken:
        return lock
    holder = lock.holder()
    lock.release()
    raise EngineLocked(
        f"database {redact(url)} is in use by another uBot engine ({holder}); stop that one first, "
        "or use another database (--db)"
    )


def other_engine(url: str) -> str | None:
    """The line :func:`acquire` would refuse with, or ``None``; creates nothing (``run.py check``)."""
    lock = engine_lock(url)
    if isinstance(lock, FileEngineLock) and not lock.held_by_other():
        return None
    try:
        acquire(url, wait_s=0).release()
    except EngineLocked as exc:
        return str(exc)
    return None


def probe(url: str) -> None:
    """Refuse (:class:`EngineLocked`) when another engine holds ``url``'s lock; hold nothing after."""
    acquire(url).release()


class FileEngineLock:
    """``flock`` on a file beside the SQLite database; its content names the holder."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise DatabaseConfigError(f"cannot open the lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{_me()}\n".encode())
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def holder(self) -> str:
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                text = handle.read().strip()
        except OSError:
            return "unknown"
        return text.splitlines()[0] if text else "unknown"

    def held_by_other(self) -> bool:
        """Whether another process holds the lock, without creating the file (``run.py check``)."""
        if not os.path.exists(self.path):
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


class PostgresEngineLock:
    """A session-level advisory lock on a connection of its own (not the pool of the actors)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: Any = None
        self._key: int | None = None
        self.held = False

    def _connection(self) -> Any:
        if self._conn is None:
            try:
                import psycopg2
            except ImportError:
                raise DatabaseConfigError(
                    "PostgreSQL needs the psycopg2 driver: pip install -e '.[postgres]'"
                ) from None
            try:
                conn = psycopg2.connect(self.url)
            except psycopg2.Error as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise DatabaseConfigError(f"cannot open database {redact(self.url)}: {first}") from None
            conn.autocommit = True
            with conn.cursor() as cursor:
                if "application_name" not in self.url:
                    cursor.execute("SET application_name = %s", (f"{LOCK_NAME} {_me()}"[:63],))
                cursor.execute("SELECT current_schema()")
                self._key = lock_key(cursor.fetchone()[0] or "")
            self._conn = conn
        return self._conn

    def try_acquire(self) -> bool:
        if self.held:
            return True
        with self._connection().cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
            self.held = bool(cursor.fetchone()[0])
        return self.held

    def acquire_within(self, seconds: float) -> bool:
        """Take the lock, waiting up to ``seconds`` for its holder to let go (a holder that has just
        died: its session ends a moment later). The server does the waiting (``lock_timeout``)."""
        if self.try_acquire() or seconds <= 0:
            return self.held
        import psycopg2.errors

        with self._connection().cursor() as cursor:
            cursor.execute("SET lock_timeout = %s", (f"{round(seconds * 1000)}ms",))
            try:
                cursor.execute("SELECT pg_advisory_lock(%s)", (self._key,))
                self.held = True
            except psycopg2.errors.LockNotAvailable:
                self.held = False
            finally:
                cursor.execute("RESET lock_timeout")
        return self.held

    def release(self) -> None:
        if self._conn is None:
            return
        # Unlocked first, by the server before it answers: closing alone ends the session a moment
        # later, and a standby asking at once would still find the lock taken.
        if self.held:
            with contextlib.suppress(Exception), self._conn.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        with contextlib.suppress(Exception):
            self._conn.close()  # the session ends: PostgreSQL releases any advisory lock left
        self._conn = None
        self.held = False

    def holder(self) -> str:
        assert self._key is not None
        with self._connection().cursor() as cursor:
            cursor.execute(
                "SELECT a.application_name, a.pid, a.client_addr, a.backend_start "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.classid = %s AND l.objid = %s AND l.objsubid = 1",
                ((self._key >> 32) & 0xFFFFFFFF, self._key & 0xFFFFFFFF),
            )
            row = cursor.fetchone()
        if row is None:
            return "unknown"
        name, pid, address, since = row
        where = f"from {address}" if address else "over a local socket"
        return f"{name or 'no application_name'}: PostgreSQL backend pid {pid} {where}, since {since:%Y-%m-%d %H:%M:%S}"


def lock_key(schema: str) -> int:
    """The advisory lock key (a signed 64-bit integer) of the tables in ``schema``."""
    digest = hashlib.sha256(f"{LOCK_NAME}:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _me() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()}, since {iso_from_ms(int(time.time() * 1000))}"
