"""The request checks every route gets: size, content type, the declared body and query, identity."""

from __future__ import annotations

from typing import Annotated, Literal

import falcon
import falcon.testing
import msgspec
import pytest
from msgspec import Meta

from ubot.http.api import operation
from ubot.http.errors import serialize_error
from ubot.http.middleware import Authentication, BodyLimit, RequireJSON
from ubot.http.shapes import Query

TOKENS = {"good-token": 7}


class EchoBody(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=8)]
    level: Annotated[int, Meta(ge=1, le=3)] | None = None
    tags: list[Literal["a", "b"]] = []


class EchoQuery(Query):
    n: Annotated[int, Meta(ge=1, le=3)] = 1


class Echo:
    @operation("Echo", {200: ("the body", EchoBody)}, body=EchoBody, query=EchoQuery)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = msgspec.to_builtins(req.context.body)
        resp.media = {"body": body, "user": req.context.user_id, "n": req.context.query.n}


class Private(Echo):
    auth_required = True

    @operation("Who", {200: ("the user", None)})
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"user": req.context.user_id}


@pytest.fixture
def client() -> falcon.testing.TestClient:
    app = falcon.App(middleware=[BodyLimit(64), RequireJSON(), Authentication(TOKENS.get)])
    app.set_error_serializer(serialize_error)
    app.add_route("/echo", Echo())
    app.add_route("/private", Private())
    return falcon.testing.TestClient(app)


def test_a_valid_body_reaches_the_resource(client) -> None:
    result = client.simulate_post("/echo", json={"name": "ok", "level": 2})
    assert result.status_code == 200
    assert result.json == {"body": {"name": "ok", "level": 2}, "user": None, "n": 1}


def test_a_body_over_the_limit_is_refused_before_it_is_read(client) -> None:
    result = client.simulate_post("/echo", json={"name": "x" * 100})
    assert result.status_code == 413
    assert result.json["title"] == "Body too large"
    assert "limit is 64" in result.json["description"]


def test_a_chunked_body_without_length_is_refused() -> None:
    # The test client always adds a Content-Length: build the WSGI request by hand.
    req = falcon.testing.create_req(method="POST", path="/echo", headers={"Transfer-Encoding": "chunked"})
    assert req.content_length is None
    with pytest.raises(falcon.HTTPLengthRequired):
        BodyLimit(64).process_request(req, falcon.Response())


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_bodies_must_be_json(client, content_type) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    result = client.simulate_post("/echo", body=b'{"name": "a"}', headers=headers)
    assert result.status_code == 415
    assert set(result.json) == {"title", "description"}


def test_malformed_json_is_a_400_in_the_uniform_shape(client) -> None:
    result = client.simulate_post("/echo", body=b'{"name": ', headers={"Content-Type": "application/json"})
    assert result.status_code == 400
    assert set(result.json) >= {"title", "description"}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "name", "is required"),
        ({"name": ""}, "name", "length >= 1"),
        ({"name": "x" * 9}, "name", "length <= 8"),
        ({"name": 5}, "name", "Expected str, got int"),
        ({"name": "a", "level": 9}, "level", "<= 3"),
        ({"name": "a", "tags": ["a", "zzz"]}, "tags[1]", "must be one of a, b"),
        ({"name": "a", "extra": 1}, "extra", "unknown field"),
        ([], None, "Expected object, got array"),
    ],
)
def test_body_errors_name_the_field(client, body, field, words) -> None:
    result = client.simulate_post("/echo", json=body)
    assert result.status_code == 400
    assert words in result.json["description"]
    assert result.json.get("field") == field
    if field:
        assert result.json["description"].startswith(f"{field}: ")


def test_a_body_error_never_echoes_the_submitted_value(client) -> None:
    for body in ({"name": "SECRETSECRET"}, {"name": "a", "tags": ["SECRET"]}):
        result = client.simulate_post("/echo", json=body)
        assert result.status_code == 400
        assert "SECRET" not in result.text


def test_a_missing_body_is_a_400(client) -> None:
    result = client.simulate_post("/echo")
    assert result.status_code == 400
    assert result.json["title"] == "Missing body"


@pytest.mark.parametrize(
    ("query", "field", "words"),
    [
        ("colour=red", "colour", "unknown field"),
        ("n=2&n=3", "n", "Expected int, got array"),
        ("n=", "n", "Expected int"),
        ("n=9", "n", "<= 3"),
    ],
)
def test_query_errors_name_the_parameter(client, query, field, words) -> None:
    app = client.app
    app.req_options.keep_blank_qs_values = True
    result = client.simulate_post("/echo", json={"name": "a"}, query_string=query)
    assert result.status_code == 400, result.text
    assert (result.json["field"], result.json["title"]) == (field, "Invalid query parameter")
    assert words in result.json["description"]


@pytest.mark.parametrize(
    "authorization", [None, "Basic Z29vZC10b2tlbg==", "Bearer", "Bearer wrong-token", "bearer " + "x" * 600]
)
def test_private_routes_need_a_valid_bearer_token(client, authorization) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    result = client.simulate_get("/private", headers=headers)
    assert result.status_code == 401
    assert result.headers["WWW-Authenticate"] == "Bearer"
    assert set(result.json) == {"title", "description"}


def test_a_valid_token_identifies_the_user(client) -> None:
    result = client.simulate_get("/private", headers={"Authorization": "Bearer good-token"})
    assert result.status_code == 200
    assert result.json == {"user": 7}
    posted = client.simulate_post(
        "/private", json={"name": "a"}, headers={"Authorization": "Bearer good-token"}
    )
    assert posted.json["user"] == 7


def test_identity_is_checked_before_the_body(client) -> None:
    result = client.simulate_post("/private", json={"nope": 1})
    assert result.status_code == 401
