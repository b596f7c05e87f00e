"""Strategies that can never deliver are refused when saved (issue 12): a channel the server has not
configured, symbols the market fetched does not have, more top coins than it fetches."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.users import fake_analyze
from ubot.users.errors import ValidationError
from ubot.users.manager import UserManager
from ubot.users.market import KnownMarket

PW = "correct horse 42"
MARKET = KnownMarket(frozenset({"BTC", "ETH", "SOL"}), 3)


@pytest.fixture
def known() -> list[KnownMarket | None]:
    return [MARKET]


@pytest.fixture
def manager(store, clock, passwords, known) -> UserManager:
    return UserManager(
        store,
        clock,
        passwords=passwords,
        analyze=fake_analyze,
        channels=("webhook", "email"),
        market=lambda: known[0],
    )


@pytest.fixture
def user_id(manager) -> int:
    user = manager.register("alice", "alice@example.com", PW)
    manager.put_settings(
        user.id,
        {
            "email_to": "alerts@example.com",
            "telegram_chat_id": "12345",
            "sms_to": "+14155552671",
            "webhook_url": "https://example.com/hook",
            "webhook_secret": "s" * 20,
        },
    )
    return user.id


def strategy(**changes: Any) -> dict[str, Any]:
    return {
        "name": "dip",
        "condition": "rsi(14) < 30",
        "timeframe": "1h",
        "top_n": 3,
        "channels": ["email"],
    } | changes


def refused(manager: UserManager, user_id: int, **changes: Any) -> ValidationError:
    before = manager.list_strategies(user_id)
    with pytest.raises(ValidationError) as caught:
        manager.create_strategy(user_id, strategy(**changes))
    assert manager.list_strategies(user_id) == before
    return caught.value


@pytest.mark.parametrize(
    ("channel", "setting"),
    [
        ("telegram", "[notify] telegram_bot_token"),
        ("sms", "[notify] twilio_account_sid, twilio_auth_token and twilio_sms_from"),
    ],
)
def test_a_channel_the_server_has_not_configured_is_refused_naming_the_setting(
    manager, user_id, channel, setting
) -> None:
    error = refused(manager, user_id, channels=["email", channel])

    assert error.field == "channels"
    assert error.message == f"{channel} is not configured on this server: set {setting}"


def test_a_channel_not_configured_is_said_before_a_missing_target(manager) -> None:
    bare = manager.register("bob", "bob@example.com", PW)  # no targets in the settings at all
    assert "telegram_bot_token" in refused(manager, bare.id, channels=["telegram"]).message


def test_unknown_symbols_are_refused_by_name(manager, user_id) -> None:
    error = refused(manager, user_id, top_n=None, symbols=["btc", "NOPE", "ETH", "ZZZ"])

    assert error.field == "symbols"
    assert error.message == "not in the market this server fetches (the top 3 coins): NOPE, ZZZ"
    assert manager.create_strategy(user_id, strategy(top_n=None, symbols=["btc", "sol"])).symbols == (
        "BTC",
        "SOL",
    )


def test_top_n_above_the_coins_fetched_is_refused_naming_the_limit(manager, user_id) -> None:
    error = refused(manager, user_id, top_n=4)

    assert error.field == "top_n"
    assert error.message == "at most 3: this server fetches the top 3 coins ([market] limit)"


def test_before_the_first_snapshot_symbols_and_top_n_are_not_checked(manager, user_id, known) -> None:
    known[0] = None

    assert manager.create_strategy(user_id, strategy(name="any", top_n=None, symbols=["NOPE"])).symbols == (
        "NOPE",
    )
    assert manager.create_strategy(user_id, strategy(name="many", top_n=1000)).top_n == 1000
    assert refused(manager, user_id, name="tg", channels=["telegram"]).field == "channels"  # that is known


def test_the_checks_apply_to_replacing_and_patching_what_is_set(manager, user_id, known) -> None:
    saved = manager.create_strategy(user_id, strategy(top_n=None, symbols=["SOL"]))
    with pytest.raises(ValidationError):
        manager.update_strategy(user_id, saved.id, strategy(top_n=10))
    with pytest.raises(ValidationError):
        manager.patch_strategy(user_id, saved.id, {"channels": ["sms"]})

    known[0] = KnownMarket(frozenset({"BTC"}), 1)  # SOL left the market: the strategy can still be changed
    assert manager.patch_strategy(user_id, saved.id, {"enabled": False}).enabled is False
    with pytest.raises(ValidationError):
        manager.patch_strategy(user_id, saved.id, {"symbols": ["SOL"]})
