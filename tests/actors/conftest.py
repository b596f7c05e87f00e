"""Fixtures for the actor tests: recording stand-ins for neighbour actors, snapshots, teardown.

``kit`` carries the helpers. An :class:`~tests.support.actors.Inbox` is a real actor standing where
a neighbour of the actor under test would be (the next stage, the Monitor, the Clock's target) and
recording what it is told. Tests wait on it with a timeout: every wait is for a message, never for
time to pass.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.support.actors import Inbox
from ubot.market.simulated import SimulatedSource
from ubot.market.snapshot import Snapshot, parse_listings
from ubot.messages import Fetched
from ubot.schedule import Tick
from ubot.timeutil import parse_iso_ms

T0 = parse_iso_ms("2024-03-10T00:00:00.000Z")


def market(at_ms: int, limit: int = 5) -> Snapshot:
    """The simulated market at ``at_ms``, parsed (deterministic: same time, same snapshot)."""
    raw = SimulatedSource(limit=limit, seed=1).documents(at_ms)
    return parse_listings(raw.listings, "USD", raw.global_metrics)


def fetched(number: int, snap: Snapshot) -> Fetched:
    """What the Fetcher would pass on for tick ``number``."""
    tick = Tick(number, snap.timestamp_ms, snap.timestamp_ms)
    return Fetched(tick=tick, snapshot=snap, source="simulated", stages=(("fetch", 1.0),))


@pytest.fixture
def kit() -> SimpleNamespace:
    """``kit.inbox()``, ``kit.market(at_ms)``, ``kit.fetched(number, snapshot)``, ``kit.T0``."""
    return SimpleNamespace(T0=T0, inbox=Inbox, market=market, fetched=fetched)
