"""What only the Redis implementation has: Redis' own clock, connections that die, a server that is
not there, a stream Redis lost. Over the real server at ``UBOT_TEST_REDIS_URL``, each test under a
key prefix of its own; connections are killed one by one by id (``CLIENT KILL ID``: only this
test's, the server is shared), the server is never restarted or flushed."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.bus.conftest import REDIS_URL, delete_prefix
from tests.bus.link import Link
from tests.bus.test_bus import BOUND_S, Collector, tick
from tests.support.ports import refused_port
from tests.support.waits import wait_until
from ubot.bus import SNAPSHOT, TICKS, ZERO, BusUnavailable, Relay, SnapshotDocument
from ubot.bus.redis_streams import RedisBus


@pytest.fixture
def buses(redis_admin: Any, prefix: str) -> Iterator[list[RedisBus]]:
    made: list[RedisBus] = []
    yield made
    for bus in made:
        bus.close()
    delete_prefix(redis_admin, prefix)


@pytest.fixture
def make(buses: list[RedisBus], prefix: str) -> Any:
    def make(url: str | None = None, **options: Any) -> RedisBus:
        bus = RedisBus(url or REDIS_URL or "", prefix=prefix, **options)
        buses.append(bus)
        return bus

    return make


def connections(admin: Any, prefix: str) -> list[dict]:
    return [c for c in admin.client_list() if c.get("name") == f"ubot-bus.{prefix}"]


def kill_connections(admin: Any, prefix: str) -> int:
    found = connections(admin, prefix)
    for client in found:
        admin.client_kill_filter(_id=client["id"])
    return len(found)


def test_members_expire_on_redis_own_clock(make: Any) -> None:
    bus = make()  # no clock: Redis' TIME
    bus.heartbeat("scanners", "short", ttl_s=0.2)
    bus.heartbeat("scanners", "long", ttl_s=600)
    assert bus.members("scanners") in {("long", "short"), ("long",)}
    wait_until(lambda: bus.members("scanners") == ("long",), "the short-lived member to expire", BOUND_S)


def test_a_reader_blocked_on_a_killed_connection_resumes_without_loss(
    make: Any, redis_admin: Any, prefix: str
) -> None:
    publisher, reading = make(), make()
    start = publisher.last_id(TICKS)
    reader = Collector(reading, TICKS, start, want=10)
    reader.start()
    sent = [publisher.publish(TICKS, tick(n)) for n in range(1, 6)]
    wait_until(lambda: len(reader.entries) == 5, "the first five ticks to be read", BOUND_S)

    def blocked() -> bool:
        return any(c["cmd"] == "xread" and "b" in c["flags"] for c in connections(redis_admin, prefix))

    wait_until(blocked, "the reader to block in XREAD", BOUND_S)
    assert kill_connections(redis_admin, prefix) >= 2  # the blocked reader's and the publisher's
    sent += [publisher.publish(TICKS, tick(n)) for n in range(6, 11)]
    reader.join(BOUND_S)
    assert [e.id for e in reader.entries] == sent  # none lost, none twice
    assert [e.message.number for e in reader.entries] == list(range(1, 11))
    assert not reader.missed
    assert publisher.health().connected and reading.health().connected


def test_every_call_recovers_from_killed_connections(make: Any, redis_admin: Any, prefix: str) -> None:
    bus = make()
    document = SnapshotDocument(etag='"1"', body=b"{}", snapshot_id=1, snapshot_ms=60_000)
    bus.set_latest(SNAPSHOT, document)
    bus.heartbeat("gateways", "a", ttl_s=600)
    first = bus.publish(TICKS, tick(1))
    assert kill_connections(redis_admin, prefix) >= 1
    assert bus.get_latest(SNAPSHOT) == document
    assert kill_connections(redis_admin, prefix) >= 1
    assert bus.members("gateways") == ("a",)
    assert kill_connections(redis_admin, prefix) >= 1
    second = bus.publish(TICKS, tick(2))
    assert kill_connections(redis_admin, prefix) >= 1
    assert [e.id for e in bus.read(TICKS, ZERO, timeout=0).entries] == [first, second]
    assert bus.health().connected


def test_an_unreachable_redis_is_reported_and_every_call_fails_within_its_budget() -> None:
    with refused_port() as port:
        bus = RedisBus(f"redis://127.0.0.1:{port}/0", prefix="ubot-test-unreachable", timeout_s=0.3)
        try:
            assert not bus.health().connected  # nothing answered yet
            with pytest.raises(BusUnavailable, match="Redis did not answer"):
                bus.ping()
            health = bus.health()
            assert not health.connected and health.kind == "redis"
            assert "Connection" in (health.error or "")
            with pytest.raises(BusUnavailable):
                bus.publish(TICKS, tick(1))
            with pytest.raises(BusUnavailable):
                bus.read(TICKS, ZERO, timeout=0.3)
            with pytest.raises(BusUnavailable):
                bus.heartbeat("scanners", "a", ttl_s=10)
        finally:
            bus.close()


def test_a_stream_redis_lost_reads_as_missed(make: Any, redis_admin: Any, prefix: str) -> None:
    """What a Redis restart does to a stream (it keeps nothing on disk), without restarting it."""
    bus = make()
    ids = [bus.publish(TICKS, tick(n)) for n in range(1, 4)]
    redis_admin.delete(f"{prefix}:topic:{TICKS}")

    def server_ms() -> int:
        seconds, micros = redis_admin.time()
        return seconds * 1000 + micros // 1000

    # a restart takes longer than a millisecond: the new stream's ids start above the old ones
    wait_until(lambda: server_ms() > ids[-1].ms, "Redis' clock to pass the last id", BOUND_S)
    # a reader comes back while the stream is gone: missed, and it goes on from the start
    gone = bus.read(TICKS, ids[-1], timeout=BOUND_S)
    assert gone.missed and gone.entries == () and gone.cursor == ZERO
    new = bus.publish(TICKS, tick(4))
    assert new > ids[-1]
    fresh = bus.read(TICKS, gone.cursor, timeout=0)
    assert [e.id for e in fresh.entries] == [new] and not fresh.missed
    # a reader that comes back once the stream exists again is told too
    late = bus.read(TICKS, ids[-1], timeout=0)
    assert late.missed and [e.id for e in late.entries] == [new]


def test_an_outage_is_reported_and_a_relay_resumes_without_loss_once_redis_is_back(
    make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ubot.bus.relay")
    publisher = make()  # straight to Redis: only the reader's side of the network fails
    with Link(REDIS_URL or "") as link:
        reading = make(link.url, timeout_s=0.3)
        received: list[int] = []
        missed: list[bool] = []

        def deliver(batch: Any) -> None:
            received.extend(e.message.number for e in batch.entries)
            missed.append(batch.missed)

        start = publisher.last_id(TICKS)
        relay = Relay(
            reading,
            TICKS,
            deliver,
            after=start,
            timeout_s=0.3,
        )
        relay.start()
        for n in range(1, 4):
            publisher.publish(TICKS, tick(n))
        wait_until(lambda: received == [1, 2, 3], "the first ticks to be read", BOUND_S)

        link.cut()
        for n in range(4, 7):
            publisher.publish(TICKS, tick(n))

        def relay_lines() -> list[str]:
            return [r.getMessage() for r in caplog.records if r.name == "ubot.bus.relay"]

        wait_until(lambda: relay_lines(), "the relay to find the bus unreachable", BOUND_S)
        assert not reading.health().connected
        assert reading.health().error
        with pytest.raises(BusUnavailable):  # within its budget, not forever
            reading.publish(TICKS, tick(99))
        assert received == [1, 2, 3] and not any(missed)
        before = len(missed)

        link.restore()
        wait_until(lambda: received == [1, 2, 3, 4, 5, 6], "the relay to catch up", BOUND_S)
        # the first batch after the outage says missed: catch up what could not be published meanwhile
        assert missed[before] and not any(missed[before + 1 :])
        wait_until(lambda: reading.health().connected, "the reader's bus to say it is connected", BOUND_S)
        assert reading.read(TICKS, ZERO, timeout=0).entries[-1].message.number == 6  # 99 never went out
        lines = relay_lines()
        assert sum("unreachable" in line for line in lines) == 1  # once per outage
        assert any("back" in line for line in lines)
        reading.close()
        assert relay.join(BOUND_S)
