"""The dashboard's files (``GET /``, ``GET /ui/{version}/{name}``) and the browser's session: the
HttpOnly cookie set by ``POST /v1/sessions/browser`` and its CSRF check (``ubot/http/browser.py``).
The page itself, driven in Chromium, is tests/test_dashboard_browser.py."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from falcon.testing import TestClient

from tests.http.support import assert_error
from ubot.bus.memory import InProcessBus
from ubot.http import browser
from ubot.http.app import create_app
from ubot.http.dashboard import Bundle
from ubot.http.gateway import Gateway
from ubot.http.headers import CSP, PAGE_CSP, SecurityHeaders
from ubot.http.protection import Protection
from ubot.stream.hub import StreamHub

PASSWORD = "correct horse battery 9"
PAGE_WEIGHT_MAX = 300 * 1024


@pytest.fixture
def pages(canned) -> TestClient:
    return TestClient(create_app(canned.gateway, protection=Protection([SecurityHeaders()], [])))


def test_the_page_names_its_assets_by_version_and_is_revalidated(pages) -> None:
    page = pages.simulate_get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    assert page.headers["content-security-policy"] == PAGE_CSP
    version = Bundle.packaged().version
    assert f'src="/ui/{version}/app.js"' in page.text and "{{assets}}" not in page.text
    again = pages.simulate_get("/", headers={"If-None-Match": page.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_the_page_has_no_inline_script_or_style_and_a_strict_policy() -> None:
    html = Bundle.packaged().index.body.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "a script without src"
    assert "<style" not in html and " style=" not in html and re.search(r"\son\w+=", html) is None
    assert "'unsafe-inline'" not in PAGE_CSP and "'unsafe-eval'" not in PAGE_CSP
    assert PAGE_CSP.startswith("default-src 'none';") and "frame-ancestors 'none'" in PAGE_CSP


def test_every_asset_is_served_with_its_type_and_cached_for_a_year(pages) -> None:
    bundle = Bundle.packaged()
    assert {"app.js", "api.js", "market.js", "strategies.js", "style.css"} <= set(bundle.assets)
    for name in bundle.assets:
        answer = pages.simulate_get(f"/ui/{bundle.version}/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].split(";")[0] in (
            "text/javascript",
            "text/css",
            "image/svg+xml",
        )
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert (
            pages.simulate_get(
                f"/ui/{bundle.version}/{name}", headers={"If-None-Match": answer.headers["etag"]}
            ).status_code
            == 304
        )
    assert_error(pages.simulate_get("/ui/0000000000000000/app.js"), 404)
    assert_error(pages.simulate_get(f"/ui/{bundle.version}/nothing.js"), 404)


def test_a_changed_file_changes_the_version() -> None:
    files = {"index.html": b"<link href='{{assets}}/a.css'>", "a.css": b"a{}"}
    before = Bundle(files)
    after = Bundle({**files, "a.css": b"a{color:red}"})
    assert before.version != after.version
    assert after.index.body == f"<link href='/ui/{after.version}/a.css'>".encode()


def test_the_page_weighs_at_most_300_kb() -> None:
    bundle = Bundle.packaged()
    total = len(bundle.index.body) + sum(len(file.body) for file in bundle.assets.values())
    assert total <= PAGE_WEIGHT_MAX, total


def test_the_api_keeps_its_no_document_policy(pages) -> None:
    assert pages.simulate_get("/openapi.json").headers["content-security-policy"] == CSP


# --- the browser's session ------------------------------------------------------------------


@pytest.fixture
def client(served) -> Iterator[TestClient]:
    actors = served.actors
    gateway = Gateway(
        container=actors.container,
        history=actors.history,
        monitor=actors.monitor,
        clock=actors.clock,
        users=actors.users,
    )
    hub = StreamHub(InProcessBus()).start()
    client = TestClient(create_app(gateway, hub=hub))
    created = client.simulate_post(
        "/v1/users", json={"username": "ada", "email": "ada@example.com", "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    yield client
    hub.close()


def _log_in(client: TestClient, **kwargs) -> tuple[dict[str, str], str]:
    """-> the cookies to send back, and the CSRF token."""
    answer = client.simulate_post(
        "/v1/sessions/browser", json={"username": "ada", "password": PASSWORD}, **kwargs
    )
    assert answer.status_code == 201, answer.text
    assert set(answer.json) == {"csrf_token", "expires_at"}
    assert answer.headers["cache-control"] == "no-store"
    session, csrf = answer.cookies[browser.SESSION_COOKIE], answer.cookies[browser.CSRF_COOKIE]
    assert session.http_only and session.same_site == "Strict" and session.path == "/"
    assert not csrf.http_only and csrf.same_site == "Strict"
    assert csrf.value == answer.json["csrf_token"] == browser.csrf_token(session.value)
    assert 29 * 86_400 < session.max_age <= 30 * 86_400
    return {session.name: session.value, csrf.name: csrf.value}, csrf.value


def _expired(cookie) -> bool:
    return cookie.expires is not None and cookie.expires.timestamp() < time.time()


def test_the_session_cookie_is_secure_behind_tls_only(client) -> None:
    plain = client.simulate_post("/v1/sessions/browser", json={"username": "ada", "password": PASSWORD})
    assert not plain.cookies[browser.SESSION_COOKIE].secure
    tls = client.simulate_post(
        "/v1/sessions/browser", json={"username": "ada", "password": PASSWORD}, protocol="https"
    )
    assert tls.cookies[browser.SESSION_COOKIE].secure and tls.cookies[browser.CSRF_COOKIE].secure


def test_the_cookie_authenticates_and_changes_need_the_csrf_header(client) -> None:
    cookies, csrf = _log_in(client)
    assert client.simulate_get("/v1/me/strategies", cookies=cookies).json == {"strategies": []}
    strategy = {"name": "dip", "condition": "percent_change_24h < -10", "timeframe": "1h", "top_n": 5}
    refused = client.simulate_post("/v1/me/strategies", json=strategy, cookies=cookies)
    body = assert_error(refused, 403)
    assert browser.CSRF_HEADER in body["description"]
    wrong = {browser.CSRF_HEADER: browser.csrf_token("another session")}
    assert_error(
        client.simulate_post("/v1/me/strategies", json=strategy, cookies=cookies, headers=wrong), 403
    )
    saved = client.simulate_post(
        "/v1/me/strategies", json=strategy, cookies=cookies, headers={browser.CSRF_HEADER: csrf}
    )
    assert saved.status_code == 201, saved.text


def test_a_bearer_token_needs_no_csrf_header(client) -> None:
    token = client.simulate_post("/v1/sessions", json={"username": "ada", "password": PASSWORD}).json["token"]
    answer = client.simulate_patch(
        "/v1/me/settings", json={"timezone": "Europe/Paris"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text


def test_logging_out_revokes_the_session_and_clears_the_cookies(client) -> None:
    cookies, csrf = _log_in(client)
    assert_error(client.simulate_delete("/v1/sessions/current", cookies=cookies), 403)
    out = client.simulate_delete("/v1/sessions/current", cookies=cookies, headers={browser.CSRF_HEADER: csrf})
    assert out.status_code == 204
    for name in (browser.SESSION_COOKIE, browser.CSRF_COOKIE):
        assert out.cookies[name].value == "" and _expired(out.cookies[name])
    stale = client.simulate_get("/v1/me/settings", cookies=cookies)
    assert_error(stale, 401)
    assert _expired(stale.cookies[browser.SESSION_COOKIE])  # the stale cookie is cleared


def test_logging_out_everywhere_or_a_new_password_clears_the_cookies_too(client) -> None:
    cookies, csrf = _log_in(client)
    other, _ = _log_in(client)  # another browser
    out = client.simulate_delete("/v1/me/sessions", cookies=cookies, headers={browser.CSRF_HEADER: csrf})
    assert out.status_code == 200 and out.json == {"revoked": 2}
    for name in (browser.SESSION_COOKIE, browser.CSRF_COOKIE):
        assert out.cookies[name].value == "" and _expired(out.cookies[name])
    assert_error(client.simulate_get("/v1/me/settings", cookies=other), 401)

    cookies, csrf = _log_in(client)
    change = {"old_password": PASSWORD, "new_password": "an even longer passphrase, 2027"}
    out = client.simulate_put(
        "/v1/me/password", json=change, cookies=cookies, headers={browser.CSRF_HEADER: csrf}
    )
    assert out.status_code == 204, out.text
    assert _expired(out.cookies[browser.SESSION_COOKIE]) and _expired(out.cookies[browser.CSRF_COOKIE])
    # a bearer token's answer sets no cookie
    token = client.simulate_post(
        "/v1/sessions", json={"username": "ada", "password": change["new_password"]}
    ).json["token"]
    out = client.simulate_delete("/v1/me/sessions", headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 200 and not out.cookies


def test_a_browser_lists_its_sessions_and_logs_one_out(client) -> None:
    cookies, csrf = _log_in(client, headers={"User-Agent": "Mozilla/5.0 Firefox/140.0"})
    token = client.simulate_post("/v1/sessions", json={"username": "ada", "password": PASSWORD}).json["token"]
    sessions = client.simulate_get("/v1/me/sessions", cookies=cookies).json["sessions"]
    mine = next(s for s in sessions if s["current"])
    program = next(s for s in sessions if not s["current"])
    assert (mine["kind"], mine["user_agent"], program["kind"]) == (
        "browser",
        "Mozilla/5.0 Firefox/140.0",
        "program",
    )

    refused = client.simulate_delete(f"/v1/me/sessions/{program['id']}", cookies=cookies)
    assert_error(refused, 403)  # a change made with the cookie needs the CSRF header
    out = client.simulate_delete(
        f"/v1/me/sessions/{program['id']}", cookies=cookies, headers={browser.CSRF_HEADER: csrf}
    )
    assert out.status_code == 204 and not out.cookies  # another session: this cookie stays
    assert_error(client.simulate_get("/v1/me/settings", headers={"Authorization": f"Bearer {token}"}), 401)

    out = client.simulate_delete(
        f"/v1/me/sessions/{mine['id']}", cookies=cookies, headers={browser.CSRF_HEADER: csrf}
    )
    assert out.status_code == 204  # its own session: the cookies are cleared
    assert _expired(out.cookies[browser.SESSION_COOKIE]) and _expired(out.cookies[browser.CSRF_COOKIE])
    assert_error(client.simulate_get("/v1/me/settings", cookies=cookies), 401)


def test_a_stale_cookie_on_a_public_route_is_ignored(client) -> None:
    answer = client.simulate_head("/v1/stream", cookies={browser.SESSION_COOKIE: "x" * 43})
    assert answer.status_code == 200
    assert _expired(answer.cookies[browser.SESSION_COOKIE])
