"""``GET /openapi.json``: a valid OpenAPI 3.1 document of exactly the routes the app serves.

The routes come from one table (``ubot.http.routes.ROUTES``); these tests walk Falcon's router of a
built app, so a route added any other way, a responder without a description, or a description
without a responder fails here. tests/test_contract.py checks the answers against the document.
"""

from __future__ import annotations

import pytest
import schemathesis
from falcon.testing import TestClient
from jsonschema import Draft202012Validator

from ubot.http import openapi, users
from ubot.http.app import create_app
from ubot.http.routes import ROUTES, Route, served

METHODS = ("get", "head", "post", "put", "patch", "delete")


def _served_by(app) -> set[tuple[str, str]]:
    """(OpenAPI path, method) of every responder the app's router really has: the resources' own
    ``on_<method>``, not Falcon's 405 or default OPTIONS responders."""
    found, nodes = set(), list(app._router._roots)
    while nodes:
        node = nodes.pop()
        nodes.extend(node.children)
        if node.resource is None:
            continue
        path = Route(node.uri_template, type(node.resource), lambda wiring: None).path
        for method, responder in node.method_map.items():
            if getattr(responder, "__self__", None) is node.resource:
                found.add((path, method.lower()))
    return found


def _described(document: dict) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


@pytest.mark.parametrize("accounts", [True, False], ids=["with accounts", "without accounts"])
def test_the_document_describes_exactly_what_the_app_serves(canned, accounts) -> None:
    if not accounts:
        canned.gateway.users = None
    app = create_app(canned.gateway)
    answer = TestClient(app).simulate_get("/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    assert _described(answer.json) == _served_by(app)
    assert answer.json == openapi.document(served(accounts))
    assert (("/v1/users", "post") in _served_by(app)) is accounts


def test_the_document_is_valid_openapi_3_1() -> None:
    document = openapi.document()
    assert document["openapi"].startswith("3.1")
    schemathesis.openapi.from_dict(document).validate()
    for schema in openapi.SCHEMAS.values():
        Draft202012Validator.check_schema(schema)


def test_every_route_of_the_table_is_described_and_nothing_else() -> None:
    openapi.check(ROUTES)
    assert set(openapi.OPERATIONS) == {route.path for route in ROUTES}


def test_a_route_without_a_description_stops_the_document() -> None:
    class Extra:
        def on_get(self, req, resp) -> None: ...

    with pytest.raises(LookupError, match="undescribed"):
        openapi.check((*ROUTES, Route("/v1/extra", Extra, lambda wiring: Extra())))


def test_a_description_without_a_route_stops_the_document() -> None:
    with pytest.raises(LookupError, match="not served"):
        openapi.check(route for route in ROUTES if route.path != "/v1/global")


def test_request_bodies_are_the_schemas_the_gateway_validates_with() -> None:
    bodies = {"Register": users.REGISTER, "Login": users.LOGIN, "Condition": users.CONDITION}
    bodies |= {"StrategyInput": users.STRATEGY, "StrategyPatch": users.STRATEGY_PATCH}
    bodies |= {"SettingsUpdate": users.SETTINGS, "PasswordChange": users.PASSWORD_CHANGE}
    for name, schema in bodies.items():
        assert openapi.SCHEMAS[name] is schema


def test_every_example_body_fits_its_schema() -> None:
    for path, methods in openapi.OPERATIONS.items():
        for method, operation in methods.items():
            if "requestBody" not in operation:
                continue
            media = operation["requestBody"]["content"]["application/json"]
            name = media["schema"]["$ref"].rsplit("/", 1)[1]
            assert Draft202012Validator(openapi.SCHEMAS[name]).is_valid(media["example"]), (path, method)


@pytest.mark.parametrize("strategy_id", [7, None], ids=["strategy", "deleted strategy"])
def test_an_alert_as_listed_fits_the_document(strategy_id) -> None:
    from ubot.notify.messages import AlertView, DeliveryView
    from ubot.stream.events import alert_event

    alert = AlertView(
        id=3,
        strategy_id=strategy_id,
        strategy_name="BTC breakout",
        coin_id=1,
        symbol="BTC",
        timeframe="1m",
        fired_at_ms=1729037165400,
        values={"price": 67500.0, "rsi(14)": None},
        text="BTC: price > 67400 (1m)",
        deliveries=(DeliveryView("webhook", "sent", 1, None, 1729037166000),),
    )
    Draft202012Validator(openapi.SCHEMAS["Alert"]).validate(alert_event(alert))
