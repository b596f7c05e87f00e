"""Accounts, sessions, settings, strategies and condition checks through the real app and actors."""

from __future__ import annotations

import time

import pytest
from falcon.testing import Result, TestClient

from ubot.http.app import create_app
from ubot.http.gateway import Gateway
from ubot.timeutil import iso_from_ms
from ubot.users import tokens

pytest.importorskip("ubot.rules")

PASSWORD = "correct horse battery 9"


@pytest.fixture
def client(served) -> TestClient:
    actors = served.actors
    gateway = Gateway(
        container=actors.container,
        history=actors.history,
        monitor=actors.monitor,
        clock=actors.clock,
        users=actors.users,
    )
    return TestClient(create_app(gateway))


def register_and_login(client: TestClient, username: str) -> dict[str, str]:
    created = client.simulate_post(
        "/v1/users", json={"username": username, "email": f"{username}@example.com", "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    assert created.json["username"] == username
    assert "password" not in created.text
    login = client.simulate_post("/v1/sessions", json={"username": username, "password": PASSWORD})
    assert login.status_code == 201, login.text
    assert set(login.json) == {"token", "expires_at"}
    assert login.json["expires_at"].endswith("Z")
    return {"Authorization": f"Bearer {login.json['token']}"}


STRATEGY = {
    "name": "oversold majors",
    "condition": "rsi(14) < 30 and percent_change_24h > 5",
    "timeframe": "1h",
    "symbols": ["BTC", "ETH"],
    "channels": ["webhook"],
}
SETTINGS = {
    "webhook_url": "https://hooks.example.com/ubot",
    "webhook_secret": "s" * 24,
    "timezone": "Europe/Paris",
}


def test_a_user_signs_up_configures_and_writes_a_strategy(client) -> None:
    auth = register_and_login(client, "alice")

    assert client.simulate_put("/v1/me/settings", json=SETTINGS, headers=auth).status_code == 200
    settings = client.simulate_get("/v1/me/settings", headers=auth).json
    assert settings["webhook_url"] == SETTINGS["webhook_url"]
    assert settings["timezone"] == "Europe/Paris"

    created = client.simulate_post("/v1/me/strategies", json=STRATEGY, headers=auth)
    assert created.status_code == 201, created.text
    strategy = created.json
    assert created.headers["location"] == f"/v1/me/strategies/{strategy['id']}"
    assert strategy["indicators"] == ["rsi(14)"]
    assert strategy["enabled"] is True

    path = f"/v1/me/strategies/{strategy['id']}"
    patched = client.simulate_patch(path, json={"enabled": False, "top_n": 5}, headers=auth)
    assert patched.status_code == 200, patched.text
    assert (patched.json["enabled"], patched.json["top_n"], patched.json["symbols"]) == (False, 5, None)

    # A client may PUT back what it fetched (read-only members included).
    fetched = client.simulate_get(path, headers=auth).json
    replaced = client.simulate_put(path, json={**fetched, "condition": "sma(20) > sma(50)"}, headers=auth)
    assert replaced.status_code == 200, replaced.text
    assert sorted(replaced.json["indicators"]) == ["sma(20)", "sma(50)"]

    listed = client.simulate_get("/v1/me/strategies", headers=auth).json["strategies"]
    assert [s["id"] for s in listed] == [strategy["id"]]
    assert client.simulate_delete(path, headers=auth).status_code == 204
    assert client.simulate_get(path, headers=auth).status_code == 404


def test_put_replaces_the_settings_and_patch_changes_some(client) -> None:
    auth = register_and_login(client, "settler")
    assert client.simulate_put("/v1/me/settings", json=SETTINGS, headers=auth).status_code == 200

    patched = client.simulate_patch("/v1/me/settings", json={"timezone": "Asia/Tokyo"}, headers=auth)
    assert patched.status_code == 200, patched.text
    assert (patched.json["timezone"], patched.json["webhook_url"]) == ("Asia/Tokyo", SETTINGS["webhook_url"])

    replaced = client.simulate_put("/v1/me/settings", json={"timezone": "Asia/Tokyo"}, headers=auth)
    assert (replaced.json["timezone"], replaced.json["webhook_url"]) == ("Asia/Tokyo", None)  # cleared

    typo = client.simulate_patch("/v1/me/settings", json={"time_zone": "UTC"}, headers=auth)
    assert (typo.status_code, typo.json["field"]) == (400, "time_zone")


def test_muted_until_is_set_kept_and_cleared_through_the_settings(client) -> None:
    """The mute of the Telegram bot's /mute, as a setting: the same bounds (in the future, at most
    7 days), a 422 naming the field; a PATCH that does not name it keeps it, a PUT clears it."""
    auth = register_and_login(client, "muter")
    assert client.simulate_put("/v1/me/settings", json=SETTINGS, headers=auth).status_code == 200
    now_ms = int(time.time() * 1000)
    until = now_ms + 7_200_000

    patched = client.simulate_patch("/v1/me/settings", json={"muted_until": iso_from_ms(until)}, headers=auth)
    assert patched.status_code == 200, patched.text
    assert patched.json["muted_until"] == iso_from_ms(until)
    kept = client.simulate_patch("/v1/me/settings", json={"timezone": "Asia/Tokyo"}, headers=auth)
    assert (kept.json["timezone"], kept.json["muted_until"]) == ("Asia/Tokyo", iso_from_ms(until))
    berlin = client.simulate_patch(
        "/v1/me/settings", json={"muted_until": "2099-01-01T00:00:00+01:00"}, headers=auth
    )
    assert (berlin.status_code, berlin.json["field"]) == (422, "muted_until")
    assert "at most 7 days ahead" in berlin.json["description"]
    for value, why in [(now_ms - 1000, "must be in the future"), (now_ms + 8 * 86_400_000, "at most 7 days")]:
        refused = client.simulate_patch("/v1/me/settings", json={"muted_until": value}, headers=auth)
        assert (refused.status_code, refused.json["field"]) == (422, "muted_until"), refused.text
        assert why in refused.json["description"]
    naive = client.simulate_patch(
        "/v1/me/settings", json={"muted_until": "2030-01-01T00:00:00"}, headers=auth
    )
    assert (naive.status_code, naive.json["field"]) == (400, "muted_until")  # no time zone: the shape
    assert client.simulate_get("/v1/me/settings", headers=auth).json["muted_until"] == iso_from_ms(until)

    cleared = client.simulate_patch("/v1/me/settings", json={"muted_until": None}, headers=auth)
    assert cleared.json["muted_until"] is None
    client.simulate_patch("/v1/me/settings", json={"muted_until": until}, headers=auth)  # epoch ms
    assert client.simulate_get("/v1/me/settings", headers=auth).json["muted_until"] == iso_from_ms(until)
    replaced = client.simulate_put("/v1/me/settings", json=SETTINGS, headers=auth)
    assert replaced.json["muted_until"] is None  # PUT: left out, cleared


def test_shape_errors_are_400s_and_rules_422s(client) -> None:
    auth = register_and_login(client, "shaper")
    client.simulate_put("/v1/me/settings", json=SETTINGS, headers=auth)
    for changes, status, field in [
        ({"timeframe": "7m"}, 400, "timeframe"),
        ({"condition": "x" * 501}, 400, "condition"),
        ({"condition": "price > 1 and \u00e9"}, 400, "condition"),
        ({"symbols": ["BTC", "B C"]}, 400, "symbols[1]"),
        ({"colour": "red"}, 400, "colour"),
        ({"top_n": 5}, 422, "top_n"),  # symbols and top_n both: a rule the schema cannot state
        ({"expires_at": "2001-01-01T00:00:00Z"}, 422, "expires_at"),
    ]:
        result = client.simulate_post("/v1/me/strategies", json={**STRATEGY, **changes}, headers=auth)
        assert (result.status_code, result.json.get("field")) == (status, field), (changes, result.text)
    long = client.simulate_post(
        "/v1/users", json={"username": "x1y", "email": "x@example.com", "password": "p" * 257}
    )
    assert (long.status_code, long.json["field"]) == (400, "password")
    chat = client.simulate_put("/v1/me/settings", json={"telegram_chat_id": "not a chat"}, headers=auth)
    assert (chat.status_code, chat.json["field"]) == (400, "telegram_chat_id")


def test_head_answers_every_get_route_without_a_body(client) -> None:
    auth = register_and_login(client, "header")
    for path in ("/v1/me/settings", "/v1/me/strategies", "/v1/snapshot", "/health", "/openapi.json"):
        head = client.simulate_head(path, headers=auth)
        get = client.simulate_get(path, headers=auth)
        assert (head.status_code, head.content) == (get.status_code, b""), path
        assert head.headers["content-type"] == get.headers["content-type"], path


def test_another_users_strategy_is_not_found(client) -> None:
    alice = register_and_login(client, "alice")
    client.simulate_put("/v1/me/settings", json=SETTINGS, headers=alice)
    strategy = client.simulate_post("/v1/me/strategies", json=STRATEGY, headers=alice).json
    bob = register_and_login(client, "bobby")
    path = f"/v1/me/strategies/{strategy['id']}"
    for call in (client.simulate_get, client.simulate_delete):
        assert call(path, headers=bob).status_code == 404
    assert client.simulate_patch(path, json={"enabled": False}, headers=bob).status_code == 404
    assert client.simulate_get("/v1/me/strategies", headers=bob).json == {"strategies": []}
    assert client.simulate_get(path, headers=alice).status_code == 200


def test_a_bad_condition_says_where(client) -> None:
    result = client.simulate_post("/v1/conditions/validate", json={"condition": "rsi(14) < 30 and eval(1)"})
    assert result.status_code == 422
    assert result.json["column"] == 18
    assert "eval" in result.json["description"]
    assert set(result.json) == {"title", "description", "field", "column"}
    ok = client.simulate_post("/v1/conditions/validate", json={"condition": "ema(9) > ema(21)"})
    assert ok.status_code == 200
    assert ok.json["valid"] is True and sorted(ok.json["indicators"]) == ["ema(21)", "ema(9)"]


def test_a_template_is_checked_with_its_condition(client) -> None:
    def validate(template: str, condition: str = "rsi(14) < 30") -> Result:
        return client.simulate_post(
            "/v1/conditions/validate", json={"condition": condition, "template": template}
        )

    wrong = validate("{symbol} at {price.__class__}")
    assert wrong.status_code == 422
    assert wrong.json["field"] == "template" and wrong.json["column"] == 19
    assert "attribute access ('.')" in wrong.json["description"]
    # {value:EXPR} names a value of the condition given: the same template, two conditions
    outside = validate("{symbol}: {value:sma(50)}")
    assert outside.status_code == 422
    assert (outside.json["field"], outside.json["column"]) == ("template", 18)  # at sma(50)
    assert "sma(50) is not in the condition" in outside.json["description"]
    inside = validate("{symbol}: {value:sma(50)}", condition="price > sma(50)")
    assert inside.status_code == 200 and inside.json["indicators"] == ["sma(50)"]
    # the condition is checked first; an empty template is none
    assert validate("{symbol}", condition="price >> 5").json["field"] == "condition"
    assert validate("  ").status_code == 200


def test_strategy_condition_errors_carry_the_column(client) -> None:
    auth = register_and_login(client, "carol")
    client.simulate_put("/v1/me/settings", json=SETTINGS, headers=auth)
    result = client.simulate_post(
        "/v1/me/strategies", json={**STRATEGY, "condition": "price > ().__class__"}, headers=auth
    )
    assert result.status_code == 422
    assert result.json["field"] == "condition"
    assert isinstance(result.json["column"], int)


def test_logout_revokes_the_token(client) -> None:
    auth = register_and_login(client, "dave1")
    assert client.simulate_get("/v1/me/settings", headers=auth).status_code == 200
    assert client.simulate_delete("/v1/sessions/current", headers=auth).status_code == 204
    assert client.simulate_get("/v1/me/settings", headers=auth).status_code == 401


def test_wrong_passwords_are_throttled_with_retry_after(client) -> None:
    register_and_login(client, "erin1")
    codes = [
        client.simulate_post("/v1/sessions", json={"username": "erin1", "password": "wrong password 1"})
        for _ in range(7)
    ]
    assert codes[0].status_code == 401
    throttled = [r for r in codes if r.status_code == 429]
    assert throttled, [r.status_code for r in codes]
    assert int(throttled[0].headers["retry-after"]) >= 1


def test_wrong_passwords_from_five_addresses_leave_the_owner_in(client) -> None:
    register_and_login(client, "gina1")
    wrong = {"username": "gina1", "password": "wrong password 1"}
    for i in range(1, 6):
        assert (
            client.simulate_post("/v1/sessions", json=wrong, remote_addr=f"198.51.100.{i}").status_code == 401
        )

    owner = client.simulate_post(
        "/v1/sessions", json={"username": "gina1", "password": PASSWORD}, remote_addr="203.0.113.9"
    )
    assert owner.status_code == 201, owner.text
    again = client.simulate_post("/v1/sessions", json=wrong, remote_addr="198.51.100.1")
    assert again.status_code == 401  # the owner's success reset the account: the guesser goes on ...
    for _ in range(3):
        client.simulate_post("/v1/sessions", json=wrong, remote_addr="198.51.100.1")
    slowed = client.simulate_post("/v1/sessions", json=wrong, remote_addr="198.51.100.1")
    assert slowed.status_code == 429 and int(slowed.headers["retry-after"]) == 30  # ... 5 times, then waits


def test_a_strategy_that_can_never_deliver_is_refused_naming_why(client) -> None:
    auth = register_and_login(client, "hank1")
    assert client.simulate_put("/v1/me/settings", json=SETTINGS, headers=auth).status_code == 200

    unknown = client.simulate_post(
        "/v1/me/strategies", json={**STRATEGY, "symbols": ["BTC", "NOPE"]}, headers=auth
    )
    assert unknown.status_code == 422 and unknown.json["field"] == "symbols"
    assert unknown.json["description"].endswith(": NOPE")  # the replay's market: 6 coins
    too_many = client.simulate_post(
        "/v1/me/strategies", json={**STRATEGY, "symbols": None, "top_n": 7}, headers=auth
    )
    assert too_many.status_code == 422 and too_many.json["field"] == "top_n"
    assert "at most 6" in too_many.json["description"]
    assert client.simulate_get("/v1/me/strategies", headers=auth).json == {"strategies": []}


def test_signup_errors_name_the_field(client) -> None:
    weak = client.simulate_post(
        "/v1/users", json={"username": "frank", "email": "f@example.com", "password": "short"}
    )
    assert weak.status_code == 422 and weak.json["field"] == "password"
    shape = client.simulate_post("/v1/users", json={"username": "frank", "email": 5, "password": PASSWORD})
    assert shape.status_code == 400 and shape.json["field"] == "email"
    register_and_login(client, "frank")
    taken = client.simulate_post(
        "/v1/users", json={"username": "FRANK", "email": "other@example.com", "password": PASSWORD}
    )
    assert taken.status_code == 409


def test_private_routes_need_a_token(client) -> None:
    for path in ("/v1/me/settings", "/v1/me/strategies", "/v1/me/strategies/1"):
        assert client.simulate_get(path).status_code == 401
    assert client.simulate_get("/v1/snapshot").status_code == 200  # public


def test_logout_everywhere_revokes_every_token(client) -> None:
    first = register_and_login(client, "gina1")
    login = client.simulate_post("/v1/sessions", json={"username": "gina1", "password": PASSWORD})
    second = {"Authorization": f"Bearer {login.json['token']}"}
    result = client.simulate_delete("/v1/me/sessions", headers=first)
    assert result.status_code == 200 and result.json == {"revoked": 2}
    for auth in (first, second):
        assert client.simulate_get("/v1/me/settings", headers=auth).status_code == 401


def test_the_sessions_are_listed_and_one_can_be_logged_out(client) -> None:
    mine = register_and_login(client, "ivy1")
    login = client.simulate_post(
        "/v1/sessions",
        json={"username": "ivy1", "password": PASSWORD},
        remote_addr="203.0.113.8",
        headers={"User-Agent": "ubot-client/1.0"},
    )
    token = login.json["token"]
    other = {"Authorization": f"Bearer {token}"}
    stranger = register_and_login(client, "jake1")

    listed = client.simulate_get("/v1/me/sessions", headers=mine)
    assert listed.status_code == 200, listed.text
    sessions = listed.json["sessions"]
    assert len(sessions) == 2
    assert {key for s in sessions for key in s} == {
        "id", "kind", "created_at", "last_seen_at", "expires_at", "user_agent", "client", "current",
    }  # fmt: skip
    (current,) = [s for s in sessions if s["current"]]
    (second,) = [s for s in sessions if not s["current"]]
    assert second == {**second, "kind": "program", "client": "203.0.113.8", "user_agent": "ubot-client/1.0"}
    assert second["expires_at"] == login.json["expires_at"]
    assert token not in listed.text and tokens.hash_token(token) not in listed.text
    seen_by_other = client.simulate_get("/v1/me/sessions", headers=other).json["sessions"]
    assert {s["id"]: s["current"] for s in seen_by_other} == {current["id"]: False, second["id"]: True}

    # another user's session, and one that does not exist, are not found
    (strangers,) = client.simulate_get("/v1/me/sessions", headers=stranger).json["sessions"]
    for session_id in (strangers["id"], 4_000_000):
        refused = client.simulate_delete(f"/v1/me/sessions/{session_id}", headers=mine)
        assert refused.status_code == 404 and refused.json["field"] == "id"
    assert client.simulate_get("/v1/me/settings", headers=stranger).status_code == 200

    ended = client.simulate_delete(f"/v1/me/sessions/{second['id']}", headers=mine)
    assert ended.status_code == 204 and not ended.cookies
    assert client.simulate_get("/v1/me/settings", headers=other).status_code == 401
    assert client.simulate_get("/v1/me/settings", headers=mine).status_code == 200
    assert [s["id"] for s in client.simulate_get("/v1/me/sessions", headers=mine).json["sessions"]] == [
        current["id"]
    ]
    assert client.simulate_delete(f"/v1/me/sessions/{second['id']}", headers=mine).status_code == 404
    assert client.simulate_get("/v1/me/sessions").status_code == 401


def test_changing_the_password_revokes_sessions_and_checks_the_old_one(client) -> None:
    auth = register_and_login(client, "hank1")
    new = "a different passphrase 77"
    wrong = client.simulate_put(
        "/v1/me/password", json={"old_password": "not it at all 12", "new_password": new}, headers=auth
    )
    assert wrong.status_code == 403 and wrong.json["field"] == "old_password"
    weak = client.simulate_put(
        "/v1/me/password", json={"old_password": PASSWORD, "new_password": "x"}, headers=auth
    )
    assert weak.status_code == 422 and weak.json["field"] == "new_password"
    changed = client.simulate_put(
        "/v1/me/password", json={"old_password": PASSWORD, "new_password": new}, headers=auth
    )
    assert changed.status_code == 204
    assert client.simulate_get("/v1/me/settings", headers=auth).status_code == 401
    old = client.simulate_post("/v1/sessions", json={"username": "hank1", "password": PASSWORD})
    assert old.status_code == 401
    assert (
        client.simulate_post("/v1/sessions", json={"username": "hank1", "password": new}).status_code == 201
    )
