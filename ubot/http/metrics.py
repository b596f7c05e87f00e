"""``GET /metrics`` (Prometheus' text format) and the middleware that counts and times every request.

The metrics themselves are declared in :mod:`ubot.metrics`. A request is labelled with its method,
its route *template* (as the OpenAPI document writes it) and its status class, never its raw
path: ``/v1/me/strategies/42`` counts as ``/v1/me/strategies/{strategy_id}``, and a path no route
takes as ``unmatched``. The template comes from the route table through a router of the
middleware's own, so a request refused before Falcon routes it (a 429 from the rate limit) is
labelled with its route all the same.

``RequestMetrics`` is the first middleware (``create_app``): its ``process_response`` runs last, so
it sees the final status, and its time covers every check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import falcon
from falcon.routing import CompiledRouter

from ubot import metrics
from ubot.http.api import operation

if TYPE_CHECKING:
    from ubot.http.routes import Route

#: The route label of a request no route takes.
UNMATCHED = "unmatched"
#: Methods counted under their own name; any other is ``other``.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Counts (``ubot_http_requests_total``) and times (``ubot_http_request_seconds``) every request.
    ``routes``: every route the app may serve (``ubot.http.routes.ROUTES``)."""

    nonblocking = True  # runs on the event loop (ubot/http/asgi.py)

    def __init__(self, routes: Iterable[Route], timer: Callable[[], float] = time.perf_counter) -> None:
        self.timer = timer
        self.router = CompiledRouter()
        self.label: dict[str, str] = {}  # Falcon's template -> the label (its converters left out)
        for route in routes:
            self.router.add_route(route.template, object())  # only the template is asked for
            self.label[route.template] = route.path
        self.router.find("/")  # compiled now, not by two requests at once

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.metrics_started = self.timer()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: Any, req_succeeded: bool
    ) -> None:
        started = getattr(req.context, "metrics_started", None)
        route = self.route_of(req)
        method = req.method if req.method in KNOWN_METHODS else "other"
        metrics.HTTP_REQUESTS.labels(method, route, f"{resp.status_code // 100}xx").inc()
        if started is not None:
            metrics.HTTP_REQUEST_SECONDS.labels(method, route).observe(max(0.0, self.timer() - started))

    def route_of(self, req: falcon.Request) -> str:
        template = req.uri_template
        if template is None:  # refused before routing
            found = self.router.find(req.path)
            template = found[3] if found is not None else None
        return self.label.get(template, UNMATCHED) if template else UNMATCHED


class MetricsResource:
    """``GET /metrics``: this process's metrics (every process's, in multiprocess mode)."""

    @operation(
        "Metrics in Prometheus' text format",
        {200: ("counters and histograms of ticks, scans, alerts, deliveries and requests", "text/plain")},
        description="Operational figures only, no user data; labels are bounded sets (route templates, "
        "channels, outcomes), never an id. Served unless [http] metrics = false.",
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.data = metrics.exposition()
        resp.content_type = metrics.CONTENT_TYPE
        resp.cache_control = ["no-store"]
