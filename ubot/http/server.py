"""Serving the gateway with gunicorn (one ASGI worker, or ``[http] workers`` of them for the
gateway role), the actor system inside each worker.

gunicorn's master process binds the socket and supervises; the worker process (gunicorn's own ASGI
worker, one asyncio event loop for every connection) builds the app by calling ``make_app()`` after
the fork (threads must not cross a fork), so the actors live in the process that serves the
requests. When the worker exits (SIGTERM: graceful; SIGINT: quick), gunicorn calls ``on_exit()`` in
that process, which stops the actors in order.

A graceful stop waits (up to 30 s) for the requests in progress, and an open event stream never
ends by itself: ``on_stopping()`` is called in the worker as soon as the stop begins (on SIGTERM,
SIGINT or SIGQUIT), before that wait, to end the streams (``StreamHub.close``). It runs on the
event loop (gunicorn's ASGI worker handles signals there), so it must be quick.

Several workers (``--role gateway --workers N``): each builds its own app, bus connection, stream
hub, snapshot follower and session cache after the fork, and follows the bus on its own; they share
nothing but the listening socket (the kernel hands each connection to one of them). Their metrics
are summed by prometheus_client's multiprocess mode (:func:`multiprocess_metrics`): a directory of
its own, wiped at start and removed at exit, and a dead worker's live gauges dropped by gunicorn's
``child_exit`` hook in the master.

Requests gunicorn refuses before the app sees them (a malformed request line or header, a request
line over :data:`LIMIT_REQUEST_LINE` bytes, more than :data:`LIMIT_REQUEST_FIELDS` headers or one
over :data:`LIMIT_REQUEST_FIELD_SIZE` bytes, headers not complete within ``request_timeout``) are
answered by :class:`GatewayProtocol` in the app's error shape, ``{"title": ..., "description": ...}``
as JSON, instead of gunicorn's plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import falcon
from gunicorn.app.base import BaseApplication
from gunicorn.asgi.protocol import ASGIProtocol
from gunicorn.http import errors
from gunicorn.workers.gasgi import ASGIWorker

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
#: How often the worker's loop tells the master it is alive and checks whether it should stop (so a
#: stop begins within this).
WORKER_POLL_S = 0.25


def refusal(exc: BaseException) -> tuple[int, str]:
    """(status, description) of the answer to a request gunicorn could not hand to the app."""
    status = next(
        (code for name, code in _STATUS_OF.items() if isinstance(exc, getattr(errors, name, ()))),
        400 if isinstance(exc, errors.ParseException) else 500,
    )
    return describe(status, str(exc))


def describe(status: int, detail: str) -> tuple[int, str]:
    """(status, description) of gunicorn's refusal ``status`` with its message ``detail``."""
    if status == 408:
        return status, detail
    if status == 414:
        return status, f"The request line (method, path and query) is longer than {LIMIT_REQUEST_LINE} bytes."
    if status == 431:
        return status, (
            f"The request has more than {LIMIT_REQUEST_FIELDS} header fields, or one longer than "
            f"{LIMIT_REQUEST_FIELD_SIZE} bytes."
        )
    if status >= 500 and status != 501:
        return 500, "the error was logged; please report it"
    if len(detail) > _DESCRIPTION_MAX:
        detail = detail[:_DESCRIPTION_MAX] + "..."
    return status, f"Malformed request: {detail}"


def error_response_parts(status: int, description: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) of an answer in the app's error shape; the connection closes after it."""
    title = falcon.code_to_http_status(status)
    body = json.dumps({"title": title, "description": description}).encode()
    headers = [
        (b"connection", b"close"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"cache-control", b"no-store"),
    ]
    return status, headers, body


