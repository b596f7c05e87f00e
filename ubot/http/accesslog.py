"""The access log: one line per request in the Combined Log Format, to the logger ``ubot.access``
(INFO), written in ``process_response`` (gunicorn's own access log stays off)::

    203.0.113.9 - 7 [16/Oct/2024:00:02:30 +0000] "GET /v1/snapshot?symbols=BTC HTTP/1.1" 200 5120 "-" "curl/8.5.0" 3f9c0e5d2b8a4c7e9d1f0a2b3c4d5e6f 1.8ms

that is: client address (:mod:`ubot.http.clientaddr`), ``-``, the user id (``-`` when anonymous),
the time the request arrived (UTC), the request line, the status, the body size in bytes (``-``
when unknown: an event stream), ``Referer``, ``User-Agent``, then the request id
(:mod:`ubot.http.requestid`) and the time spent in the app, in milliseconds. For an event stream
that time ends when the stream starts, not when it ends.

Put it right after :class:`~ubot.http.requestid.RequestId` in the list: its ``process_response``
then runs after every other middleware's, and sees the final status and body.

Secrets: ``GET /v1/stream`` may carry the bearer token in ``?access_token=``, so the query string of
that route is never logged; on every other route a parameter named like a secret
(:data:`SECRET_PARAMS`, between ``&`` or ``;``) is logged as ``REDACTED``, and so is anything shaped
like one of uBot's tokens (:func:`ubot.users.tokens.redact`: a run of 43 or more URL-safe base64
characters) wherever it is in the path, the query, ``Referer`` or ``User-Agent``, whatever it is
called (``?bearer=``, ``?x=1;access_token=``). Redaction comes before a long field is cut, so a cut
never leaves part of a token. Every field is escaped as Apache does (``"`` and
``\\`` and control characters become backslash sequences), so no request can forge a log line.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from urllib.parse import quote, unquote_plus

import falcon

from ubot.http.clientaddr import client_address
from ubot.logtext import printable
from ubot.users import tokens

ACCESS_LOGGER = "ubot.access"
NO_QUERY_PATHS = frozenset({"/v1/stream"})
SECRET_PARAMS = frozenset({"access_token", "token", "password"})
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BODILESS = frozenset({204, 304})
_MAX_FIELD = 1024  # a header or a query string longer than this is cut in the log
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_SEPARATOR = re.compile(r"([&;])")  # kept in the split, to join back as it was


class AccessLog:
    nonblocking = True  # runs on the event loop (ubot/http/asgi.py)

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        now: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.logger = logger or logging.getLogger(ACCESS_LOGGER)
        self.now = now
        self.timer = timer

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.access_started = (self.now(), self.timer())

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        try:
            self.logger.info("%s", self.line(req, resp))
        except Exception:  # the log line must never turn a response into a 500
            logging.getLogger(__name__).exception("cannot write the access log line")

    def line(self, req: falcon.Request, resp: falcon.Response) -> str:
        started = getattr(req.context, "access_started", None)
        arrived, begun = started if started is not None else (self.now(), self.timer())
        elapsed_ms = max(0.0, self.timer() - begun) * 1000
        user_id = getattr(req.context, "user_id", None)
        protocol = _protocol(req)
        request_line = f"{req.method} {request_target(req)} {protocol}"
        return (
            f"{escape(client_address(req))} - {'-' if user_id is None else user_id} "
            f'[{clf_time(arrived)}] "{escape(request_line)}" {resp.status_code} {body_size(req, resp)} '
            f'"{_header(req, "Referer")}" "{_header(req, "User-Agent")}" '
            f"{escape(getattr(req.context, 'request_id', None) or '-')} {elapsed_ms:.1f}ms"
        )


def request_target(req: falcon.Request) -> str:
    """The path (re-quoted: Falcon decodes it) and the query string, minus anything secret."""
    path = tokens.redact(quote(req.path, safe=_PATH_SAFE))
    query = req.query_string
    if not query or req.path.rstrip("/") in NO_QUERY_PATHS:
        return path
    return f"{path}?{tokens.redact(redact_query(query))[:_MAX_FIELD]}"


def redact_query(query: str) -> str:
    parts = []
    for part in _SEPARATOR.split(query):
        name, sep, _ = part.partition("=")
        if sep and unquote_plus(name).strip().lower() in SECRET_PARAMS:
            part = f"{name}{sep}REDACTED"
        parts.append(part)
    return "".join(parts)


def body_size(req: falcon.Request, resp: falcon.Response) -> str:
    if req.method == "HEAD" or resp.status_code in _BODILESS or resp.status_code < 200:
        return "0"
    try:
        # Falcon keeps the rendered media: it is not serialized twice. (The WSGI method renders
        # synchronously on an ASGI response too, whose own render_body is a coroutine.)
        data = falcon.Response.render_body(resp)
    except Exception:
        return "-"
    if data is not None:
        return str(len(data))
    return "-" if resp.stream is not None or getattr(resp, "sse", None) is not None else "0"


def _protocol(req: falcon.Request) -> str:
    scope = getattr(req, "scope", None)  # ASGI; a WSGI request has the environ
    if scope is not None:
        return f"HTTP/{scope.get('http_version') or '1.1'}"
    return req.env.get("SERVER_PROTOCOL") or "HTTP/1.1"


def clf_time(epoch_s: float) -> str:
    t = time.gmtime(epoch_s)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def escape(text: str) -> str:
    """Apache's escaping of log fields: ``"`` and ``\\`` backslashed, control characters as ``\\xhh``."""
    return printable(text, also='"')


def _header(req: falcon.Request, name: str) -> str:
    value = req.get_header(name)
    return "-" if value is None else escape(tokens.redact(value)[:_MAX_FIELD])
