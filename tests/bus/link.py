"""A TCP forwarder between a bus and the test Redis that a test can cut and restore: Redis as seen
across a network that fails, for as long as the test says, without touching the shared server.

While cut, every open connection is closed and every new one is closed as soon as it is accepted
(a client sees its connection drop, as when Redis restarts or a link fails)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class _Forward(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        link = self.server.link
        if not link.up:
            return
        try:
            upstream = socket.create_connection(link.upstream, timeout=5)
        except OSError:
            return
        upstream.settimeout(None)
        pair = (self.request, upstream)
        link.opened(pair)
        try:
            if not link.up:  # cut while connecting
                return
            with selectors.DefaultSelector() as selector:
                selector.register(self.request, selectors.EVENT_READ, upstream)
                selector.register(upstream, selectors.EVENT_READ, self.request)
                while True:
                    for key, _ in selector.select():
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            return
                        key.data.sendall(data)
        except OSError:
            return
        finally:
            link.closed(pair)
            upstream.close()


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, link: Link) -> None:
        self.link = link
        super().__init__(("127.0.0.1", 0), _Forward)


class Link:
    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._parts = parts
        self.up = True
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._lock = threading.Lock()
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    @property
    def url(self) -> str:
        """The Redis URL through this link."""
        netloc = f"127.0.0.1:{self._server.server_address[1]}"
        return urlunsplit(self._parts._replace(netloc=netloc))

    def start(self) -> Link:
        self._thread.start()
        return self

    def cut(self) -> None:
        self.up = False
        with self._lock:
            pairs = list(self._pairs)
        for pair in pairs:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.up = True

    def stop(self) -> None:
        self.cut()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def opened(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            self._pairs.add(pair)

    def closed(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            self._pairs.discard(pair)

    def __enter__(self) -> Link:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
