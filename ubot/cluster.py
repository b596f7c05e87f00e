"""Roles (``[cluster] role``, ``--role``): which part of uBot this process runs, and its bus.

* ``all`` (the default): everything in one process, over an :class:`~ubot.bus.InProcessBus`.
* ``engine``: the pipeline (Clock, Fetcher, Store, OHLC, and for now the Scanner and the Notifier),
  publishing to Redis; one active per database, the others stand by (:mod:`ubot.engine_role`).
* ``gateway``: the HTTP API, with no actor of the pipeline; the snapshot and the events come from
  Redis, everything kept from PostgreSQL.

Every role but ``all`` needs PostgreSQL and Redis (checked with the settings, ``ubot/config.py``).
"""

from __future__ import annotations

from ubot.bus import Bus, BusUnavailable, InProcessBus
from ubot.config import Settings
from ubot.models.db import redact

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
