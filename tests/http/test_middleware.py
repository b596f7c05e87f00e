"""The request checks every route gets: size, content type, schema, identity."""

from __future__ import annotations

import falcon
import falcon.testing
import pytest

from ubot.http.errors import serialize_error
from ubot.http.middleware import Authentication, BodyLimit, RequireJSON, validated

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 8},
        "level": {"type": "integer", "minimum": 1, "maximum": 3},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
    },
}
TOKENS = {"good-token": 7}


class Echo:
    @validated(SCHEMA)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"body": req.context.body, "user": req.context.user_id}


class Private(Echo):
    auth_required = True

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
    assert result.json == {"body": {"name": "ok", "level": 2}, "user": None}


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
        ({}, None, "'name' is a required property"),
        ({"name": ""}, "name", "at least 1 characters"),
        ({"name": "x" * 9}, "name", "at most 8 characters"),
        ({"name": 5}, "name", "of type string"),
        ({"name": "a", "level": 9}, "level", "<= 3"),
        ({"name": "a", "tags": ["a", "zzz"]}, "tags.1", "one of a, b"),
        ({"name": "a", "extra": 1}, None, "'extra' was unexpected"),
    ],
)
def test_schema_errors_name_the_field(client, body, field, words) -> None:
    result = client.simulate_post("/echo", json=body)
    assert result.status_code == 400
    assert words in result.json["description"]
    assert result.json.get("field") == field
    if field:
        assert result.json["description"].startswith(f"{field}: ")


def test_a_schema_error_never_echoes_the_submitted_value(client) -> None:
    result = client.simulate_post("/echo", json={"name": "SECRETSECRET"})
    assert result.status_code == 400
    assert "SECRET" not in result.text


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
