"""The user queries on a real database (SQLite, or PostgreSQL with UBOT_TEST_DATABASE_URL)."""

from __future__ import annotations

from typing import Any

import pytest
from peewee import IntegrityError

from ubot.models.tables import Session, User
from ubot.models.users import SETTINGS_COLUMNS, UserStore

NOW = 1_700_000_000_000
DAY = 86_400_000


def new_user(store: UserStore, name: str = "alice", email: str | None = None) -> User:
    return store.create_user(name, email or f"{name}@example.com", "$argon2id$fake", NOW)


def strategy_values(**changes: Any) -> dict[str, Any]:
    values = {
        "name": "Oversold",
        "condition": "rsi(14) < 30",
        "indicators": ["rsi(14)"],
        "timeframe": "1h",
        "symbols": ["BTC", "ETH"],
        "top_n": None,
        "channels": ["email", "sms"],
        "frequency": "once_per_crossing",
        "cooldown_s": 60,
        "expires_at": None,
        "enabled": True,
        "template": None,
    }
    return values | changes


# --- accounts ------------------------------------------------------------------------------


def test_a_user_is_found_by_username_in_any_case(store) -> None:
    user = new_user(store)

    assert store.user_by_username("ALICE").id == user.id
    assert store.user(user.id).email == "alice@example.com"
    assert store.user_by_username("bob") is None
    assert store.user(user.id + 1) is None


def test_taken_usernames_and_e_mails_are_seen_in_any_case(store) -> None:
    new_user(store, "alice", "Alice@Example.com")

    assert store.username_taken("Alice") and not store.username_taken("bob")
    assert store.email_taken("alice@EXAMPLE.com") and not store.email_taken("bob@example.com")
    with pytest.raises(IntegrityError):
        new_user(store, "alice", "other@example.com")
    with pytest.raises(IntegrityError):
        new_user(store, "bob", "ALICE@example.com")


def test_a_rehash_keeps_the_password_date_a_change_moves_it(store) -> None:
    user = new_user(store)

    store.set_password_hash(user.id, "rehashed")
    assert (store.user(user.id).password_hash, store.user(user.id).password_changed_at) == ("rehashed", NOW)
    store.set_password_hash(user.id, "changed", changed_at=NOW + 5)
    assert (store.user(user.id).password_hash, store.user(user.id).password_changed_at) == (
        "changed",
        NOW + 5,
    )


def test_failures_are_saved_on_the_account(store) -> None:
    user = new_user(store)

    store.save_failures(user.id, 5, NOW, NOW + 30_000)
    row = store.user(user.id)
    assert (row.failed_logins, row.last_failed_at, row.locked_until) == (5, NOW, NOW + 30_000)


def test_a_password_change_resets_failures_and_revokes_every_session(store) -> None:
    user = new_user(store)
    store.add_session(user.id, "a" * 64, NOW, NOW + DAY, keep=20)
    store.add_session(user.id, "b" * 64, NOW, NOW + DAY, keep=20)
    store.save_failures(user.id, 3, NOW, None)

    assert store.change_password(user.id, "new-hash", NOW + 1) == 2

    row = store.user(user.id)
    assert (row.password_hash, row.password_changed_at, row.failed_logins) == ("new-hash", NOW + 1, 0)
    assert store.live_session("a" * 64, NOW + 2) is None


# --- sessions ------------------------------------------------------------------------------


def test_a_session_is_live_until_it_expires(store) -> None:
    user = new_user(store)
    store.add_session(user.id, "a" * 64, NOW, NOW + DAY, keep=20)

    assert store.live_session("a" * 64, NOW).user_id == user.id
    assert store.live_session("a" * 64, NOW + DAY - 1) is not None
    assert store.live_session("a" * 64, NOW + DAY) is None
    assert store.live_session("b" * 64, NOW) is None


def test_revoking_one_session_leaves_the_others(store) -> None:
    user = new_user(store)
    store.add_session(user.id, "a" * 64, NOW, NOW + DAY, keep=20)
    store.add_session(user.id, "b" * 64, NOW, NOW + DAY, keep=20)

    assert store.revoke_session("a" * 64, NOW + 1) == 1
    assert store.revoke_session("a" * 64, NOW + 2) == 0  # already revoked

    assert store.live_session("a" * 64, NOW + 3) is None
    assert store.live_session("b" * 64, NOW + 3) is not None


def test_revoking_all_sessions_touches_only_that_user(store) -> None:
    alice, bob = new_user(store, "alice"), new_user(store, "bob")
    for token_hash in ("a" * 64, "b" * 64):
        store.add_session(alice.id, token_hash, NOW, NOW + DAY, keep=20)
    store.add_session(bob.id, "c" * 64, NOW, NOW + DAY, keep=20)

    assert store.revoke_all_sessions(alice.id, NOW + 1) == 2

    assert store.live_session("a" * 64, NOW + 1) is None and store.live_session("b" * 64, NOW + 1) is None
    assert store.live_session("c" * 64, NOW + 1).user_id == bob.id


def test_touching_a_session_records_when_it_was_last_seen(store) -> None:
    user = new_user(store)
    store.add_session(user.id, "a" * 64, NOW, NOW + DAY, keep=20)
    session = store.live_session("a" * 64, NOW)

    store.touch_session(session.id, NOW + 90_000)

    assert store.live_session("a" * 64, NOW).last_seen_at == NOW + 90_000


