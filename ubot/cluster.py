"""Roles (``[cluster] role``, ``--role``): which part of uBot this process runs, and its bus.

* ``all`` (the default): everything in one process, over an :class:`~ubot.bus.InProcessBus`.
* ``engine``: the pipeline (Clock, Fetcher, Store, OHLC, and for now the Scanner and the Notifier),
  publishing to Redis; one active per database, the others stand by (:mod:`ubot.engine_role`).
* ``gateway``: the HTTP API, with no actor of the pipeline; the snapshot and the events come from
  Redis, everything kept from PostgreSQL.

Every role but ``all`` needs PostgreSQL and Redis (checked with the settings, ``ubot/config.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ubot.bus import Bus, BusUnavailable, InProcessBus
from ubot.config import Settings
from ubot.engine_lock import lock_key
from ubot.models.db import redact, sqlite_path

ALL, ENGINE, GATEWAY = "all", "engine", "gateway"


class RedisUnavailable(RuntimeError):
    """Redis does not answer at start-up; ``str()`` is the one line to show."""


def make_bus(settings: Settings) -> Bus:
    """The bus of this role: in-process for ``all``, Redis for the others."""
    if settings.cluster.role == ALL:
        return InProcessBus()
    from ubot.bus.redis_streams import RedisBus

    return RedisBus(settings.cluster.redis_url, prefix=settings.cluster.redis_prefix)


def check_redis(settings: Settings) -> str | None:
    """Whether Redis answers (roles but ``all``): a fact line, or :class:`RedisUnavailable`.
    ``None`` when this role uses no Redis."""
    if settings.cluster.role == ALL:
        return None
    from ubot.bus.redis_streams import RedisBus

    url = redact(settings.cluster.redis_url)
    try:
        bus = RedisBus(settings.cluster.redis_url, prefix=settings.cluster.redis_prefix)
    except ValueError as exc:  # redis-py refuses the URL
        raise RedisUnavailable(f"cannot use Redis {url}: {exc}") from None
    try:
        bus.ping()
    except BusUnavailable as exc:
        raise RedisUnavailable(
            f"Redis {url} does not answer: {exc}; set --redis or [cluster] redis_url"
        ) from None
    finally:
        bus.close()
    return f"{url} (answers; keys under {settings.cluster.redis_prefix}:)"


@contextlib.contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """Held while this process creates or upgrades the schema: engines started at once on a new
    database take turns (a PostgreSQL advisory lock of its own, beside the engine lock; nothing on
    SQLite, which has one engine)."""
    if sqlite_path(url) is not None:
        yield
        return
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("SELECT current_schema()")
            key = lock_key(f"schema:{cursor.fetchone()[0] or ''}")
            cursor.execute("SELECT pg_advisory_lock(%s)", (key,))
        yield
    finally:
        conn.close()  # the session ends: the lock is released
