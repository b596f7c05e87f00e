"""Every route of the gateway, in one table: ``create_app`` adds these and no other, and the OpenAPI
document (:mod:`ubot.http.openapi`) describes exactly these, so the two cannot drift apart.

A :class:`Route` names its Falcon URI template, its resource class and how to build the resource
from a :class:`Wiring` (what ``create_app`` was given). ``accounts`` routes are served only when
the UserManager is wired (``Gateway.users``). The methods a route serves are its resource's
``on_<method>`` responders. ``metrics`` routes (``GET /metrics``) are served unless ``[http] metrics``
is false.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ubot.http import users
from ubot.http.alerts import AlertsResource
from ubot.http.api import operation
from ubot.http.asgi import Offload
from ubot.http.dashboard import AssetResource, Bundle, DashboardResource
from ubot.http.dryrun import ConditionDryRunResource, StrategyDryRunResource
from ubot.http.gateway import Gateway
from ubot.http.metrics import MetricsResource
from ubot.http.resources import (
    CandlesResource,
    GlobalResource,
    HealthResource,
    OverlayResource,
    QuotesResource,
    SnapshotResource,
)
from ubot.http.stream import StreamResource
from ubot.http.telegram import TelegramWebhookResource
from ubot.http.ws import WebSocketResource
from ubot.stream.hub import StreamHub
from ubot.stream.slots import StreamCaps, StreamSlots

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
OPENAPI_PATH = "/openapi.json"


@dataclass(frozen=True)
class Wiring:
    """What the resources are built from (``create_app``'s arguments, and the document)."""

    gateway: Gateway
    authenticate: Callable[[str], int | None] | None
    hub: StreamHub | None
    stream_caps: StreamCaps
    heartbeat_s: float
    document: dict[str, Any]
    offload: Offload | None = None  # the blocking-work pool (ubot/http/asgi.py)
    slots: StreamSlots | None = None  # the open streams and WebSockets, counted together


class OpenAPIResource:
    """``GET /openapi.json``: the OpenAPI 3.1 document of this app's routes."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    @operation("This document", {200: ("the OpenAPI 3.1 document", dict[str, Any])})
    def on_get(self, req: Any, resp: Any) -> None:
        resp.media = self.document
        resp.cache_control = ["no-cache"]


@dataclass(frozen=True)
class Route:
    template: str  # Falcon's URI template, field converters included
    resource: type
    build: Callable[[Wiring], Any]
    accounts: bool = False
    metrics: bool = False

    @property
    def path(self) -> str:
        """The OpenAPI path: the template without converters (``{id:int(min=1)}`` -> ``{id}``)."""
        return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", self.template)

    @property
    def methods(self) -> tuple[str, ...]:
        """The HTTP methods the resource has a responder for (Falcon's default OPTIONS aside); every
        GET route answers HEAD too (:func:`with_head`)."""
        has = {m for m in METHODS if callable(getattr(self.resource, f"on_{m.lower()}", None))}
        if "GET" in has:
            has.add("HEAD")
        return tuple(m for m in METHODS if m in has)


def with_head(resource: Any) -> Any:
    """``resource``, answering HEAD as GET when it has no HEAD responder of its own (Falcon sends
    the headers only)."""
    if callable(getattr(resource, "on_get", None)) and not callable(getattr(resource, "on_head", None)):
        resource.on_head = resource.on_get
    return resource


def _on_gateway(resource: type) -> Callable[[Wiring], Any]:
    return lambda wiring: resource(wiring.gateway)


def _stream(wiring: Wiring) -> StreamResource:
    return StreamResource(
        wiring.hub,
        wiring.authenticate,
        caps=wiring.stream_caps,
        heartbeat_s=wiring.heartbeat_s,
        offload=wiring.offload,
        slots=wiring.slots,
    )


def _ws(wiring: Wiring) -> WebSocketResource:
    return WebSocketResource(_stream(wiring), wiring.gateway)


def _route(template: str, resource: type, *, accounts: bool = False) -> Route:
    return Route(template, resource, _on_gateway(resource), accounts)


ROUTES: tuple[Route, ...] = (
    Route("/", DashboardResource, lambda wiring: DashboardResource(Bundle.packaged())),
    Route("/ui/{version}/{name}", AssetResource, lambda wiring: AssetResource(Bundle.packaged())),
    Route(OPENAPI_PATH, OpenAPIResource, lambda wiring: OpenAPIResource(wiring.document)),
    _route("/health", HealthResource),
    Route("/metrics", MetricsResource, lambda wiring: MetricsResource(), metrics=True),
    _route("/v1/snapshot", SnapshotResource),
    _route("/v1/coins/{key}/candles", CandlesResource),
    _route("/v1/coins/{key}/overlay", OverlayResource),
    _route("/v1/coins/{key}/quotes", QuotesResource),
    _route("/v1/global", GlobalResource),
    _route("/v1/me/alerts", AlertsResource),
    Route("/v1/stream", StreamResource, _stream),
    Route("/v1/ws", WebSocketResource, _ws),
    _route("/v1/users", users.UsersResource, accounts=True),
    _route("/v1/sessions", users.SessionsResource, accounts=True),
    _route("/v1/sessions/browser", users.BrowserSessionResource, accounts=True),
    _route("/v1/sessions/current", users.CurrentSessionResource, accounts=True),
    _route("/v1/me/sessions", users.AllSessionsResource, accounts=True),
    _route(
        "/v1/me/sessions/{session_id:int(min=1, max=4611686018427387904)}",
        users.SessionResource,
        accounts=True,
    ),
    _route("/v1/me/password", users.PasswordResource, accounts=True),
    _route("/v1/me/settings", users.SettingsResource, accounts=True),
    _route("/v1/me/strategies", users.StrategiesResource, accounts=True),
    _route(
        "/v1/me/strategies/{strategy_id:int(min=1, max=4611686018427387904)}",
        users.StrategyResource,
        accounts=True,
    ),
    _route(
        "/v1/me/strategies/{strategy_id:int(min=1, max=4611686018427387904)}/dry-run",
        StrategyDryRunResource,
        accounts=True,
    ),
    _route("/v1/conditions/validate", users.ConditionsResource, accounts=True),
    _route("/v1/channels", users.ChannelsResource),
    _route("/v1/me/channels/{channel}/test", users.ChannelTestResource, accounts=True),
    _route("/v1/me/destinations/{channel}/verify", users.DestinationVerifyResource, accounts=True),
    _route("/v1/me/destinations/{channel}/confirm", users.DestinationConfirmResource, accounts=True),
    _route("/v1/destinations/confirm", users.DestinationLinkResource, accounts=True),
    _route("/v1/conditions/dry-run", ConditionDryRunResource, accounts=True),
    _route("/v1/telegram/{secret}", TelegramWebhookResource, accounts=True),
)


def served(accounts: bool, metrics: bool = True) -> tuple[Route, ...]:
    """The routes an app serves, with or without the account routes and ``GET /metrics``."""
    return tuple(
        route for route in ROUTES if (accounts or not route.accounts) and (metrics or not route.metrics)
    )
