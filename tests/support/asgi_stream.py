"""A client of a streaming ASGI response (GET /v1/stream): the app called on an event loop of its
own (a thread), what it sends read write by write; ``close()`` is the client leaving (the server's
``http.disconnect``)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

import falcon

from tests.http.support import parse_sse

WAIT_S = 30.0


class Stream:
    """One client's stream: the app called on its own event loop, in a thread."""

    def __init__(self, app: Any, scope: dict) -> None:
        self._sent: queue.Queue[dict] = queue.Queue()
        self._started = threading.Event()
        self._left: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._call(app, scope),), daemon=True)
        self._thread.start()
        assert self._started.wait(WAIT_S)
        start = self._sent.get(timeout=WAIT_S)
        assert start["type"] == "http.response.start", start
        self.status = falcon.code_to_http_status(start["status"])
        self.headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        self.chunks = self._chunks()

    async def _call(self, app: Any, scope: dict) -> None:
        self._loop = asyncio.get_running_loop()
        self._left = asyncio.Event()
        self._started.set()
        receive = receiver(self._left)

        async def send(message: dict) -> None:
            self._sent.put(message)

        try:
            await app(scope, receive, send)
        finally:
            self._sent.put({"type": "ended"})

    def _chunks(self) -> Iterator[bytes]:
        while True:
            message = self._sent.get(timeout=WAIT_S)
            if message["type"] == "ended" or not message.get("more_body", False):
                if message.get("body"):
                    yield message["body"]
                return
            if message.get("body"):
                yield message["body"]

    def next(self) -> list[dict[str, str]]:
        """The messages of the next write the server makes (waits for it)."""
        return parse_sse(next(self.chunks))

    def messages(self, count: int) -> list[dict[str, str]]:
        """The next ``count`` messages, in one write or several (the app writes as events come)."""
        found: list[dict[str, str]] = []
        while len(found) < count:
            found += self.next()
        assert len(found) == count, found
        return found

    def close(self) -> None:
        """The client leaves; the app's call must end."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop just ended
                self._loop.call_soon_threadsafe(self._left.set)  # type: ignore[union-attr]
        self._thread.join(WAIT_S)
        assert not self._thread.is_alive(), "the stream did not end when its client left"


def receiver(left: asyncio.Event) -> Callable[[], Awaitable[dict]]:
    """An ASGI ``receive`` for a GET: the request (no body), then ``http.disconnect`` once ``left``
    is set (the client leaves)."""
    requested = False

    async def receive() -> dict:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await left.wait()
        return {"type": "http.disconnect"}

    return receive


def scope_of(path: str, query: str, headers: dict[str, str] | None, remote_addr: str) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": quote(path).encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        + [(b"host", b"testserver")],
        "client": (remote_addr, 50000),
        "server": ("testserver", 80),
    }
