"""The bus tests run once per implementation: ``memory`` (:class:`InProcessBus`) and ``redis``
(:class:`RedisBus` on the server at ``UBOT_TEST_REDIS_URL``; skipped only when it is unset).

The Redis server is shared: every test uses a key prefix of its own, deletes its keys at the end,
and never restarts or flushes the server. Membership time is a :class:`FakeClock` on both."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ubot.bus import Bus, InProcessBus
from ubot.clocks import FakeClock

REDIS_URL = os.environ.get("UBOT_TEST_REDIS_URL")

MakeBus = Callable[..., Bus]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def redis_admin() -> Iterator[Any]:
    """A plain redis-py client of the test server, outside any bus (to look, write junk, kill)."""
    if not REDIS_URL:
        pytest.skip("UBOT_TEST_REDIS_URL is not set")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return f"ubot-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    if request.param == "redis" and not REDIS_URL:
        pytest.skip("UBOT_TEST_REDIS_URL is not set")
    return request.param


@pytest.fixture
def make_bus(kind: str, clock: FakeClock, prefix: str, request: pytest.FixtureRequest) -> Iterator[MakeBus]:
    """``make_bus(**options)``: a bus of this test's implementation; with Redis, every bus of a test
    shares the test's prefix (like processes of one deployment)."""
    made: list[Bus] = []
    admin = request.getfixturevalue("redis_admin") if kind == "redis" else None

    def make(**options: Any) -> Bus:
        if kind == "memory":
            bus: Bus = InProcessBus(clock, **options)
        else:
            from ubot.bus.redis_streams import RedisBus

            bus = RedisBus(REDIS_URL or "", prefix=prefix, clock=clock, **options)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        bus.close()
    if admin is not None:
        delete_prefix(admin, prefix)


@pytest.fixture
def bus(make_bus: MakeBus) -> Bus:
    return make_bus()


def delete_prefix(admin: Any, prefix: str) -> None:
    keys = list(admin.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        admin.delete(*keys)
