"""Serving the gateway with gunicorn (one gthread worker), the actor system inside that worker.

gunicorn's master process binds the socket and supervises; the worker process builds the app by
calling ``make_app()`` after the fork (threads must not cross a fork), so the actors live in the
process that serves the requests. When the worker exits (SIGTERM: graceful; SIGINT: quick),
gunicorn calls ``on_exit()`` in that process, which stops the actors in order.

A graceful stop waits (up to 30 s) for the requests in progress, and an open event stream never
ends by itself: ``on_stopping()`` is called in the worker as soon as the stop begins (on SIGTERM,
SIGINT or SIGQUIT), before that wait, to end the streams (``StreamHub.close``). It runs in a signal
handler, so it must be quick and must not take a lock the worker's main thread could hold.
"""

from __future__ import annotations

import errno
import signal
import socket
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication


class BindError(OSError):
    pass


def check_bind(host: str, port: int) -> None:
    """Fail fast, with a clear message, when ``host:port`` cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn does
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "the address is already in use (another uBot or program is listening)"
            elif exc.errno == errno.EACCES:
                why = "permission denied (ports below 1024 need privileges)"
            else:
                why = exc.strerror or str(exc)
            raise BindError(f"cannot listen on {host}:{port}: {why}; set --bind or [http] bind") from None


class GatewayServer(BaseApplication):
    def __init__(
        self,
        bind: tuple[str, int],
        threads: int,
        make_app: Callable[[], Any],
        on_exit: Callable[[], None],
        loglevel: str = "info",
        on_stopping: Callable[[], None] | None = None,
    ) -> None:
        self._bind = bind
        self._threads = threads
        self._make_app = make_app
        self._on_exit = on_exit
        self._loglevel = loglevel
        self._on_stopping = on_stopping
        super().__init__()

    def load_config(self) -> None:
        host, port = self._bind
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        for key, value in {
            "bind": [address],
            "workers": 1,
            "worker_class": "gthread",
            "threads": self._threads,
            "graceful_timeout": 30,
            "timeout": 60,
            "keepalive": 5,
            "loglevel": self._loglevel.lower(),
            "accesslog": None,
            "proc_name": "ubot",
            "worker_exit": lambda server, worker: self._on_exit(),
            "post_worker_init": self._hook_stop_signal,
            "worker_int": lambda worker: self._stopping(),  # SIGINT, SIGQUIT
        }.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1
            # Otherwise every uBot opens $HOME/.gunicorn/gunicorn.ctl and two of them collide.
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        return self._make_app()

    def _stopping(self) -> None:
        if self._on_stopping is not None:
            self._on_stopping()

    def _hook_stop_signal(self, worker: Any) -> None:
        """Call ``on_stopping`` on SIGTERM too (gunicorn has no hook there), then gunicorn's handler."""
        graceful = signal.getsignal(signal.SIGTERM)

        def on_sigterm(signum: int, frame: Any) -> None:
            self._stopping()
            if callable(graceful):
                graceful(signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)
        signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn sets it: do not disturb requests
