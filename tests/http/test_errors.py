"""Every error is JSON {"title", "description"}; actors that are gone or busy give 503, never 500."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from falcon.testing import TestClient

from tests.http.support import assert_error, gateway_of
from ubot.http.app import create_app
from ubot.http.gateway import Gateway
from ubot.system import stop_system

PATHS = ["/health", "/v1/snapshot", "/v1/coins/BTC/candles", "/v1/coins/BTC/quotes", "/v1/global"]


def test_unknown_route_and_method_are_json_errors(served) -> None:
    body = assert_error(served.client.simulate_get("/v1/nothing-here"), 404)
    assert "/v1/nothing-here" in body["description"]
    assert_error(served.client.simulate_post("/v1/snapshot"), 405)
    assert_error(served.client.simulate_delete("/health"), 405)


def test_errors_are_json_whatever_the_client_accepts(served) -> None:
    for accept in ("application/xml", "text/html", "text/xml;q=1, application/json;q=0.1"):
        result = served.client.simulate_get("/v1/coins/NOPE/candles", headers={"Accept": accept})
        assert_error(result, 404)


def test_stopped_actors_answer_503(served) -> None:
    stop_system(served.actors)
    for path in PATHS:
        assert_error(served.client.simulate_get(path), 503)
    result = served.client.simulate_get("/v1/snapshot")
    assert result.headers["retry-after"]


class _Blocked(pykka.ThreadingActor):
    """Answers nothing until released."""

    def __init__(self, release: threading.Event) -> None:
        super().__init__()
        self.release = release

    def on_receive(self, message: Any) -> Any:
        self.release.wait()


class _Broken(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        raise RuntimeError("secret internals")


@pytest.fixture
def blocked() -> Iterator[pykka.ActorRef]:
    release = threading.Event()
    ref = _Blocked.start(release)
    yield ref
    release.set()
    ref.stop()


@pytest.fixture
def broken() -> Iterator[pykka.ActorRef]:
    ref = _Broken.start()
    yield ref
    ref.stop()


def test_a_busy_actor_answers_503_with_retry_after(blocked) -> None:
    gateway = Gateway(container=blocked, history=blocked, monitor=blocked, clock=blocked, timeout=0.05)
    client = TestClient(create_app(gateway))
    for path in PATHS:
        result = client.simulate_get(path)
        body = assert_error(result, 503)
        assert body["title"] == "Service busy"
        assert result.headers["retry-after"] == "2"


def test_an_actor_failure_is_a_json_500_without_details(broken) -> None:
    gateway = Gateway(container=broken, history=broken, monitor=broken, clock=broken)
    client = TestClient(create_app(gateway))
    for path in PATHS:
        body = assert_error(client.simulate_get(path), 500)
        assert "secret" not in body["description"]


def test_a_gateway_over_a_fresh_system_is_not_ready(idle) -> None:
    """The Container has received nothing: snapshot 503, health 503, history empty but fine."""
    client = TestClient(create_app(gateway_of(idle.actors, now=idle.clock.now)))
    assert_error(client.simulate_get("/v1/snapshot"), 503)
    assert client.simulate_get("/health").status_code == 503
    assert_error(client.simulate_get("/v1/coins/BTC/quotes"), 404)
