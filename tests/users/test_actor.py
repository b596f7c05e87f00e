"""The UserManager actor driven by messages (ask), as the gateway will drive it."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ubot.actors.user_manager import UserManagerActor
from ubot.users import messages as m

PW = "correct horse 42"
WAIT = 10.0  # seconds: only reached when a test is about to fail
STRATEGY = {
    "name": "Dip",
    "condition": "rsi(14) < 30",
    "timeframe": "1h",
    "top_n": 50,
    "channels": ["telegram"],
}


@pytest.fixture
def actor(manager) -> Any:
    ref = UserManagerActor.start(manager)

    def ask(message: Any) -> Any:
        return ref.ask(message, timeout=WAIT)

    return ask


def signed_up(ask: Any, name: str) -> tuple[int, str]:
    """Register, log in and set a Telegram target: (user id, token)."""
    ask(m.Register(name, f"{name}@example.com", PW))
    token = ask(m.Login(name, PW, "192.0.2.1")).token
    user = ask(m.Authenticate(token))
    ask(m.PutSettings(user, {"telegram_chat_id": "12345"}))
    return user, token


def test_a_user_signs_up_logs_in_and_out(actor) -> None:
    view = actor(m.Register("Alice", "alice@example.com", PW))
    assert isinstance(view, m.UserView) and view.username == "alice"

    login = actor(m.Login("alice", PW, "192.0.2.1"))
    assert isinstance(login, m.LoginToken)
    assert actor(m.Authenticate(login.token)) == view.id

    assert actor(m.Logout(login.token)) is None
    assert actor(m.Authenticate(login.token)) is None


def test_refusals_come_back_as_values(actor) -> None:
    actor(m.Register("alice", "alice@example.com", PW))

    assert actor(m.Register("alice", "other@example.com", PW)) == m.Rejected(
        409, "Username taken", "username: is taken; choose another", field="username"
    )
    weak = actor(m.Register("bob", "bob@example.com", "password"))
    assert (weak.status, weak.title, weak.field) == (422, "Invalid field", "password")
    assert weak.description == "password: must be at least 10 characters long"
    assert actor(m.Login("alice", "wrong password 1", None)) == m.Rejected(
        401, "Invalid credentials", "wrong username or password"
    )


def test_a_throttled_login_says_when_to_retry(actor) -> None:
    actor(m.Register("alice", "alice@example.com", PW))
    for _ in range(5):
        actor(m.Login("alice", "wrong password 1", "192.0.2.1"))

    reply = actor(m.Login("alice", PW, "192.0.2.1"))

    assert (reply.status, reply.retry_after) == (429, 30)


def test_settings_and_strategies_through_messages(actor) -> None:
    user, _ = signed_up(actor, "alice")

    assert actor(m.GetSettings(user)).telegram_chat_id == "12345"
    created = actor(m.CreateStrategy(user, STRATEGY))
    assert isinstance(created, m.StrategyView) and created.indicators == ("rsi(14)",)
    assert actor(m.ListStrategies(user)) == (created,)
    assert actor(m.GetStrategy(user, created.id)) == created
    replaced = actor(m.UpdateStrategy(user, created.id, STRATEGY | {"timeframe": "4h"}))
    assert replaced.timeframe == "4h"
    patched = actor(m.PatchStrategy(user, created.id, {"enabled": False}))
    assert (patched.timeframe, patched.enabled) == ("4h", False)
    assert actor(m.DeleteStrategy(user, created.id)) is None
    assert actor(m.ListStrategies(user)) == ()


def test_a_condition_error_carries_its_column(actor) -> None:
    user, _ = signed_up(actor, "alice")

    reply = actor(m.CreateStrategy(user, STRATEGY | {"condition": "rsi(14) ? 30"}))

    assert reply == m.Rejected(
        422, "Invalid condition", "condition: unexpected '?'", field="condition", column=9
    )
    assert actor(m.ValidateCondition("rsi(14) ? 30")) == reply
    assert actor(m.ValidateCondition("rsi(14) < 30")) == m.ConditionInfo(("rsi(14)",), ())


def test_two_users_never_see_each_others_strategies(actor) -> None:
    alice, _ = signed_up(actor, "alice")
    bob, _ = signed_up(actor, "bob")
    mine = actor(m.CreateStrategy(alice, STRATEGY))
    theirs = actor(m.CreateStrategy(bob, STRATEGY))  # the same name, another owner

    not_found = m.Rejected(404, "Not found", f"no strategy {mine.id}")
    assert actor(m.GetStrategy(bob, mine.id)) == not_found
    assert actor(m.UpdateStrategy(bob, mine.id, STRATEGY | {"name": "taken"})) == not_found
    assert actor(m.PatchStrategy(bob, mine.id, {"enabled": False})) == not_found
    assert actor(m.DeleteStrategy(bob, mine.id)) == not_found
    assert actor(m.ListStrategies(bob)) == (theirs,)
    assert actor(m.ListStrategies(alice)) == (mine,)


def test_password_change_and_logout_everywhere(actor) -> None:
    user, token = signed_up(actor, "alice")
    other = actor(m.Login("alice", PW, None)).token

    assert actor(m.LogoutEverywhere(user)) == 2
    assert actor(m.Authenticate(token)) is None and actor(m.Authenticate(other)) is None

    fresh = actor(m.Login("alice", PW, None)).token
    wrong = actor(m.ChangePassword(user, "not it at all 1", "battery staple 77"))
    assert (wrong.status, wrong.field) == (403, "old_password")
    assert actor(m.ChangePassword(user, PW, "battery staple 77")) is None
    assert actor(m.Authenticate(fresh)) is None
    assert isinstance(actor(m.Login("alice", "battery staple 77", None)), m.LoginToken)


def test_an_unknown_message_is_an_error_naming_only_its_type(actor) -> None:
    with pytest.raises(TypeError, match="unexpected message str"):
        actor("hello")


def test_no_password_token_or_secret_shows_in_a_message_or_reply(actor, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "hook-secret-0123456789"
    requests = [
        m.Register("alice", "alice@example.com", PW),
        m.Login("alice", PW, None),
        m.ChangePassword(1, PW, "battery staple 77"),
        m.PutSettings(1, {"webhook_secret": secret}),
    ]
    login = actor(m.Login("nobody", PW, None))
    actor(requests[0])
    token = actor(requests[1]).token

    shown = " ".join(repr(x) for x in [*requests, m.Authenticate(token), m.Logout(token), actor(requests[1])])
    shown += " " + repr(m.SettingsView(None, secret, None, None, None, None, None, "UTC", "USD"))
    shown += " " + repr(login) + caplog.text

    for value in (PW, "battery staple 77", token, secret):
        assert value not in shown
