"""The Falcon app factory: routes, uniform JSON errors."""

from __future__ import annotations

import logging

import falcon

from ubot.http.gateway import Gateway, Unavailable
from ubot.http.middleware import Authentication, BodyLimit, RequireJSON
from ubot.http.resources import (
    CandlesResource,
    GlobalResource,
    HealthResource,
    QuotesResource,
    SnapshotResource,
)

log = logging.getLogger(__name__)


def _unavailable(req: falcon.Request, resp: falcon.Response, exc: Unavailable, params: dict) -> None:
    log.warning("%s %s: %s", req.method, req.path, exc)
    raise falcon.HTTPServiceUnavailable(
        title="Service busy", description="uBot did not answer in time; try again", retry_after=2
    )


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


def create_app(gateway: Gateway, max_body_bytes: int = 16_384) -> falcon.App:
    """Build the WSGI app. Errors are JSON ``{"title": ..., "description": ...}``."""
    middleware: list = [BodyLimit(max_body_bytes), RequireJSON()]
    if gateway.users is not None:
        middleware.append(Authentication(gateway.authenticate))
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.add_route("/health", HealthResource(gateway))
    app.add_route("/v1/snapshot", SnapshotResource(gateway))
    app.add_route("/v1/coins/{key}/candles", CandlesResource(gateway))
    app.add_route("/v1/coins/{key}/quotes", QuotesResource(gateway))
    app.add_route("/v1/global", GlobalResource(gateway))
    if gateway.users is not None:
        _add_user_routes(app, gateway)
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(Unavailable, _unavailable)
    app.set_error_serializer(_serialize_error)
    return app
