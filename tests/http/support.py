"""Helpers of the HTTP tests (the fixtures are in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pykka
from falcon.testing import Result

from ubot.http.gateway import Gateway
from ubot.system import Actors

DEADLINE_S = 20.0


def gateway_of(actors: Actors, **kwargs: Any) -> Gateway:
    return Gateway(
        container=actors.container,
        history=actors.history,
        monitor=actors.monitor,
        clock=actors.clock,
        **kwargs,
    )


def assert_error(result: Result, status: int) -> dict:
    """An error answer: the status, and a JSON body of ``{"title", "description"}`` (and ``field``
    when a request field is at fault)."""
    assert result.status_code == status, result.text
    assert result.headers["content-type"].startswith("application/json")
    body = result.json
    assert set(body) - {"field"} == {"title", "description"}, body
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["description"], str) and body["description"]
    return body


class _Sessions:
    def __init__(self, tokens: Mapping[str, int]) -> None:
        self.tokens = tokens  # not a copy: a test may revoke one

    def authenticate(self, token: str) -> int | None:
        return self.tokens.get(token)


class CannedUsers(pykka.ThreadingActor):
    """A stand-in UserManager actor: its ``manager`` knows these tokens' users, and nothing else."""

    def __init__(self, tokens: Mapping[str, int]) -> None:
        super().__init__()
        self.manager = pykka.traversable(_Sessions(tokens))


class CannedActor(pykka.ThreadingActor):
    """A stand-in actor: answers every message with ``answer(message)``."""

    def __init__(self, answer: Callable[[Any], Any]) -> None:
        super().__init__()
        self.answer = answer

    def on_receive(self, message: Any) -> Any:
        return self.answer(message)


def parse_sse(chunks: Iterator[bytes] | bytes) -> list[dict[str, str]]:
    """The messages of an SSE body (complete ones only): each field of a message, comments as
    ``{":": text}``. A test's small reader, not a full implementation of the spec."""
    text = (chunks if isinstance(chunks, bytes) else b"".join(chunks)).decode()
    messages = []
    for block in text.split("\n\n")[:-1]:
        message: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            message[name or ":"] = value.removeprefix(" ")
        messages.append(message)
    return messages
