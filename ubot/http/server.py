"""Serving the gateway with gunicorn (one gthread worker), the actor system inside that worker.

gunicorn's master process binds the socket and supervises; the worker process builds the app by
calling ``make_app()`` after the fork (threads must not cross a fork), so the actors live in the
process that serves the requests. When the worker exits (SIGTERM: graceful; SIGINT: quick),
gunicorn calls ``on_exit()`` in that process, which stops the actors in order.

A graceful stop waits (up to 30 s) for the requests in progress, and an open event stream never
ends by itself: ``on_stopping()`` is called in the worker as soon as the stop begins (on SIGTERM,
SIGINT or SIGQUIT), before that wait, to end the streams (``StreamHub.close``). It runs in a signal
handler, so it must be quick and must not take a lock the worker's main thread could hold.

Requests gunicorn refuses before the app sees them (a malformed request line or header, a request
line over :data:`LIMIT_REQUEST_LINE` bytes, more than :data:`LIMIT_REQUEST_FIELDS` headers or one
over :data:`LIMIT_REQUEST_FIELD_SIZE` bytes) are answered by :class:`GatewayWorker` in the app's
error shape, ``{"title": ..., "description": ...}`` as JSON, instead of gunicorn's HTML page.
"""

from __future__ import annotations

import errno
import json
import signal
import socket
import sys
from collections.abc import Callable
from typing import Any

import falcon
from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.http import errors
from gunicorn.workers.gthread import ThreadWorker

#: The longest request line (method, path with query, version) in bytes; longer: 414.
LIMIT_REQUEST_LINE = 4094
#: Header fields a request may carry; more: 431.
LIMIT_REQUEST_FIELDS = 100
#: The longest header field (name and value) in bytes; longer: 431.
LIMIT_REQUEST_FIELD_SIZE = 8190

#: gunicorn's refusals other than a plain 400, by exception class name (``getattr``: not every
#: gunicorn version has every class).
_STATUS_OF = {
    "LimitRequestLine": 414,
    "LimitRequestHeaders": 431,
    "UnsupportedTransferCoding": 501,
    "ExpectationFailed": 417,
    "ForbiddenProxyRequest": 403,
    "InvalidResponseHeader": 500,  # the app's fault, not the client's
    "InvalidResponseHeaderName": 500,
    "ConfigurationProblem": 500,
}
_DESCRIPTION_MAX = 300


def refusal(exc: BaseException) -> tuple[int, str]:
    """(status, description) of the answer to a request gunicorn could not hand to the app."""
    status = next(
        (code for name, code in _STATUS_OF.items() if isinstance(exc, getattr(errors, name, ()))),
        400 if isinstance(exc, errors.ParseException) else 500,
    )
    if status == 414:
        return status, f"The request line (method, path and query) is longer than {LIMIT_REQUEST_LINE} bytes."
    if status == 431:
        return status, (
            f"The request has more than {LIMIT_REQUEST_FIELDS} header fields, or one longer than "
            f"{LIMIT_REQUEST_FIELD_SIZE} bytes."
        )
    if status == 500:
        return status, "the error was logged; please report it"
    detail = str(exc)
    if len(detail) > _DESCRIPTION_MAX:
        detail = detail[:_DESCRIPTION_MAX] + "..."
    return status, f"Malformed request: {detail}"


def error_response(status: int, description: str) -> bytes:
    """A whole HTTP/1.1 response in the app's error shape; the connection is closed after it."""
    title = falcon.code_to_http_status(status)
    body = json.dumps({"title": title, "description": description}).encode()
    head = (
        f"HTTP/1.1 {title}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


class GatewayWorker(ThreadWorker):
    """gunicorn's gthread worker, answering the requests it refuses itself in uBot's JSON shape, and
    stopping once whatever signals arrive.

    gunicorn's worker answers SIGINT and SIGQUIT by raising ``SystemExit`` from the signal handler,
    wherever the main thread is; the worker then stops the actors on the way out (``worker_exit``).
    A terminal's Ctrl-C sends SIGINT to the master *and* the worker, and the master relays a SIGQUIT
    of its own: when that second signal landed while the worker was already on its way out (a tick in
    flight makes that way longer), its ``SystemExit`` cut the actors' stop short, the actor threads
    kept the process alive, and the master SIGKILLed it 30 s later. Here only the first SIGINT or
    SIGQUIT raises; once the worker is leaving (that first one, or the main loop ended by SIGTERM),
    later ones are logged and ignored, and the stop runs to its end.
    """

    leaving = False

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.leaving = True  # from here on, the way out (worker_exit) must not be interrupted

    def handle_quit(self, sig: int, frame: Any) -> None:
        self.alive = False
        if self.leaving:
            self.log.info("Worker already stopping: %s ignored", signal.Signals(sig).name)
            return
        self.leaving = True
        self.cfg.worker_int(self)
        sys.exit(0)

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.alive = False  # graceful: the main loop ends, then the way out

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        status, description = refusal(exc)
        if status == 500:
            self.log.exception("Error handling request")
        else:
            peer = addr[0] if addr else ""
            self.log.warning("Invalid request from ip=%s: %s", peer, exc)
        try:
            util.write_nonblock(client, error_response(status, description))
        except OSError:
            self.log.debug("Failed to send the error response.")


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
            "worker_class": GatewayWorker,
            "limit_request_line": LIMIT_REQUEST_LINE,
            "limit_request_fields": LIMIT_REQUEST_FIELDS,
            "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
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
