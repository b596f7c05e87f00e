# ruff: noqa: F811  (the own_redis fixture, imported, is a parameter here)
"""A Redis that stops and starts again, on a server of this test's own (``redis-server --port <free>
--save ''``, never the shared one): publishing is refused at once while it is down (the engine's tick
never waits on it), ``health()`` says disconnected, a probe finds it back, a reader resumes and is
told what the restart lost (``missed``: the caller catches up from the database)."""

from __future__ import annotations

import pytest

from tests.bus.test_bus import tick
from tests.support.own_redis import OwnRedis, own_redis  # noqa: F401  (a fixture)
from ubot.bus import SNAPSHOT, TICKS, BusUnavailable, SnapshotDocument
from ubot.bus.redis_streams import RedisBus
from ubot.clocks import FakeClock


def test_publishing_fails_fast_while_redis_is_down_and_resumes_when_it_is_back(own_redis: OwnRedis) -> None:
    outage_clock = FakeClock()
    bus = RedisBus(
        f"redis://127.0.0.1:{own_redis.port}/0",
        prefix="ubot-restart",
        timeout_s=1.0,
        outage_clock=outage_clock,
    )
    try:
        first = bus.publish(TICKS, tick(1))
        assert bus.health().connected
        own_redis.stop()
        with pytest.raises(BusUnavailable, match="Redis did not answer"):
            bus.publish(TICKS, tick(2))  # the failure that starts the outage
        assert not bus.health().connected and bus.outage.down
        for n in range(3, 8):  # refused without touching the network until a probe is due
            with pytest.raises(BusUnavailable, match="not tried"):
                bus.publish(TICKS, tick(n))
        assert bus.outage.refused == 5
        with pytest.raises(BusUnavailable, match="not tried"):
            bus.set_latest(SNAPSHOT, SnapshotDocument('"1"', b"{}", 1, 60_000))
        own_redis.start()  # same port, empty: the stream is gone
        assert not bus.health().connected  # nothing tried it yet
        outage_clock.advance(bus.outage.retry_s)
        later = bus.publish(TICKS, tick(8))  # the probe
        assert bus.health().connected and not bus.outage.down
        batch = bus.read(TICKS, first, timeout=0)
        assert batch.missed  # what the restart lost is reported: caught up from the database
        after = batch.entries + bus.read(TICKS, batch.cursor, timeout=0).entries
        assert [e.message.number for e in after] == [8]
        assert later > first
    finally:
        bus.close()
