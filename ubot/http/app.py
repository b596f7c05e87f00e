"""The Falcon app factory: routes, uniform JSON errors."""

from __future__ import annotations

import logging

import falcon

from ubot.http.alerts import AlertsResource
from ubot.http.gateway import Gateway, NotEnabled, Unavailable
from ubot.http.middleware import Authentication, BodyLimit, RequireJSON
from ubot.http.resources import (
    CandlesResource,
    GlobalResource,
    HealthResource,
    QuotesResource,
    SnapshotResource,
)
from ubot.http.stream import DEFAULT_HEARTBEAT_S, DEFAULT_MAX_STREAMS, StreamResource
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


def _add_user_routes(app: falcon.App, gateway: Gateway) -> None:
    from ubot.http import users

    app.add_route("/v1/users", users.UsersResource(gateway))
    app.add_route("/v1/sessions", users.SessionsResource(gateway))
    app.add_route("/v1/sessions/current", users.CurrentSessionResource(gateway))
    app.add_route("/v1/me/sessions", users.AllSessionsResource(gateway))
    app.add_route("/v1/me/password", users.PasswordResource(gateway))
    app.add_route("/v1/me/settings", users.SettingsResource(gateway))
    app.add_route("/v1/me/strategies", users.StrategiesResource(gateway))
    app.add_route(
        "/v1/me/strategies/{strategy_id:int(min=1, max=4611686018427387904)}", users.StrategyResource(gateway)
    )
    app.add_route("/v1/conditions/validate", users.ConditionsResource(gateway))


def create_app(
    gateway: Gateway,
    max_body_bytes: int = 16_384,
    *,
    hub: StreamHub | None = None,
    max_streams: int = DEFAULT_MAX_STREAMS,
    heartbeat_s: float = DEFAULT_HEARTBEAT_S,
) -> falcon.App:
    """Build the WSGI app. Errors are JSON ``{"title": ..., "description": ...}``.

    ``hub``: where ``GET /v1/stream`` reads live events (without one the route answers 503), at
    most ``max_streams`` at once, a heartbeat every ``heartbeat_s`` seconds.
    """
    authenticate = gateway.authenticate if gateway.users is not None else None
    middleware: list = [BodyLimit(max_body_bytes), RequireJSON(), Authentication(authenticate)]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.add_route("/health", HealthResource(gateway))
    app.add_route("/v1/snapshot", SnapshotResource(gateway))
    app.add_route("/v1/coins/{key}/candles", CandlesResource(gateway))
    app.add_route("/v1/coins/{key}/quotes", QuotesResource(gateway))
    app.add_route("/v1/global", GlobalResource(gateway))
    app.add_route("/v1/me/alerts", AlertsResource(gateway))
    app.add_route(
        "/v1/stream",
        StreamResource(hub, authenticate, max_streams=max_streams, heartbeat_s=heartbeat_s),
    )
    if gateway.users is not None:
        _add_user_routes(app, gateway)
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(Unavailable, _unavailable)
    app.add_error_handler(NotEnabled, _not_enabled)
    app.set_error_serializer(_serialize_error)
    return app
