"""Actors in tests: a recording stand-in for a neighbour, and every actor stopped at the end.

An :class:`Inbox` is a real actor standing where a neighbour of the actor under test would be,
recording what it is told; the test waits on it for a message, never for time to pass.

``stop_actors`` is an autouse fixture for the whole suite (imported by ``tests/conftest.py``): a
test that forgets an actor, or fails before its own teardown, does not leave threads behind for
the next one. Stopping when no actor runs costs nothing.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

#: Seconds to wait for the actors to stop: only reached when one is stuck.
STOP_TIMEOUT_S = 10.0
#: Seconds an :class:`Inbox` waits for a message: only reached when a test is about to fail.
MESSAGE_TIMEOUT_S = 10.0


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
            message = self._messages.get(timeout=MESSAGE_TIMEOUT_S)
        except queue.Empty:
            raise AssertionError(f"no message within {MESSAGE_TIMEOUT_S} s") from None
        if kind is not None:
            assert isinstance(message, kind), message
        return message

    def received(self) -> list[Any]:
        """Every message told to ``ref`` so far and not yet taken (all of them are handled:
        an ask queues behind them)."""
        self.ref.ask("flush", timeout=MESSAGE_TIMEOUT_S)
        result = []
        while not self._messages.empty():
            result.append(self._messages.get_nowait())
        return result


def stop_all_actors(timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop every running actor and wait until each has; fails if one is still busy after ``timeout``."""
    pykka.ActorRegistry.stop_all(block=True, timeout=timeout)


@pytest.fixture(autouse=True)
def stop_actors() -> Iterator[None]:
    yield
    stop_all_actors()
