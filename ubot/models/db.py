"""The database handle: one :class:`peewee.DatabaseProxy`, initialised from a URL at start-up.

``sqlite:///path/to/ubot.db`` (the embedded default) or ``postgresql://user@host:5432/name``.
Every model binds to :data:`database`, so SQLite and PostgreSQL share every line of model code.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlparse

from peewee import Database, DatabaseProxy, OperationalError, SqliteDatabase
from playhouse.db_url import connect

from ubot.logtext import error_line

database = DatabaseProxy()

#: SQLite settings: WAL lets the gateway read while the pipeline writes; NORMAL sync is durable
#: across process crashes (power loss may drop the last commits, never corrupt the file).
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",
    "foreign_keys": 1,
    "busy_timeout": 10_000,
    "cache_size": -32_000,
    # The Store checkpoints the WAL itself after each snapshot, while OHLC works (see
    # SnapshotWriter.checkpoint); this automatic one is only a backstop (80 MB of WAL).
    "wal_autocheckpoint": 20_000,
}


class DatabaseConfigError(ValueError):
    """The database URL cannot be used; the message says why and what to change."""


def open_database(url: str) -> Database:
    """Connect to ``url``, bind :data:`database` to it and return it (connected, in this thread).

    Raises :class:`DatabaseConfigError` with a one-line explanation when it cannot be used.
    """
    parsed = urlparse(url)
    scheme = parsed.scheme.split("+")[0]
    path = sqlite_path(url)
    if path is not None:
        if path in ("", ":memory:"):
            raise DatabaseConfigError(
                "an in-memory SQLite database cannot be shared between uBot's threads; "
                "use a file, e.g. sqlite:///ubot.db"
            )
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise DatabaseConfigError(f"directory {directory} of database {path} does not exist")
        if not os.access(directory, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
            raise DatabaseConfigError(f"database {path} is not writable by this user")
        db: Database = SqliteDatabase(path, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    elif scheme in ("postgres", "postgresql"):
        try:
            db = connect(url)
        except ImportError:
            raise DatabaseConfigError(
                "PostgreSQL needs the psycopg2 driver: pip install -e '.[postgres]'"
            ) from None
    else:
        raise DatabaseConfigError(
            f"unsupported database URL scheme {parsed.scheme!r}; "
            "accepted: sqlite:///path, postgresql://user@host:port/name"
        )
    try:
        db.connect(reuse_if_open=True)
    except OperationalError as exc:
        raise DatabaseConfigError(f"cannot open database {redact(url)}: {error_line(exc)}") from None
    database.initialize(db)
    return db


def sqlite_path(url: str) -> str | None:
    """The file of a ``sqlite:///rel.db`` or ``sqlite:////abs.db`` URL; ``None`` for another scheme."""
    if urlparse(url).scheme.split("+")[0] != "sqlite":
        return None
    path = url.split("://", 1)[1].split("?", 1)[0]
    return path[1:] if path.startswith("/") else path


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and logs."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return url


def is_sqlite(db: Database | DatabaseProxy) -> bool:
    target = db.obj if isinstance(db, DatabaseProxy) else db
    return isinstance(target, SqliteDatabase)


def close_connection() -> None:
    """Close this thread's connection, if it has one (actors call it when they stop)."""
    if database.obj is not None and not database.is_closed():
        database.close()


class DatabaseLost(RuntimeError):
    """The database file is gone or replaced (``models/watch.py``): nothing more is written."""


#: Why writes are refused in this process (set once by the database watch), or ``None``.
_writes_refused: str | None = None


def refuse_writes(reason: str | None) -> None:
    """From now on, :func:`writing` raises :class:`DatabaseLost` with ``reason`` (``None``: writes
    are allowed again, for tests)."""
    global _writes_refused
    _writes_refused = reason


def writing(db: Database) -> Any:
    """A write transaction. On SQLite it takes the write lock at ``BEGIN IMMEDIATE``: a deferred
    transaction that reads first and writes later cannot wait for another writer (SQLite answers
    "database is locked" at once rather than risk a deadlock), while an immediate one waits up to
    ``busy_timeout``. Several actors write (Store, OHLC, Notifier, UserManager), so every write
    transaction goes through here, which is also where they all stop once the database file is
    lost (:func:`refuse_writes`)."""
    if _writes_refused is not None:
        raise DatabaseLost(_writes_refused)
    return db.atomic(lock_type="IMMEDIATE") if is_sqlite(db) else db.atomic()
