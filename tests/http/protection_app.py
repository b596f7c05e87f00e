"""A small Falcon app behind the protection middleware, wired as ``create_app`` is told to wire it,
with stand-in resources on the real paths (the tests of ratelimit, CORS, headers, request ids and the
access log use it)."""

from __future__ import annotations

import logging
from typing import Any

import falcon
from falcon.testing import TestClient

from ubot.clocks import FakeClock
from ubot.config import load_settings
from ubot.http.errors import serialize_error
from ubot.http.middleware import Authentication, BodyLimit, RequireJSON
from ubot.http.protection import protection_middleware

TOKENS = {"token-of-7": 7, "token-of-8": 8}
AUTH_7 = {"Authorization": "Bearer token-of-7"}
AUTH_8 = {"Authorization": "Bearer token-of-8"}


class Public:
    def on_get(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        logging.getLogger("ubot.test").info("serving %s", req.path)
        resp.media = {"ok": True, "request_id": req.context.request_id}


class Cached:
    """Like the snapshot: its own Cache-Control and ETag."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.etag = '"v1"'
        resp.cache_control = ["no-cache"]
        resp.media = {"cached": True}


class Private:
    auth_required = True

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"user": req.context.user_id}

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"user": req.context.user_id, "body": req.get_media()}

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_204


class CachedPrivate(Private):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.cache_control = ["private", "max-age=5"]
        resp.media = {"user": req.context.user_id}


class Created:
    """Stands in for login and sign-up."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_201
        resp.media = {"token": "secret-session-token"}


class Stream:
    auth_optional = True
    token_param = "access_token"

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/event-stream"
        resp.cache_control = ["no-cache"]
        resp.stream = iter([b": hello\n\n"])


class Crash:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPBadRequest(title="Bad", description="always")


def settings(**environ: str) -> Any:
    """Settings from the defaults and ``UBOT_*`` variables (``settings(UBOT_HTTP_HSTS="true")``)."""
    return load_settings(None, environ=environ)


def protected_app(clock: FakeClock | None = None, **environ: str) -> falcon.App:
    loaded = settings(**environ)
    protection = protection_middleware(loaded.http, loaded.limits, clock=clock or FakeClock())
    middleware = [
        *protection.before_auth,
        BodyLimit(1024),
        RequireJSON(),
        Authentication(TOKENS.get),
        *protection.after_auth,
    ]
    app = falcon.App(middleware=middleware)
    app.req_options.strip_url_path_trailing_slash = True
    app.set_error_serializer(serialize_error)
    app.add_route("/health", Public())
    app.add_route("/openapi.json", Public())
    app.add_route("/ui/{version}/{name}", Public())  # the dashboard's files
    app.add_route("/v1/global", Public())
    app.add_route("/v1/snapshot", Cached())
    app.add_route("/v1/users", Created())
    app.add_route("/v1/sessions", Created())
    app.add_route("/v1/me/settings", Private())
    app.add_route("/v1/me/cached", CachedPrivate())
    app.add_route("/v1/stream", Stream())
    app.add_route("/v1/crash", Crash())
    return app


def client(clock: FakeClock | None = None, **environ: str) -> TestClient:
    return TestClient(protected_app(clock, **environ))
