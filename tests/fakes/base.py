"""The plumbing every fake HTTP provider shares: a threaded HTTP/1.1 server on 127.0.0.1 (port 0),
a record of every request, and a queue of scripted behaviours.

A fake subclasses :class:`HttpFake` and implements :meth:`HttpFake.answer` (the provider's own
behaviour). Tests can queue behaviours that take precedence, one per request: :class:`Reply` (any
status, body and headers), :class:`Hang` (answer only once :attr:`HttpFake.release` is set, which
:meth:`HttpFake.stop` also does, so no test sleeps), :class:`Drop` (close without answering),
:class:`Drip` (the status line, then one byte every few seconds: no read ever times out) and
:class:`Flood` (an answer whose body does not end). Each is bounded, and ends when the fake stops.
With a ``certificate`` the fake serves HTTPS (the listening socket does the TLS handshake).
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.serving import Serving


@dataclass(frozen=True)
class Request:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


@dataclass(frozen=True)
class Reply:
    """Answer with exactly this (a dict or list body is sent as JSON)."""

    status: int
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hang:
    """Wait for :attr:`HttpFake.release`, then answer normally (the client has long given up)."""


@dataclass(frozen=True)
class Drop:
    """Close the connection without an answer."""


@dataclass(frozen=True)
class Drip:
    """The status line at once, then one byte of a header every ``every_s`` seconds, ``count`` bytes
    in all, then the end of the answer (if the client is still there). A client that only times out
    each read waits ``count * every_s`` seconds; the drip ends early when the fake stops."""

    every_s: float = 1.0
    count: int = 60
    status: int = 200


@dataclass(frozen=True)
class Flood:
    """``status`` with a body that does not end: ``total`` bytes (no length, then the connection
    closes), written as fast as the client reads them."""

    total: int = 64 * 1024 * 1024
    status: int = 200


Behaviour = Reply | Hang | Drop | Drip | Flood


class HttpFake(Serving):
    """Base of the fake providers; a context manager (start on enter, stop on exit)."""

    def __init__(self, certificate: tuple[Path, Path] | None = None) -> None:
        self.certificate = certificate  # (cert.pem, key.pem): serve HTTPS
        self.requests: list[Request] = []
        self.release = threading.Event()
        self.lock = threading.Lock()
        self._script: deque[Behaviour] = deque()
        self.flooded = 0  # bytes of Flood bodies written (the client read them, or the kernel took them)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    # -- control ----------------------------------------------------------------------------------

    def start(self) -> HttpFake:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._port = int(self._server.server_address[1])
        if self.certificate is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.certificate)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._serve(self._server)
        return self

    @property
    def base_url(self) -> str:
        return f"{'https' if self.certificate else 'http'}://127.0.0.1:{self.port}"

    @property
    def port(self) -> int:
        """The port it listens on (still known after :meth:`stop`)."""
        assert self._port is not None, "start() the fake first"
        return self._port

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours: each request takes the next one; an empty queue means :meth:`answer`."""
        with self.lock:
            self._script.extend(behaviours)

    # -- the provider -----------------------------------------------------------------------------

    def answer(self, request: Request) -> Reply:
        """The provider's own answer to a request (no scripted behaviour pending)."""
        raise NotImplementedError

    def _next(self) -> Behaviour | None:
        with self.lock:
            return self._script.popleft() if self._script else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out and left is part of the test: no traceback."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "fake"
    sys_version = ""
    owner: HttpFake

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.owner
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            self.command,
            url.path,
            dict(parse_qsl(url.query)),
            {name.lower(): value for name, value in self.headers.items()},
            body,
        )
        with fake.lock:
            fake.requests.append(request)
        behaviour = fake._next()
        if isinstance(behaviour, Drop):
            self.close_connection = True
            return
        if isinstance(behaviour, Hang):
            fake.release.wait(10)
            behaviour = None
        if isinstance(behaviour, Drip | Flood):
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client gave up: what the test is about
                if isinstance(behaviour, Drip):
                    self._drip(behaviour)
                else:
                    self._flood(behaviour)
            return
        reply = behaviour if isinstance(behaviour, Reply) else fake.answer(request)
        with contextlib.suppress(OSError):  # the client may have given up
            self._send(reply)

    def _send(self, reply: Reply) -> None:
        body = reply.body
        headers = dict(reply.headers)
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
            headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        self.send_response(reply.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, drip: Drip) -> None:
        self.wfile.write(f"HTTP/1.1 {drip.status} Slow\r\nX-Drip: ".encode())
        self.wfile.flush()
        for _ in range(drip.count):
            if self.owner.release.wait(drip.every_s):
                return
            self.wfile.write(b"z")
            self.wfile.flush()
        self.wfile.write(b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def _flood(self, flood: Flood) -> None:
        head = f"HTTP/1.1 {flood.status} Flood\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
        self.wfile.write(head.encode())
        chunk = b"x" * 65536
        written = 0
        while written < flood.total and not self.owner.release.is_set():
            self.wfile.write(chunk)
            written += len(chunk)
            with self.owner.lock:
                self.owner.flooded += len(chunk)
