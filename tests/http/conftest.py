"""The real app over a real actor system, called through ``falcon.testing.TestClient``.

``served``: a replay (see ``tests/replayfiles.py``) played to its end with ``interval_s=0``; the
fixture returns once the Monitor has reported the source exhausted. ``idle``: the same replay
behind a Clock on a :class:`FakeClock` that has not ticked yet; the test fires each tick itself.
``canned``: a :class:`Gateway` over stand-in actors (no database): ``TOKENS`` authenticate, and
the notifier answers with ``canned.answer`` (set by the test).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from falcon.testing import TestClient

from tests.http.support import DEADLINE_S, CannedActor, CannedUsers, gateway_of
from tests.replayfiles import Replay, ms, write_replay
from tests.support.waits import wait_until
from ubot.clocks import FakeClock
from ubot.http.app import create_app
from ubot.http.gateway import Gateway
from ubot.market.replay import ReplaySource
from ubot.system import Actors, start_system, stop_system


@dataclass
class Served:
    replay: Replay
    actors: Actors
    client: TestClient
    finished: list[str]


@dataclass
class Idle:
    replay: Replay
    actors: Actors
    client: TestClient
    clock: FakeClock

    def tick(self) -> None:
        """Fire the next tick (move the fake clock to the Clock's deadline) and wait until it is done."""
        before = self.client.simulate_get("/health").json["ticks"]
        self.clock.set(self.clock.wait_for_sleeper())
        wait_until(lambda: self.client.simulate_get("/health").json["ticks"] > before, "the tick to finish")


def _stop(actors: Actors) -> None:
    stop_system(actors, timeout=10)


@pytest.fixture
def replay(tmp_path) -> Replay:
    return write_replay(tmp_path / "replay")


@pytest.fixture
def served(db, replay) -> Iterator[Served]:
    done = threading.Event()
    reasons: list[str] = []

    def on_finished(why: str) -> None:
        reasons.append(why)
        done.set()

    actors = start_system(db, ReplaySource(replay.directory), interval_s=0, on_finished=on_finished)
    try:
        assert done.wait(DEADLINE_S), "the replay did not finish"
        yield Served(replay, actors, TestClient(create_app(gateway_of(actors))), reasons)
    finally:
        _stop(actors)


@pytest.fixture
def idle(db, replay) -> Iterator[Idle]:
    clock = FakeClock(start=ms("2024-10-16T00:02:30Z") / 1000)
    actors = start_system(db, ReplaySource(replay.directory), interval_s=60, clock=clock)
    try:
        client = TestClient(create_app(gateway_of(actors, now=clock.now)))
        yield Idle(replay, actors, client, clock)
    finally:
        _stop(actors)


TOKENS = {"token-of-7": 7, "token-of-8": 8}


@dataclass
class Canned:
    """Stand-in actors behind a real Gateway. The notifier records what it is asked and replies
    ``answer`` (a value, or a function of the message)."""

    asked: list[Any] = field(default_factory=list)
    answer: Any = ()
    gateway: Gateway | None = None

    def reply(self, message: Any) -> Any:
        self.asked.append(message)
        return self.answer(message) if callable(self.answer) else self.answer


@pytest.fixture
def canned() -> Iterator[Canned]:
    state = Canned()
    nothing = CannedActor.start(lambda message: None)
    users = CannedUsers.start(TOKENS)
    notifier = CannedActor.start(state.reply)
    state.gateway = Gateway(
        container=nothing, history=nothing, monitor=nothing, clock=nothing, users=users, notifier=notifier
    )
    try:
        yield state
    finally:
        for ref in (nothing, users, notifier):
            ref.stop()