def test_a_login_clears_ended_sessions_and_keeps_at_most_n_live_ones(store) -> None:
    user = new_user(store)
    store.add_session(user.id, "0" * 64, NOW, NOW + 1, keep=3)  # expires at once
    store.add_session(user.id, "1" * 64, NOW + 1, NOW + DAY, keep=3)
    store.revoke_session("1" * 64, NOW + 2)
    for i in range(2, 6):
        store.add_session(user.id, str(i) * 64, NOW + 10, NOW + DAY, keep=3)

    rows = {s.token_hash[0]: s.revoked_at for s in Session.select().where(Session.user == user.id)}

    assert rows == {"2": NOW + 10, "3": None, "4": None, "5": None}


# --- settings ------------------------------------------------------------------------------


def test_settings_are_none_until_saved_then_replaced_whole(store) -> None:
    user = new_user(store)
    assert store.settings(user.id) is None
    first = {name: None for name in SETTINGS_COLUMNS} | {
        "sms_to": "+14155552671",
        "timezone": "Europe/Paris",
        "quote_currency": "USD",
    }
    second = {name: None for name in SETTINGS_COLUMNS} | {
        "email_to": "a@b.co",
        "timezone": "UTC",
        "quote_currency": "EUR",
    }

    store.put_settings(user.id, first)
    assert store.settings(user.id) == first
    store.put_settings(user.id, second)
    assert store.settings(user.id) == second


# --- strategies ----------------------------------------------------------------------------


def test_a_strategy_round_trips_with_its_json_columns(store) -> None:
    user = new_user(store)

    created = store.create_strategy(user.id, strategy_values(), NOW)
    row = store.strategy(user.id, created.id)

    assert (row.symbols, row.channels, row.indicators) == (["BTC", "ETH"], ["email", "sms"], ["rsi(14)"])
    assert (row.top_n, row.enabled, row.created_at, row.updated_at) == (None, True, NOW, NOW)


def test_strategies_are_scoped_by_their_owner(store) -> None:
    alice, bob = new_user(store, "alice"), new_user(store, "bob")
    mine = store.create_strategy(alice.id, strategy_values(), NOW)
    store.create_strategy(bob.id, strategy_values(), NOW)  # the same name is fine for another user

    assert store.strategy(bob.id, mine.id) is None
    assert not store.update_strategy(bob.id, mine.id, strategy_values(name="stolen"), NOW)
    assert not store.delete_strategy(bob.id, mine.id)
    assert store.strategy(alice.id, mine.id).name == "Oversold"
    assert [s.id for s in store.strategies(alice.id)] == [mine.id]
    assert store.count_strategies(alice.id) == 1 and store.count_strategies(bob.id) == 1


def test_a_strategy_name_is_unique_per_user(store) -> None:
    user = new_user(store)
    first = store.create_strategy(user.id, strategy_values(), NOW)

    assert store.strategy_name_taken(user.id, "Oversold")
    assert not store.strategy_name_taken(user.id, "Oversold", other_than=first.id)
    assert not store.strategy_name_taken(user.id, "oversold")
    with pytest.raises(IntegrityError):
        store.create_strategy(user.id, strategy_values(), NOW)


def test_updating_replaces_every_column_and_the_update_time(store) -> None:
    user = new_user(store)
    row = store.create_strategy(user.id, strategy_values(), NOW)

    assert store.update_strategy(
        user.id, row.id, strategy_values(symbols=None, top_n=100, enabled=False), NOW + 5
    )

    updated = store.strategy(user.id, row.id)
    assert (updated.symbols, updated.top_n, updated.enabled) == (None, 100, False)
    assert (updated.created_at, updated.updated_at) == (NOW, NOW + 5)


def test_deleting_a_strategy(store) -> None:
    user = new_user(store)
    row = store.create_strategy(user.id, strategy_values(), NOW)

    assert store.delete_strategy(user.id, row.id)
    assert not store.delete_strategy(user.id, row.id)
    assert store.strategies(user.id) == []


def test_the_strategies_sending_to_some_channels_are_found(store) -> None:
    user = new_user(store)
    store.create_strategy(user.id, strategy_values(name="a", channels=["email"]), NOW)
    store.create_strategy(user.id, strategy_values(name="b", channels=["sms", "telegram"]), NOW)

    assert store.strategies_sending_to(user.id, ["sms"]) == [("b", "sms")]
    assert sorted(store.strategies_sending_to(user.id, ["email", "telegram"])) == [
        ("a", "email"),
        ("b", "telegram"),
    ]
    assert store.strategies_sending_to(user.id, []) == []


def test_deleting_a_user_deletes_their_sessions_settings_and_strategies(store, db) -> None:
    user = new_user(store)
    store.add_session(user.id, "a" * 64, NOW, NOW + DAY, keep=20)
    store.put_settings(
        user.id, {name: None for name in SETTINGS_COLUMNS} | {"timezone": "UTC", "quote_currency": "USD"}
    )
    store.create_strategy(user.id, strategy_values(), NOW)

    User.delete().where(User.id == user.id).execute()

    assert store.live_session("a" * 64, NOW) is None
    assert store.settings(user.id) is None
    assert store.strategies(user.id) == []
