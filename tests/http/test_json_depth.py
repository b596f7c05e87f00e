"""Deeply nested JSON (issue 12): 8,000 nested arrays inside 16 KiB made msgspec raise RecursionError,
a 500 and a traceback in the log. Every route that takes a JSON body refuses it with a 400 naming the
nesting limit, before decoding."""

from __future__ import annotations

import logging

import pytest
from falcon.testing import TestClient

from tests.http.conftest import Canned
from ubot.http.api import MAX_JSON_DEPTH, json_depth
from ubot.http.app import create_app

BOMB = b"[" * 8000 + b"]" * 8000  # 16,000 bytes


@pytest.fixture
def client(canned: Canned) -> TestClient:
    return TestClient(create_app(canned.gateway))


def body_routes(client: TestClient) -> list[tuple[str, str]]:
    document = client.simulate_get("/openapi.json").json
    routes = [
        (method.upper(), path.replace("{strategy_id}", "1"))
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]
    assert ("POST", "/v1/users") in routes and ("PUT", "/v1/me/strategies/1") in routes
    return routes


def test_every_json_route_refuses_deep_nesting_with_a_400_naming_the_limit(client, caplog) -> None:
    headers = {"Authorization": "Bearer token-of-7", "Content-Type": "application/json"}
    with caplog.at_level(logging.WARNING):
        for method, path in body_routes(client):
            answer = client.simulate_request(method, path, body=BOMB, headers=headers)

            assert answer.status_code == 400, (method, path, answer.text)
            assert answer.json["title"] == "JSON nested too deeply"
            assert f"8000 levels deep; at most {MAX_JSON_DEPTH}" in answer.json["description"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_limit_itself_is_accepted_one_more_is_not(client) -> None:
    headers = {"Content-Type": "application/json"}
    at_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    over = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)

    assert (
        client.simulate_post("/v1/users", body=at_limit, headers=headers).json["title"]
        == "Invalid request body"
    )
    assert (
        client.simulate_post("/v1/users", body=over, headers=headers).json["title"]
        == "JSON nested too deeply"
    )


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b'{"name": "x", "symbols": ["BTC"]}', 2),
        (b'["[[[[[[", "\\"[[[", "\\\\", {"a": []}]', 3),
        (b"[]" * 1000, 1),
        (b'"' + b"[" * 100, 0),  # brackets in a string left open do not count
        (b'"\\' * 1000, 0),
        (b"", 0),
    ],
)
def test_the_depth_scan_skips_strings(raw: bytes, depth: int) -> None:
    assert json_depth(raw) == depth
