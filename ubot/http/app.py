"""The Falcon app factory: routes, uniform JSON errors."""

from __future__ import annotations

import logging

import falcon

from ubot.http import openapi
from ubot.http.compress import Compression
from ubot.http.gateway import Gateway, NotEnabled, Unavailable
from ubot.http.middleware import Authentication, BodyLimit, RequireJSON
from ubot.http.protection import Protection
from ubot.http.routes import Wiring, served
from ubot.http.stream import DEFAULT_HEARTBEAT_S, DEFAULT_MAX_STREAMS
from ubot.stream.hub import StreamHub

log = logging.getLogger(__name__)


def _unavailable(req: falcon.Request, resp: falcon.Response, exc: Unavailable, params: dict) -> None:
    log.warning("%s %s: %s", req.method, req.path, exc)
    raise falcon.HTTPServiceUnavailable(
        title="Service busy", description="uBot did not answer in time; try again", retry_after=2
    )


def _not_enabled(req: falcon.Request, resp: falcon.Response, exc: NotEnabled, params: dict) -> None:
    raise falcon.HTTPServiceUnavailable(title="Not enabled", description=str(exc))


def _unexpected(req: falcon.Request, resp: falcon.Response, exc: Exception, params: dict) -> None:
    if isinstance(exc, falcon.HTTPError):
        raise exc
    log.exception("%s %s failed", req.method, req.path)
    raise falcon.HTTPInternalServerError(
        title="Internal error", description="the error was logged; please report it"
    )


def _serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Always JSON (whatever the client accepts), always with a description."""
    description = exc.description
    if not description:  # Falcon's own 404 (no route) and 405 carry a title only
        if isinstance(exc, falcon.HTTPMethodNotAllowed):
            description = f"{req.path} does not accept {req.method}."
        elif isinstance(exc, falcon.HTTPNotFound):
            description = f"There is no resource at {req.path}."
        else:
            description = f"{exc.title}."
    resp.content_type = falcon.MEDIA_JSON
    resp.media = {"title": exc.title, "description": description, **getattr(exc, "members", {})}


def create_app(
    gateway: Gateway,
    max_body_bytes: int = 16_384,
    *,
    hub: StreamHub | None = None,
    max_streams: int = DEFAULT_MAX_STREAMS,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
    protection: Protection | None = None,
) -> falcon.App:
    """Build the WSGI app. Errors are JSON ``{"title": ..., "description": ...}``.

    ``hub``: where ``GET /v1/stream`` reads live events (without one the route answers 503), at
    most ``max_streams`` at once, a heartbeat every ``heartbeat_s`` seconds. The routes are those of
    ``ubot.http.routes.ROUTES``, described at ``GET /openapi.json``. ``protection``: request ids,
    client address, access log, CORS, security headers and rate limits (``ubot.http.protection``);
    none when not given (tests of single resources).
    """
    authenticate = gateway.authenticate if gateway.users is not None else None
    guard = protection or Protection([], [])
    # Order (see ubot/http/protection.py): request id first and out last; CORS answers preflights
    # before any check; the per-client limit refuses floods before the body is read; the per-user
    # limit needs the user that Authentication found.
    middleware: list = [
        *guard.before_auth,
        Compression(),  # gzip (ubot/http/compress.py): compresses what the checks below let through
        BodyLimit(max_body_bytes),
        RequireJSON(),
        Authentication(authenticate),
        *guard.after_auth,
    ]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    routes = served(accounts=gateway.users is not None)  # the one route table (ubot/http/routes.py)
    wiring = Wiring(gateway, authenticate, hub, max_streams, heartbeat_s, openapi.document(routes))
    for route in routes:
        app.add_route(route.template, route.build(wiring))
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(Unavailable, _unavailable)
    app.add_error_handler(NotEnabled, _not_enabled)
    app.set_error_serializer(_serialize_error)
    return app
