"""The lifecycle every fake server shares: serve in a daemon thread, stop (releasing whatever a test
held back with ``release``), and be a context manager (start on enter, stop on exit)."""

from __future__ import annotations

import socketserver
import threading
from typing import Any


class Serving:
    """Mixed into a fake that sets ``release`` (an Event), ``_server`` and ``_thread`` (None) when
    built, and whose ``start()`` builds its server and hands it to :meth:`_serve`."""

    release: threading.Event
    _server: socketserver.BaseServer | None
    _thread: threading.Thread | None

    def start(self) -> Any:
        raise NotImplementedError

    def _serve(self, server: socketserver.BaseServer) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