def error_response(status: int, description: str, extra_headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """A whole HTTP/1.1 response in the app's error shape; the connection is closed after it."""
    _, headers, body = error_response_parts(status, description)
    lines = [f"HTTP/1.1 {falcon.code_to_http_status(status)}"]
    lines += [f"{name.decode()}: {value.decode()}" for name, value in headers]
    lines += [f"{name}: {value}" for name, value in extra_headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class GatewayProtocol(ASGIProtocol):
    """gunicorn's ASGI connection, with a deadline for the request's headers, and refusals in the
    app's JSON shape.

    gunicorn's own timers close a connection idle between two requests (``keepalive``) and bound each
    wait for a body part, but nothing bounds the *first* request's headers: a client that connects and
    sends ``G`` held its connection (and its file descriptor) for ever. Here the first request's
    headers must be complete within ``request_timeout`` seconds of the connection; otherwise it is
    answered 408 and closed. (Later requests on a kept-alive connection are bounded by ``keepalive``;
    the body, by the app: ``ubot/http/asgi.py``.)
    """

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        connections = getattr(self.worker, "connections", None)
        if connections is not None:
            connections.add(self)
        timeout = getattr(self.worker, "request_timeout_s", None)
        if timeout:
            self._deadline = self.worker.loop.call_later(timeout, self._request_timed_out, timeout)

    def _on_headers_complete(self) -> Any:
        self._cancel_deadline()
        return super()._on_headers_complete()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_deadline()
        connections = getattr(self.worker, "connections", None)
        if connections is not None:
            connections.discard(self)
        super().connection_lost(exc)

    def close_if_idle(self) -> bool:
        """At a stop: close the connection if no request is in progress on it (kept alive between
        two requests, or its first request not begun or not complete); whether it was. A request in
        progress is answered, and its connection closed after it (the worker is no longer alive)."""
        if self._closed or not (self._keepalive_handle is not None or self._deadline is not None):
            return False
        self._cancel_deadline()
        self._keepalive_timeout()  # gunicorn's own close of an idle connection
        return True

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _request_timed_out(self, timeout: float) -> None:
        self._deadline = None
        if self._closed:
            return
        self.worker.timed_out += 1
        self._send_error_response(408, f"The request was not complete within {timeout:g} s.")
        self._close_transport()
        if self._request_ready is not None:
            self._request_ready.set()  # wake the connection's task: it sees the close and ends

    def _send_error_response(self, status: int, message: str, extra_headers: Any = ()) -> None:
        status, description = describe(status, message)
        if status == 500:
            self.log.error("Error handling request: %s", message)
        elif status != 408:
            self.log.warning("Invalid request: %s", message)
        self._safe_write(error_response(status, description, extra_headers))


class GatewayWorker(ASGIWorker):
    """gunicorn's ASGI worker: one event loop serves every connection (each request's blocking work
    goes to the app's thread pool, ``ubot/http/asgi.py``). Its connections are
    :class:`GatewayProtocol`; SIGTERM calls the ``worker_int`` hook too (it ends the streams at once,
    so the graceful wait is for ordinary requests only)."""

    request_timeout_s: float = 10.0
    timed_out = 0  # connections closed at the request deadline (tests, tools)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The open connections (:class:`GatewayProtocol` adds and removes itself).
        self.connections: set[GatewayProtocol] = set()

    def handle_exit_signal(self) -> None:
        if self.alive:
            self.cfg.worker_int(self)
        super().handle_exit_signal()

    async def _serve(self) -> None:
        """gunicorn's ``_serve`` with :class:`GatewayProtocol` for the connections and no ASGI
        lifespan (the app is built, and its actors started, before the loop runs)."""
        for sock in self.sockets:
            server = await self.loop.create_server(
                lambda: GatewayProtocol(self), sock=sock.sock, reuse_address=True, start_serving=True
            )
            self.servers.append(server)
            self.log.info("ASGI server listening on %s", sock)
        try:
            while self.alive:
                self.notify()
                if self.ppid != os.getppid():
                    self.log.info("Parent changed, shutting down: %s", self)
                    break
                await asyncio.sleep(WORKER_POLL_S)
        except asyncio.CancelledError:
            pass
        # The graceful wait is for requests in progress: an idle kept-alive connection (a browser's,
        # a client's pool) would otherwise hold the stop until its keepalive timeout (5 s), and one
        # whose request never came until the request deadline.
        idle = sum(connection.close_if_idle() for connection in list(self.connections))
        if idle:
            self.log.info("Closed %d idle connection(s)", idle)
        await self._shutdown()


#: prometheus_client's multiprocess variable (``ubot.metrics.MULTIPROC_ENV``, not imported here:
#: importing prometheus_client before it is set is what this module must avoid).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def metrics_dir(bind: tuple[str, int]) -> str:
    """The multiprocess metrics directory of the gateway on ``bind`` (one gateway per address)."""
    host, port = bind
    safe = "".join(c if c.isalnum() else "-" for c in host)
    return os.path.join(tempfile.gettempdir(), f"ubot-metrics-{safe}-{port}-{os.getuid()}")


@contextlib.contextmanager
def multiprocess_metrics(bind: tuple[str, int]) -> Iterator[str]:
    """prometheus_client's multiprocess mode for this process and the workers it forks: the
    directory of :func:`metrics_dir`, wiped (a killed predecessor's files summed with ours would
    count twice), ``PROMETHEUS_MULTIPROC_DIR`` set; on exit the directory removed and the variable
    unset. Must be entered before prometheus_client is imported (it reads the variable then)."""
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before its multiprocess directory was set")
    directory = metrics_dir(bind)
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory, mode=0o700)
    os.environ[MULTIPROC_ENV] = directory
    try:
        yield directory
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(directory, ignore_errors=True)


def worker_died(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook (in the master): a dead worker's live gauges no longer count."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, directory)


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
        request_timeout_s: float = 10.0,
        workers: int = 1,
        freeze_at_exit: bool = False,
        signalled_early: Callable[[], bool] = lambda: False,
        on_serving: Callable[[], None] | None = None,
    ) -> None:
        """``threads`` is the app's pool (``create_app``), not gunicorn's: only logged here.
        ``workers``: gunicorn worker processes, each calling ``make_app`` after its fork.
        ``freeze_at_exit``: see :meth:`_exit`. ``signalled_early``: whether a stop signal came before
        gunicorn's own handlers were installed (see :meth:`_ready`). ``on_serving``: called in each
        worker once its app is built, as it starts serving (its work must not block: a thread)."""
        self._signalled_early = signalled_early
        self._on_serving = on_serving
        self._workers = workers
        self._freeze_at_exit = freeze_at_exit
        self._bind = bind
        self._threads = threads
        self._request_timeout_s = request_timeout_s
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
            "workers": self._workers,
            "worker_class": GatewayWorker,
            "limit_request_line": LIMIT_REQUEST_LINE,
            "limit_request_fields": LIMIT_REQUEST_FIELDS,
            "limit_request_field_size": LIMIT_REQUEST_FIELD_SIZE,
            "worker_connections": 100_000,  # the open files allowed are the real bound
            "graceful_timeout": 30,
            "timeout": 60,
            "keepalive": 5,
            "loglevel": self._loglevel.lower(),
            "accesslog": None,
            "proc_name": "ubot",
            "worker_exit": lambda server, worker: self._exit(),
            "post_worker_init": self._worker_ready,
            "child_exit": worker_died,
            "worker_int": lambda worker: self._stopping(),  # SIGINT, SIGQUIT, and SIGTERM (GatewayWorker)
            "when_ready": lambda arbiter: self._ready(),
        }.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1
            # Otherwise every uBot opens $HOME/.gunicorn/gunicorn.ctl and two of them collide.
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Any:
        return self._make_app()

    def _exit(self) -> None:
        """The worker's end: ``on_exit``, then with ``freeze_at_exit`` the objects left frozen
        (``gc.freeze``, see ``run.py: freeze_leftovers``)."""
        try:
            self._on_exit()
        finally:
            if self._freeze_at_exit:
                gc.freeze()

    def _ready(self) -> None:
        """In the master, its signal handlers installed: a stop signal that came before them (caught
        by ``run.py``'s early handler only) is sent again, so gunicorn stops as it would have."""
        if self._signalled_early():
            os.kill(os.getpid(), signal.SIGTERM)

    def _stopping(self) -> None:
        if self._on_stopping is not None:
            self._on_stopping()

    def _worker_ready(self, worker: Any) -> None:
        """In a worker, its app loaded, right before its loop serves the (listening) sockets."""
        worker.request_timeout_s = self._request_timeout_s
        if self._on_serving is not None:
            self._on_serving()
