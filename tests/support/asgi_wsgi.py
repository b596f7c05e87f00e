"""An ASGI app as a WSGI callable, for tools that only speak WSGI (schemathesis' ``from_wsgi``:
its ASGI loader needs a package uBot does not install). Each request runs to its end on one event
loop in a thread of its own; the answer is returned whole (no streaming bodies)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from typing import Any

import falcon

TIMEOUT_S = 60


class AsgiAsWsgi:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        raw_path = environ.get("PATH_INFO", "/").encode("latin-1")
        headers = [
            (name[5:].replace("_", "-").lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in environ.items()
            if name.startswith("HTTP_")
        ]
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers.append((name.replace("_", "-").lower().encode(), environ[name].encode("latin-1")))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": environ.get("SERVER_PROTOCOL", "HTTP/1.1").removeprefix("HTTP/"),
            "method": environ["REQUEST_METHOD"],
            "scheme": environ.get("wsgi.url_scheme", "http"),
            "path": raw_path.decode("utf-8", "replace"),
            "raw_path": raw_path,
            "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
            "root_path": "",
            "headers": headers,
            "client": (environ.get("REMOTE_ADDR") or "127.0.0.1", 50000),
            "server": (environ.get("SERVER_NAME", "localhost"), int(environ.get("SERVER_PORT") or 80)),
        }
        sent = asyncio.run_coroutine_threadsafe(self._call(scope, body), self.loop).result(TIMEOUT_S)
        start = next(m for m in sent if m["type"] == "http.response.start")
        start_response(
            falcon.code_to_http_status(start["status"]),
            [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])],
        )
        return [b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")]

    async def _call(self, scope: dict, body: bytes) -> list[dict]:
        sent: list[dict] = []
        given = False

        async def receive() -> dict:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client stays until the answer is complete
            raise AssertionError("unreachable")

        async def send(message: dict) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        return sent
