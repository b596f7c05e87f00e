"""``GET /openapi.json``: a valid OpenAPI 3.1 document of exactly the routes the app serves.

The routes come from one table (``ubot.http.routes.ROUTES``), each responder's parameters, body and
answers from its ``@operation`` declaration, the schemas from the shapes (msgspec); these tests walk
Falcon's router of a built app, so a route added any other way, or a responder without a
declaration, fails here. tests/test_contract.py checks the answers against the document.
"""

from __future__ import annotations

import msgspec
import pytest
import schemathesis
from falcon.testing import TestClient
from jsonschema import Draft202012Validator

from ubot.http import openapi, shapes
from ubot.http.app import create_app
from ubot.http.routes import ROUTES, Route, served
from ubot.market.candles import TIMEFRAMES

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
            if method == "WEBSOCKET":  # not an HTTP method: GET /v1/ws's operation describes it
                continue
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
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_a_responder_without_a_declaration_stops_the_document() -> None:
    class Extra:
        def on_get(self, req, resp) -> None: ...

    with pytest.raises(LookupError, match="no @operation declaration"):
        openapi.check((*ROUTES, Route("/v1/extra", Extra, lambda wiring: Extra())))


def test_every_get_route_answers_head_too(canned) -> None:
    document = openapi.document()
    for path, item in document["paths"].items():
        assert ("get" in item) == ("head" in item), path
    client = TestClient(create_app(canned.gateway))
    head = client.simulate_head("/openapi.json")
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(client.simulate_get("/openapi.json").content)


def test_request_bodies_are_the_shapes_the_gateway_decodes_into() -> None:
    document = openapi.document()
    schemas = document["components"]["schemas"]
    bodies = {"Registration", "Credentials", "PasswordChange", "Settings", "SettingsPatch"}
    bodies |= {"Strategy", "StrategyPatch", "ConditionText"}
    for item in document["paths"].values():
        for op in item.values():
            if "requestBody" in op:
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                bodies.discard(ref.rsplit("/", 1)[1])
    assert not bodies
    assert schemas["Strategy"]["properties"]["timeframe"] == {"enum": sorted(TIMEFRAMES)}
    assert schemas["Strategy"]["properties"]["condition"]["maxLength"] == 500
    assert schemas["Registration"]["properties"]["password"]["maxLength"] == 256
    assert schemas["Strategy"]["additionalProperties"] is False


def test_every_example_body_fits_its_schema() -> None:
    document = openapi.document()
    for path, item in document["paths"].items():
        for method, op in item.items():
            if "requestBody" not in op:
                continue
            media = op["requestBody"]["content"]["application/json"]
            schema = {**media["schema"], "components": document["components"]}
            assert Draft202012Validator(schema).is_valid(media["example"]), (path, method)


def test_rules_a_schema_cannot_state_are_declared_as_422s() -> None:
    paths = openapi.document()["paths"]
    assert "expiry in the past" in paths["/v1/me/strategies"]["post"]["responses"]["422"]["description"]
    assert "condition" in paths["/v1/me/strategies/{strategy_id}"]["patch"]["responses"]["422"]["description"]
    assert "start time is after" in paths["/v1/global"]["get"]["responses"]["422"]["description"]


def test_every_operation_refuses_unknown_query_parameters_with_a_400() -> None:
    for path, item in openapi.document()["paths"].items():
        for method, op in item.items():
            assert "400" in op["responses"], (path, method)


def test_the_servers_own_refusals_and_the_gzip_headers_are_declared() -> None:
    """gunicorn's 400/414/431 (tests/test_gunicorn.py) on every operation, in the error shape; Vary on
    every JSON answer and every 304, Content-Encoding on every JSON 2xx (tests/test_compress.py)."""
    document = openapi.document()
    assert set(document["components"]["headers"]) == {"Vary", "Content-Encoding"}
    assert "414" in document["info"]["description"] and "431" in document["info"]["description"]
    error = {"$ref": "#/components/schemas/Error"}
    for path, item in document["paths"].items():
        for method, op in item.items():
            responses = op["responses"]
            assert {"400", "414", "431"} <= set(responses), (path, method)
            if method == "head":
                continue
            for status in ("414", "431"):
                assert responses[status]["content"]["application/json"]["schema"] == error
            for status, response in responses.items():
                headers = response.get("headers", {})
                if "application/json" in response.get("content", {}) or status == "304":
                    assert headers["Vary"] == {"$ref": "#/components/headers/Vary"}, (path, method, status)
                if "application/json" in response.get("content", {}) and status.startswith("2"):
                    assert "Content-Encoding" in headers, (path, method, status)


@pytest.mark.parametrize("strategy_id", [7, None], ids=["strategy", "deleted strategy"])
def test_an_alert_as_listed_fits_its_shape(strategy_id) -> None:
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
    msgspec.convert(alert_event(alert), shapes.Alert)
