"""Fixtures for the actor tests: recording stand-ins for neighbour actors, snapshots, teardown.

``kit`` carries the helpers (test modules cannot import each other). An :class:`Inbox` is a real
actor standing where a neighbour of the actor under test would be (the next stage, the Monitor,
the Clock's target) and recording what it is told. Tests wait on it with a timeout: every wait is
for a message, never for time to pass.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pykka
import pytest

from ubot.market.simulated import SimulatedSource
from ubot.market.snapshot import Snapshot, parse_listings
from ubot.messages import Fetched
from ubot.schedule import Tick
from ubot.timeutil import parse_iso_ms

T0 = parse_iso_ms("2024-03-10T00:00:00.000Z")
WAIT = 10.0  # seconds: only reached when a test is about to fail


class _Recorder(pykka.ThreadingActor):
    def __init__(self, messages: queue.Queue) -> None:
        super().__init__()
        self.messages = messages

    def on_receive(self, message: Any) -> Any:
        if message != "flush":
            self.messages.put(message)
        return None


class Inbox:
    """The test's end of a recording actor: ``ref`` goes to the actor under test."""

    def __init__(self) -> None:
        self._messages: queue.Queue = queue.Queue()
        self.ref = _Recorder.start(self._messages)

    def next(self, kind: type | None = None) -> Any:
        """The next message told to ``ref`` (waits for it); checks its type when given."""
        try:
            message = self._messages.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no message within {WAIT} s") from None
        if kind is not None:
            assert isinstance(message, kind), message
        return message

    def received(self) -> list[Any]:
        """Every message told to ``ref`` so far and not yet taken (all of them are handled:
        an ask queues behind them)."""
        self.ref.ask("flush", timeout=WAIT)
        result = []
        while not self._messages.empty():
            result.append(self._messages.get_nowait())
        return result


@pytest.fixture(autouse=True)
def stop_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=WAIT)


def market(at_ms: int, limit: int = 5) -> Snapshot:
    """The simulated market at ``at_ms``, parsed (deterministic: same time, same snapshot)."""
    raw = SimulatedSource(limit=limit, seed=1).fetch(at_ms)
    return parse_listings(raw.listings, "USD", raw.global_metrics)


def fetched(number: int, snap: Snapshot) -> Fetched:
    """What the Fetcher would pass on for tick ``number``."""
    tick = Tick(number, snap.timestamp_ms, snap.timestamp_ms)
    return Fetched(tick=tick, snapshot=snap, source="simulated", stages=(("fetch", 1.0),))


@pytest.fixture
def kit() -> SimpleNamespace:
    """``kit.inbox()``, ``kit.market(at_ms)``, ``kit.fetched(number, snapshot)``, ``kit.T0``."""
    return SimpleNamespace(T0=T0, inbox=Inbox, market=market, fetched=fetched)
