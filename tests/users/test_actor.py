"""The UserManager actor driven through its proxy, as the gateway drives it (``Gateway.ask_users``):
values come back through the future, and so do the domain exceptions."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ubot.actors.user_manager import UserManagerActor
from ubot.users import shapes as m
from ubot.users import tokens
from ubot.users.errors import BadCredentials, Conflict, NotFound, Throttled, ValidationError, WrongPassword
from ubot.users.manager import UserManager as U
from ubot.users.sessions import Revoked

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
    proxy = UserManagerActor.start(manager).proxy()

    def ask(method: Any, *args: Any) -> Any:
        return getattr(proxy.manager, method.__name__)(*args).get(timeout=WAIT)

    return ask


def signed_up(ask: Any, name: str) -> tuple[int, str]:
    """Register, log in and set a Telegram target: (user id, token)."""
    ask(U.register, name, f"{name}@example.com", PW)
    token = ask(U.login, name, PW, "192.0.2.1").token
    user = ask(U.authenticate, token)
    ask(U.put_settings, user, {"telegram_chat_id": "12345"})
    return user, token


def test_a_user_signs_up_logs_in_and_out(actor) -> None:
    view = actor(U.register, "Alice", "alice@example.com", PW)
    assert isinstance(view, m.UserView) and view.username == "alice"

    login = actor(U.login, "alice", PW, "192.0.2.1")
    assert isinstance(login, m.LoginToken)
    assert actor(U.authenticate, login.token) == view.id

    assert actor(U.logout, login.token) == Revoked(view.id, tokens.hash_token(login.token))
    assert actor(U.authenticate, login.token) is None
    assert actor(U.logout, login.token) is None  # nothing left to revoke


def test_refusals_come_back_as_domain_exceptions(actor) -> None:
    actor(U.register, "alice", "alice@example.com", PW)

    with pytest.raises(Conflict) as taken:
        actor(U.register, "alice", "other@example.com", PW)
    assert (taken.value.title, taken.value.field) == ("Username taken", "username")
    assert taken.value.description == "username: is taken; choose another"
    with pytest.raises(ValidationError) as weak:
        actor(U.register, "bob", "bob@example.com", "password")
    assert (weak.value.title, weak.value.field) == ("Invalid field", "password")
    assert weak.value.description == "password: must be at least 10 characters long"
    with pytest.raises(BadCredentials, match="wrong username or password"):
        actor(U.login, "alice", "wrong password 1", None)
    assert actor(U.login, "alice", PW, None).token  # the actor lives on


def test_a_throttled_login_says_when_to_retry(actor) -> None:
    actor(U.register, "alice", "alice@example.com", PW)
    for _ in range(5):
        with pytest.raises(BadCredentials):
            actor(U.login, "alice", "wrong password 1", "192.0.2.1")

    with pytest.raises(Throttled) as throttled:
        actor(U.login, "alice", PW, "192.0.2.1")

    assert throttled.value.retry_after_s == 30


def test_settings_and_strategies_through_messages(actor) -> None:
    user, _ = signed_up(actor, "alice")

    assert actor(U.get_settings, user).telegram_chat_id == "12345"
    created = actor(U.create_strategy, user, STRATEGY)
    assert isinstance(created, m.StrategyView) and created.indicators == ("rsi(14)",)
    assert actor(U.list_strategies, user) == (created,)
    assert actor(U.get_strategy, user, created.id) == created
    replaced = actor(U.update_strategy, user, created.id, STRATEGY | {"timeframe": "4h"})
    assert replaced.timeframe == "4h"
    patched = actor(U.patch_strategy, user, created.id, {"enabled": False})
    assert (patched.timeframe, patched.enabled) == ("4h", False)
    assert actor(U.delete_strategy, user, created.id) is None
    assert actor(U.list_strategies, user) == ()


def test_a_condition_error_carries_its_column(actor) -> None:
    user, _ = signed_up(actor, "alice")

    for call, args in [
        (U.create_strategy, (user, STRATEGY | {"condition": "rsi(14) ? 30"})),
        (U.validate_condition, ("rsi(14) ? 30",)),
    ]:
        with pytest.raises(ValidationError) as error:
            actor(call, *args)
        assert (error.value.title, error.value.description) == (
            "Invalid condition",
            "condition: unexpected '?'",
        )
        assert (error.value.field, error.value.column) == ("condition", 9)
    assert actor(U.validate_condition, "rsi(14) < 30") == m.ConditionInfo(("rsi(14)",), ())


def test_two_users_never_see_each_others_strategies(actor) -> None:
    alice, _ = signed_up(actor, "alice")
    bob, _ = signed_up(actor, "bob")
    mine = actor(U.create_strategy, alice, STRATEGY)
    theirs = actor(U.create_strategy, bob, STRATEGY)  # the same name, another owner

    for call, args in [
        (U.get_strategy, (bob, mine.id)),
        (U.update_strategy, (bob, mine.id, STRATEGY | {"name": "taken"})),
        (U.patch_strategy, (bob, mine.id, {"enabled": False})),
        (U.delete_strategy, (bob, mine.id)),
    ]:
        with pytest.raises(NotFound, match=f"^no strategy {mine.id}$"):
            actor(call, *args)
    assert actor(U.list_strategies, bob) == (theirs,)
    assert actor(U.list_strategies, alice) == (mine,)


def test_password_change_and_logout_everywhere(actor) -> None:
    user, token = signed_up(actor, "alice")
    other = actor(U.login, "alice", PW, None).token

    assert actor(U.logout_everywhere, user) == 2
    assert actor(U.authenticate, token) is None and actor(U.authenticate, other) is None

    fresh = actor(U.login, "alice", PW, None).token
    with pytest.raises(WrongPassword) as wrong:
        actor(U.change_password, user, "not it at all 1", "battery staple 77")
    assert wrong.value.field == "old_password"
    assert actor(U.change_password, user, PW, "battery staple 77") is None
    assert actor(U.authenticate, fresh) is None
    assert isinstance(actor(U.login, "alice", "battery staple 77", None), m.LoginToken)


def test_no_password_token_or_secret_shows_in_a_reply_or_the_log(actor, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="ubot")  # peewee's own log shows the stored rows
    secret = "hook-secret-0123456789"
    with pytest.raises(BadCredentials) as unknown:
        actor(U.login, "nobody", PW, None)
    user = actor(U.register, "alice", "alice@example.com", PW).id
    login = actor(U.login, "alice", PW, None)
    settings = actor(U.put_settings, user, {"webhook_url": "https://example.com/h", "webhook_secret": secret})
    actor(U.change_password, user, PW, "battery staple 77")

    shown = " ".join(repr(x) for x in [unknown.value, login, settings]) + caplog.text

    for value in (PW, "battery staple 77", login.token, secret):
        assert value not in shown
