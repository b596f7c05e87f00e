"""Request ids: one per request, echoed in ``X-Request-ID`` and shown in every log line emitted while
the request is handled.

:class:`RequestId` (middleware; put it FIRST in the list, so its ``process_response`` runs last and
every other middleware, the access log included, logs with the id):

* an incoming ``X-Request-ID`` is kept when it is sane (1..128 characters of ``A-Za-z0-9._-``: what
  a proxy or a client generates), so one id follows a request through the proxy's logs and ours;
  anything else is replaced by a fresh ``uuid4().hex``;
* the id is ``req.context.request_id`` and the response's ``X-Request-ID`` header;
* while the request is handled it is also in a :class:`contextvars.ContextVar`, reset when the
  response is done (each request is one task on the gateway's event loop; its blocking work runs in
  the pool with a copy of the task's context, so the id follows it there).

Logging: :class:`RequestIdFilter` sets ``record.request_id`` (``-`` outside a request) on every
record passing a handler; :func:`install_request_id_logging` puts it on the root logger's handlers.
The format then shows it with ``%(request_id)s``, e.g. :data:`LOG_FORMAT`.

The body of a streamed response (``/v1/stream``) is produced after the response middleware ran, so
log lines from inside an event stream carry no id.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

import falcon

HEADER = "X-Request-ID"
#: ``request_tag`` is `` [<id>]`` while a request is handled and empty otherwise, so lines of the
#: pipeline keep their plain ``<time> INFO ubot.actors.monitor: ...`` shape.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request_tag)s: %(message)s"
_SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("ubot_request_id", default=None)


def current_request_id() -> str | None:
    """The id of the request this thread is handling, or None."""
    return _current.get()


class RequestId:
    nonblocking = True  # runs on the event loop (ubot/http/asgi.py)

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        incoming = req.get_header(HEADER)
        request_id = incoming if incoming is not None and _SANE.fullmatch(incoming) else uuid.uuid4().hex
        req.context.request_id = request_id
        req.context.request_id_token = _current.set(request_id)

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        request_id = getattr(req.context, "request_id", None)
        if request_id is None:  # process_request did not run (Falcon refused the method first)
            request_id = req.context.request_id = uuid.uuid4().hex
        resp.set_header(HEADER, request_id)
        token = getattr(req.context, "request_id_token", None)
        if token is not None:
            req.context.request_id_token = None
            _current.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request) and ``record.request_tag`` (`` [<id>]``,
    empty outside a request); never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            current = _current.get()
            record.request_id = current or "-"
            record.request_tag = f" [{current}]" if current else ""
        return True


def install_request_id_logging(logger: logging.Logger | None = None) -> RequestIdFilter:
    """Put one :class:`RequestIdFilter` on every handler of ``logger`` (the root logger by default).
    Call once, after the handlers exist (after ``logging.basicConfig``); calling again adds nothing
    to a handler that has one. Handlers added later need ``handler.addFilter(...)`` themselves."""
    logger = logger or logging.getLogger()
    installed = RequestIdFilter()
    for handler in logger.handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(installed)
    return installed
