"""``GET /metrics`` and the request metrics, through the real app (``create_app``) over stand-in actors.

Requests are counted by method, route template and status class, and timed; the exposition parses
with prometheus_client's own parser; no label carries an id or a raw path; ``[http] metrics = false``
takes the route (and its entry in the OpenAPI document) away, not the counting.
"""

from __future__ import annotations

import pytest
from falcon.testing import TestClient

from tests.http.protection_app import settings
from tests.support.metrics import parse, value
from ubot.clocks import FakeClock
from ubot.http.app import create_app
from ubot.http.metrics import UNMATCHED
from ubot.http.protection import protection_middleware
from ubot.http.routes import ROUTES

REQUESTS = "ubot_http_requests_total"
SECONDS = "ubot_http_request_seconds_count"
#: Every label name uBot's own metrics use (``le``: a histogram's buckets).
LABELS = {"outcome", "stage", "channel", "method", "route", "status", "le"}


@pytest.fixture
def client(canned) -> TestClient:
    return TestClient(create_app(canned.gateway))


def scrape(client: TestClient) -> dict:
    result = client.simulate_get("/metrics")
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("text/plain")
    return parse(result.text)


def test_a_request_is_counted_and_timed_under_its_route_template(client) -> None:
    before = scrape(client)

    assert client.simulate_get("/v1/me/strategies/4242").status_code == 401
    assert client.simulate_get("/v1/me/strategies/4243").status_code == 401
    assert client.simulate_get("/no/such/path/4244").status_code == 404

    after = scrape(client)
    template = "/v1/me/strategies/{strategy_id}"

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved(REQUESTS, method="GET", route=template, status="4xx") == 2
    assert moved(SECONDS, method="GET", route=template) == 2
    assert moved(REQUESTS, method="GET", route=UNMATCHED, status="4xx") == 1
    assert moved(REQUESTS, method="GET", route="/metrics", status="2xx") == 1  # the first scrape


def test_no_label_carries_an_id_or_a_raw_path(client) -> None:
    client.simulate_get("/v1/me/strategies/987654321")
    client.simulate_get("/v1/coins/ZZTOP/candles")
    client.simulate_request("TRACE", "/v1/snapshot/555")
    text = client.simulate_get("/metrics").text

    assert "987654321" not in text and "ZZTOP" not in text and "555" not in text
    samples = parse(text)
    names = {name for (metric, labels) in samples if metric.startswith("ubot_") for name, _ in labels}
    assert names <= LABELS
    routes = {
        v for (metric, labels) in samples if metric.startswith("ubot_") for k, v in labels if k == "route"
    }
    assert routes <= {route.path for route in ROUTES} | {UNMATCHED}
    assert "/v1/coins/{key}/candles" in routes
    methods = {v for (metric, labels) in samples if metric == REQUESTS for k, v in labels if k == "method"}
    assert "TRACE" not in methods and "other" in methods


def test_a_request_refused_before_routing_keeps_its_route(canned) -> None:
    loaded = settings(UBOT_LIMITS_PER_CLIENT_BURST="1", UBOT_LIMITS_PER_CLIENT_RATE="0.01")
    protection = protection_middleware(loaded.http, loaded.limits, clock=FakeClock())
    client = TestClient(create_app(canned.gateway, protection=protection))
    before = parse(client.simulate_get("/metrics").text)  # the client's one request

    assert client.simulate_get("/v1/global").status_code == 429
    assert client.simulate_get("/metrics").status_code == 429

    after = parse(create_app_metrics(canned))
    labels = {"method": "GET", "route": "/v1/global", "status": "4xx"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 1


def create_app_metrics(canned) -> str:
    """The exposition, read through another app (the rate-limited one refuses this client now)."""
    return TestClient(create_app(canned.gateway)).simulate_get("/metrics").text


def test_the_exposition_answers_head_and_is_declared_as_text(client) -> None:
    head = client.simulate_head("/metrics")
    assert head.status_code == 200 and head.text == ""
    assert head.headers["cache-control"] == "no-store"
    document = client.simulate_get("/openapi.json").json
    answer = document["paths"]["/metrics"]["get"]["responses"]["200"]
    assert list(answer["content"]) == ["text/plain"]
    assert "security" not in document["paths"]["/metrics"]["get"]  # public, like /health


def test_metrics_off_takes_the_route_away_but_still_counts(canned) -> None:
    off = TestClient(create_app(canned.gateway, metrics=False))
    assert off.simulate_get("/metrics").status_code == 404
    assert "/metrics" not in off.simulate_get("/openapi.json").json["paths"]

    before = parse(create_app_metrics(canned))
    off.simulate_get("/openapi.json")
    after = parse(create_app_metrics(canned))
    labels = {"method": "GET", "route": "/openapi.json", "status": "2xx"}
    assert value(after, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 1


def test_the_setting_reads_true_by_default_and_false_when_set() -> None:
    assert settings().http.metrics is True
    assert settings(UBOT_HTTP_METRICS="false").http.metrics is False
