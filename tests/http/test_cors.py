"""CORS: an allow-list from [http] cors_origins; preflights answered before authentication."""

from __future__ import annotations

import pytest

from tests.http.protection_app import AUTH_7, client
from ubot.http.cors import CORS

APP = "https://app.example.com"
OTHER = "https://evil.example.net"
ORIGINS = {"UBOT_HTTP_CORS_ORIGINS": f"{APP}, http://localhost:5173"}


def preflight(origin: str, method: str = "GET", headers: str = "authorization") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


def test_without_origins_there_is_no_cors_header_at_all():
    app = client()
    result = app.simulate_get("/v1/global", headers={"Origin": APP})
    assert result.status_code == 200
    assert not [name for name in result.headers if name.lower().startswith("access-control-")]
    assert "Vary" not in result.headers
    answer = app.simulate_options("/v1/me/settings", headers=preflight(APP))
    assert not [name for name in answer.headers if name.lower().startswith("access-control-")]


def test_a_simple_get_from_an_allowed_origin():
    result = client(**ORIGINS).simulate_get("/v1/global", headers={"Origin": APP})
    assert result.status_code == 200
    assert result.headers["Access-Control-Allow-Origin"] == APP
    assert "Access-Control-Allow-Credentials" not in result.headers
    exposed = {name.strip() for name in result.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Retry-After", "X-Request-ID", "ETag", "Location"} <= exposed
    assert result.headers["Vary"] == "Origin"


def test_a_simple_get_from_a_refused_origin_gets_no_cors_header():
    result = client(**ORIGINS).simulate_get("/v1/global", headers={"Origin": OTHER})
    assert result.status_code == 200  # the browser, not the server, withholds the body
    assert "Access-Control-Allow-Origin" not in result.headers
    assert "Access-Control-Expose-Headers" not in result.headers
    assert result.headers["Vary"] == "Origin"


def test_a_preflight_for_a_private_resource_is_answered_before_authentication():
    result = client(**ORIGINS).simulate_options(
        "/v1/me/settings", headers=preflight(APP, "PUT", "authorization, content-type")
    )
    assert result.status_code == 200  # not 401: a browser sends no credentials on a preflight
    assert result.headers["Access-Control-Allow-Origin"] == APP
    methods = {m.strip() for m in result.headers["Access-Control-Allow-Methods"].split(",")}
    assert methods == {"GET", "PUT", "DELETE", "OPTIONS"}
    assert result.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert result.headers["Access-Control-Max-Age"] == "86400"
    assert "Allow" not in result.headers
    assert result.content == b""


def test_the_real_request_after_the_preflight_carries_the_token():
    app = client(**ORIGINS)
    result = app.simulate_put("/v1/me/settings", json={"a": 1}, headers={"Origin": APP, **AUTH_7})
    assert result.status_code == 200 and result.json["user"] == 7
    assert result.headers["Access-Control-Allow-Origin"] == APP


def test_a_preflight_from_a_refused_origin_allows_nothing():
    result = client(**ORIGINS).simulate_options("/v1/me/settings", headers=preflight(OTHER, "PUT"))
    assert "Access-Control-Allow-Origin" not in result.headers
    assert "Access-Control-Allow-Methods" not in result.headers
    assert "Access-Control-Allow-Headers" not in result.headers


def test_a_preflight_for_login_is_answered():
    result = client(**ORIGINS).simulate_options(
        "/v1/sessions", headers=preflight("http://localhost:5173", "POST", "content-type")
    )
    assert result.status_code == 200
    assert result.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    assert "POST" in result.headers["Access-Control-Allow-Methods"]


def test_a_preflight_for_a_route_that_does_not_exist_is_a_404():
    result = client(**ORIGINS).simulate_options("/v1/nowhere", headers=preflight(APP))
    assert result.status_code == 404
    assert "Access-Control-Allow-Methods" not in result.headers


def test_errors_carry_cors_headers_so_the_page_can_read_them():
    app = client(**ORIGINS, UBOT_LIMITS_PER_CLIENT_RATE="1", UBOT_LIMITS_PER_CLIENT_BURST="1")
    assert app.simulate_get("/v1/me/settings", headers={"Origin": APP}).status_code == 401
    refused = app.simulate_get("/v1/global", headers={"Origin": APP})
    assert refused.status_code == 429
    assert refused.headers["Access-Control-Allow-Origin"] == APP
    assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"]


def test_an_ordinary_options_request_is_not_a_preflight():
    assert client(**ORIGINS).simulate_options("/v1/me/settings").status_code == 401


def test_any_origin():
    result = client(UBOT_HTTP_CORS_ORIGINS="*").simulate_get("/v1/global", headers={"Origin": OTHER})
    assert result.headers["Access-Control-Allow-Origin"] == "*"
    assert "Vary" not in result.headers


def test_cors_needs_an_origin():
    with pytest.raises(ValueError):
        CORS(())
