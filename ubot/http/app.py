"""The Falcon app factory: routes, uniform JSON errors."""

from __future__ import annotations

from typing import Any

import falcon
import msgspec
import numpy as np

from ubot.http import openapi
from ubot.http.asgi import DEFAULT_REQUEST_TIMEOUT_S, App, Offload
from ubot.http.compress import Compression
from ubot.http.errors import add_error_handlers
from ubot.http.gateway import Gateway
from ubot.http.metrics import RequestMetrics
from ubot.http.middleware import Authentication, BodyLimit, RequireJSON
from ubot.http.protection import Protection
from ubot.http.routes import ROUTES, Wiring, served, with_head
from ubot.http.stream import DEFAULT_CAPS, DEFAULT_HEARTBEAT_S
from ubot.stream.hub import StreamHub
from ubot.stream.slots import StreamCaps, StreamSlots


def _encodable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise NotImplementedError(f"cannot encode {type(value).__name__}")


#: Answers are written by msgspec: shapes (Structs, dataclasses) as they are, NaN as null.
JSON = falcon.media.JSONHandler(
    dumps=msgspec.json.Encoder(enc_hook=_encodable).encode, loads=msgspec.json.decode
)


def create_app(
    gateway: Gateway,
    max_body_bytes: int = 16_384,
    *,
    hub: StreamHub | None = None,
    max_streams: int = DEFAULT_CAPS.total,
    max_streams_per_address: int = DEFAULT_CAPS.per_address,
    max_streams_per_user: int = DEFAULT_CAPS.per_user,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    protection: Protection | None = None,
    metrics: bool = True,
    threads: int = 8,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
) -> App:
    """Build the ASGI app (:mod:`ubot.http.asgi`). Errors are JSON ``{"title": ..., "description": ...}``.

    ``hub``: where ``GET /v1/stream`` reads live events (without one the route answers 503), at
    most ``max_streams`` at once, ``max_streams_per_address`` from one client address and
    ``max_streams_per_user`` for one user, a heartbeat every ``heartbeat_s`` seconds. The routes are those of
    ``ubot.http.routes.ROUTES``, described at ``GET /openapi.json``. ``protection``: request ids,
    client address, access log, CORS, security headers and rate limits (``ubot.http.protection``);
    none when not given (tests of single resources). ``metrics``: serve ``GET /metrics``
    (``[http] metrics``); every request is counted and timed either way (``ubot/http/metrics.py``).
    ``threads``: the pool the synchronous responders and middleware run in (``[http] threads``);
    ``request_timeout_s``: a request body not complete by then is a 408 (``[http] request_timeout``).
    """
    authenticate = gateway.authenticate if gateway.users is not None else None
    guard = protection or Protection([], [])
    # Order (see ubot/http/protection.py): request id first and out last; CORS answers preflights
    # before any check; the per-client limit refuses floods before the body is read; the per-user
    # limit needs the user that Authentication found.
    middleware: list = [
        RequestMetrics(ROUTES),  # first: it sees the final status (ubot/http/metrics.py)
        *guard.before_auth,
        Compression(),  # gzip (ubot/http/compress.py): compresses what the checks below let through
        BodyLimit(max_body_bytes),
        RequireJSON(),
        Authentication(authenticate),
        *guard.after_auth,
    ]
    offload = Offload(threads)
    app = App(middleware=middleware, offload=offload, request_timeout_s=request_timeout_s)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.keep_blank_qs_values = True  # ?start= is a malformed time, not no time
    app.req_options.media_handlers[falcon.MEDIA_JSON] = JSON
    app.resp_options.media_handlers[falcon.MEDIA_JSON] = JSON
    # The one route table (ubot/http/routes.py).
    routes = served(accounts=gateway.users is not None, metrics=metrics)
    caps = StreamCaps(max_streams, max_streams_per_address, max_streams_per_user)
    wiring = Wiring(
        gateway, authenticate, hub, caps, heartbeat_s, openapi.document(routes), offload, StreamSlots(caps)
    )
    for route in routes:
        app.add_route(route.template, with_head(route.build(wiring)))
    add_error_handlers(app)
    return app
