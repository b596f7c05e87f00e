"""A role's heartbeat while the bus is down (ubot/heartbeat.py): said once per outage, not once per
beat, and renewed when the bus is back. One thread: ``beat()`` is called directly."""

from __future__ import annotations

import logging

from ubot.bus import SCANNERS, BusUnavailable, InProcessBus
from ubot.clocks import FakeClock
from ubot.heartbeat import Heartbeat


class FlakyBus(InProcessBus):
    """The in-process bus, unreachable while ``down``."""

    down = False

    def heartbeat(self, group: str, member: str, ttl_s: float) -> None:
        if self.down:
            raise BusUnavailable("Redis did not answer: connection refused")
        super().heartbeat(group, member, ttl_s)


def test_a_failing_heartbeat_is_said_once_per_outage(caplog) -> None:
    clock = FakeClock()
    bus = FlakyBus(clock)
    beat = Heartbeat(bus, "scanner", "scanner-a", 4.0, lambda: {"strategies": 3}, clock=clock)
    caplog.set_level(logging.INFO, logger="ubot.heartbeat")
    beat.beat()
    assert bus.members(SCANNERS) == ("scanner-a",)
    bus.down = True
    for _ in range(5):
        beat.beat()
    bus.down = False
    beat.beat()
    bus.down = True
    beat.beat()
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(":")[1].strip() for line in lines] == [
        "heartbeat failed (Redis did not answer",
        "heartbeat renewed",
        "heartbeat failed (Redis did not answer",
    ]


def test_a_process_that_cannot_say_what_it_does_leaves_the_group() -> None:
    """A scanner process whose Scanner stopped (its figures fail) renews no membership: it drops out
    of the group after its TTL, and its share goes to the live scanners."""
    clock = FakeClock()
    bus = InProcessBus(clock)
    alive = [True]

    def figures() -> dict:
        if not alive[0]:
            raise RuntimeError("the Scanner has stopped")
        return {"strategies": 3}

    beat = Heartbeat(bus, "scanner", "scanner-a", 4.0, figures, clock=clock)
    beat.beat()
    assert bus.members(SCANNERS) == ("scanner-a",)
    alive[0] = False
    for _ in range(5):
        clock.advance(1.0)
        beat.beat()
    assert bus.members(SCANNERS) == ()
