"""Security headers on every response; no-store on the account routes; HSTS only when configured."""

from __future__ import annotations

import pytest

from tests.http.protection_app import AUTH_7, client

SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/global", 200),
        ("GET", "/health", 200),
        ("GET", "/v1/snapshot", 200),
        ("GET", "/v1/me/settings", 401),
        ("GET", "/v1/nowhere", 404),
        ("POST", "/v1/global", 405),
        ("GET", "/v1/crash", 400),
        ("POST", "/v1/sessions", 201),
        ("GET", "/v1/stream", 200),
    ],
)
def test_every_response_carries_the_security_headers(method, path, status):
    result = client().simulate_request(method, path, json={} if method == "POST" else None)
    assert result.status_code == status
    for name, value in SECURITY.items():
        assert result.headers[name] == value
    assert "Strict-Transport-Security" not in result.headers


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/me/settings"), ("POST", "/v1/sessions"), ("POST", "/v1/users"), ("GET", "/v1/me/nowhere")],
)
def test_account_routes_are_not_stored(method, path):
    result = client().simulate_request(method, path, json={} if method == "POST" else None, headers=AUTH_7)
    assert result.headers["Cache-Control"] == "no-store"


def test_a_cache_control_set_by_the_resource_is_kept():
    app = client()
    assert app.simulate_get("/v1/snapshot").headers["Cache-Control"] == "no-cache"
    assert app.simulate_get("/v1/snapshot").headers["ETag"] == '"v1"'
    assert app.simulate_get("/v1/me/cached", headers=AUTH_7).headers["Cache-Control"] == "private, max-age=5"
    assert app.simulate_get("/v1/stream").headers["Cache-Control"] == "no-cache"


def test_public_routes_get_no_cache_control_of_ours():
    assert "Cache-Control" not in client().simulate_get("/v1/global").headers


def test_hsts_only_when_configured():
    app = client(UBOT_HTTP_HSTS="true")
    for path in ("/v1/global", "/v1/nowhere"):
        assert app.simulate_get(path).headers["Strict-Transport-Security"] == "max-age=31536000"
