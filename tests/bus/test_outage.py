"""The "bus down" state (ubot/bus/outage.py) on an injected clock: no threads, no network."""

from __future__ import annotations

import logging

import pytest

from ubot.bus.outage import Outage
from ubot.clocks import FakeClock


def test_calls_are_refused_while_down_except_one_probe_per_retry() -> None:
    clock = FakeClock()
    outage = Outage("Redis", retry_s=5.0, clock=clock)
    assert outage.allow() and not outage.down
    outage.failed("ConnectionError: refused")
    assert outage.down
    assert [outage.allow() for _ in range(3)] == [False, False, False]
    clock.advance(4.9)
    assert not outage.allow()
    clock.advance(0.1)
    assert outage.allow()  # the probe
    assert not outage.allow()  # only one per retry_s
    outage.failed("ConnectionError: refused")  # the probe failed: the next one in retry_s
    clock.advance(4.9)
    assert not outage.allow()
    clock.advance(0.1)
    assert outage.allow()
    outage.recovered()
    assert not outage.down
    assert all(outage.allow() for _ in range(3))


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    outage = Outage("Redis (ubot)", retry_s=1.0, clock=clock)
    caplog.set_level(logging.INFO, logger="ubot.bus.outage")
    outage.recovered()  # up already: nothing said
    outage.failed("TimeoutError: timed out")
    for _ in range(10):
        outage.allow()
        outage.failed("TimeoutError: timed out")
    clock.advance(12.0)
    outage.recovered()
    outage.recovered()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "Redis (ubot) is down (TimeoutError: timed out)" in lines[0]
    assert "back after 12.0 s (10 calls refused meanwhile)" in lines[1]
