"""The UserManager's operations, without threads: a real database, a fake clock, a cheap hasher."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from argon2 import PasswordHasher

from tests.support.users import T0_MS, cheap_hasher, fake_analyze
from ubot.models.tables import Session, User
from ubot.timeutil import iso_from_ms
from ubot.users import tokens
from ubot.users.errors import (
    BadCredentials,
    Conflict,
    NotFound,
    Throttled,
    UserError,
    ValidationError,
    WrongPassword,
)
from ubot.users.manager import UserManager
from ubot.users.passwords import Passwords
from ubot.users.sessions import Revoked
from ubot.users.shapes import DestinationView, LoginToken, SettingsView, StrategyView, UserView
from ubot.users.throttle import Policy
from ubot.users.validation import CHANNEL_TARGETS

PW = "correct horse 42"
NEW_PW = "battery staple 77"
DAY_S = 86_400


def refused(kind: type[UserError], call: Any, *args: Any) -> Any:
    with pytest.raises(kind) as caught:
        call(*args)
    return caught.value


def as_json(value: Any) -> Any:
    """``value`` as the gateway writes it."""
    return msgspec.json.decode(msgspec.json.encode(value))


def invalid(field: str, call: Any, *args: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call(*args)
    assert caught.value.field == field, caught.value
    return caught.value


@pytest.fixture
def alice(manager) -> UserView:
    return manager.register("Alice", "alice@example.com", PW)


def strategy(**changes: Any) -> dict[str, Any]:
    fields = {
        "name": "Oversold",
        "condition": "rsi(14) < 30",
        "timeframe": "1h",
        "top_n": 50,
        "channels": ["email"],
    }
    return fields | changes


def with_targets(manager: UserManager, user_id: int, **more: Any) -> SettingsView:
    return manager.put_settings(user_id, {"email_to": "alerts@example.com", "sms_to": "+14155552671", **more})


# --- accounts ------------------------------------------------------------------------------


def test_registering_gives_the_user_view(manager) -> None:
    view = manager.register("Alice", "Alice@Example.com", PW)

    assert view == UserView(view.id, "alice", "Alice@Example.com", iso_from_ms(T0_MS))
    row = User.get_by_id(view.id)
    assert row.password_hash.startswith("$argon2id$") and PW not in row.password_hash


def test_registering_checks_every_field(manager) -> None:
    invalid("username", manager.register, "a!", "a@example.com", PW)
    invalid("email", manager.register, "alice", "not-an-address", PW)
    invalid("password", manager.register, "alice", "a@example.com", "short")
    invalid("password", manager.register, "alice", "a@example.com", "alice-is-my-name-1")
    assert User.select().count() == 0


def test_a_taken_username_or_e_mail_is_a_conflict_in_any_case(manager, alice) -> None:
    assert refused(Conflict, manager.register, "ALICE", "other@example.com", PW).field == "username"
    assert refused(Conflict, manager.register, "bob", "ALICE@example.COM", PW).field == "email"


def test_login_gives_a_token_that_authenticates_until_it_expires(manager, alice, clock) -> None:
    login = manager.login("ALICE", PW, "10.0.0.1")

    assert isinstance(login, LoginToken) and tokens.well_formed(login.token)
    assert login.expires_at == iso_from_ms(T0_MS + 30 * DAY_S * 1000)
    assert login.token not in repr(login)
    stored = Session.get()
    assert stored.token_hash == tokens.hash_token(login.token) and login.token not in stored.token_hash
    assert manager.authenticate(login.token) == alice.id
    clock.advance(30 * DAY_S - 1)
    assert manager.authenticate(login.token) == alice.id
    clock.advance(1)
    assert manager.authenticate(login.token) is None


@pytest.mark.parametrize("token", ["", "x" * 43, None, 42, "a" * 10_000])
def test_anything_but_a_live_token_authenticates_nobody(manager, alice, token) -> None:
    manager.login("alice", PW, None)

    assert manager.authenticate(token) is None


def test_last_seen_is_written_at_most_once_a_minute(manager, alice, clock) -> None:
    token = manager.login("alice", PW, None).token

    clock.advance(59)
    manager.authenticate(token)
    assert Session.get().last_seen_at == T0_MS
    clock.advance(1)
    manager.authenticate(token)
    assert Session.get().last_seen_at == T0_MS + 60_000


def test_a_wrong_password_or_unknown_user_is_the_same_401(manager, alice) -> None:
    wrong = refused(BadCredentials, manager.login, "alice", "wrong password 1", None)
    unknown = refused(BadCredentials, manager.login, "nobody", PW, None)

    assert (wrong.title, wrong.description) == (unknown.title, unknown.description)
    assert PW not in wrong.description
    refused(BadCredentials, manager.login, "alice", None, None)
    refused(BadCredentials, manager.login, None, PW, None)
    refused(BadCredentials, manager.login, "alice", "x" * 10_000, None)


def test_logout_revokes_that_token_only(manager, alice) -> None:
    first, second = manager.login("alice", PW, None), manager.login("alice", PW, None)

    assert manager.logout(first.token) == Revoked(alice.id, tokens.hash_token(first.token))
    assert manager.logout("garbage") is None

    assert manager.authenticate(first.token) is None
    assert manager.authenticate(second.token) == alice.id


def test_logout_everywhere_revokes_every_token_of_the_user(manager, alice) -> None:
    bob = manager.register("bob", "bob@example.com", PW)
    tokens_of_alice = [manager.login("alice", PW, None).token for _ in range(3)]
    bobs = manager.login("bob", PW, None).token

    assert manager.logout_everywhere(alice.id) == 3

    assert [manager.authenticate(t) for t in tokens_of_alice] == [None, None, None]
    assert manager.authenticate(bobs) == bob.id


def test_the_sessions_list_says_what_each_login_said_and_which_is_current(manager, alice, clock) -> None:
    browser = manager.login("alice", PW, "203.0.113.5", "browser", "Mozilla/5.0 (X11) \x00é" + "x" * 300)
    old = manager.login("alice", PW, None)  # as before schema 14: nothing said
    clock.advance(120)
    program = manager.login("alice", PW, "2001:db8::7", "program", "curl/8.5.0")
    manager.register("bob", "bob@example.com", PW)
    manager.login("bob", PW, None)
    clock.advance(60)
    manager.authenticate(browser.token)  # used last: listed first

    listed = manager.list_sessions(alice.id, program.token).sessions

    assert [s.current for s in listed] == [False, True, False]
    first, second, third = listed
    assert (first.kind, first.client, first.created_at) == ("browser", "203.0.113.5", iso_from_ms(T0_MS))
    assert first.user_agent == "Mozilla/5.0 (X11) ??" + "x" * 236  # printable, at most 256
    assert first.last_seen_at == iso_from_ms(T0_MS + 180_000)
    assert (second.kind, second.client, second.user_agent) == ("program", "2001:db8::7", "curl/8.5.0")
    assert (third.kind, third.client, third.user_agent) == (None, None, None)
    assert second.expires_at == iso_from_ms(T0_MS + 120_000 + tokens.SESSION_LIFETIME_MS)
    assert len({s.id for s in listed}) == 3
    assert all(isinstance(s.id, int) for s in listed)  # the row's number: nothing of the token
    assert not any(s.current for s in manager.list_sessions(alice.id, "garbage").sessions)

    manager.logout(old.token)
    assert [s.id for s in manager.list_sessions(alice.id, None).sessions] == [first.id, second.id]
    clock.advance(tokens.SESSION_LIFETIME_MS / 1000)
    assert manager.list_sessions(alice.id, browser.token).sessions == ()  # expired


def test_ending_one_session_revokes_that_one_only(manager, alice) -> None:
    mine, other = manager.login("alice", PW, None), manager.login("alice", PW, None)
    bob = manager.register("bob", "bob@example.com", PW)
    bobs = manager.login("bob", PW, None)
    other_id = next(s.id for s in manager.list_sessions(alice.id, other.token).sessions if s.current)
    (bobs_session,) = manager.list_sessions(bob.id, bobs.token).sessions

    assert manager.end_session(alice.id, other_id) == Revoked(alice.id, tokens.hash_token(other.token))

    assert manager.authenticate(other.token) is None
    assert manager.authenticate(mine.token) == alice.id
    for session_id in (other_id, bobs_session.id, 10**9, True):  # ended, another user's, none, not an id
        with pytest.raises(NotFound) as refused_:
            manager.end_session(alice.id, session_id)
        assert refused_.value.field == "id"
    assert manager.authenticate(bobs.token) == bob.id


def test_at_most_20_sessions_stay_live(manager, alice) -> None:
    issued = [manager.login("alice", PW, None).token for _ in range(21)]

    assert manager.authenticate(issued[0]) is None
    assert all(manager.authenticate(t) == alice.id for t in issued[1:])


def test_changing_the_password_revokes_every_session(manager, alice) -> None:
    token = manager.login("alice", PW, None).token

    assert manager.change_password(alice.id, PW, NEW_PW) is None

    assert manager.authenticate(token) is None
    refused(BadCredentials, manager.login, "alice", PW, None)
    assert manager.authenticate(manager.login("alice", NEW_PW, None).token) == alice.id


def test_changing_the_password_checks_the_old_and_the_new(manager, alice) -> None:
    token = manager.login("alice", PW, None).token

    assert (
        refused(WrongPassword, manager.change_password, alice.id, "not it at all 1", NEW_PW).field
        == "old_password"
    )
    invalid("new_password", manager.change_password, alice.id, PW, "short")
    invalid("new_password", manager.change_password, alice.id, PW, "password123!")
    assert "differ" in invalid("new_password", manager.change_password, alice.id, PW, PW).message
    refused(NotFound, manager.change_password, alice.id + 99, PW, NEW_PW)

    assert manager.authenticate(token) == alice.id  # nothing changed


# --- throttling ----------------------------------------------------------------------------


def test_five_failures_lock_the_account_with_exponential_back_off(manager, alice, clock) -> None:
    for _ in range(5):
        refused(BadCredentials, manager.login, "alice", "wrong password 1", None)

    locked = refused(Throttled, manager.login, "alice", PW, None)  # even the right password waits
    assert locked.retry_after_s == 30
    clock.advance(29)
    assert refused(Throttled, manager.login, "alice", PW, None).retry_after_s == 1
    clock.advance(1)
    refused(BadCredentials, manager.login, "alice", "wrong password 1", None)  # the 6th failure
    assert refused(Throttled, manager.login, "alice", PW, None).retry_after_s == 60
    clock.advance(60)
    assert manager.login("alice", PW, None).token

    row = User.get_by_id(alice.id)
    assert (row.failed_logins, row.locked_until) == (0, None)  # a success resets the account


def test_failures_far_apart_never_lock(manager, alice, clock) -> None:
    for _ in range(10):
        refused(BadCredentials, manager.login, "alice", "wrong password 1", None)
        clock.advance(15 * 60)

    assert manager.login("alice", PW, None).token


def test_an_unknown_username_is_locked_out_like_a_real_one(manager, alice) -> None:
    for name in ("alice", "nobody"):
        for _ in range(5):
            refused(BadCredentials, manager.login, name, "wrong password 1", None)

    assert refused(Throttled, manager.login, "nobody", PW, None).retry_after_s == 30
    assert refused(Throttled, manager.login, "alice", PW, None).retry_after_s == 30


def test_a_client_address_is_throttled_across_accounts(store, clock, passwords) -> None:
    manager = UserManager(
        store, clock, passwords=passwords, analyze=fake_analyze, address_policy=Policy(threshold=3)
    )
    manager.register("alice", "alice@example.com", PW)
    for name in ("u1", "u2", "u3"):
        refused(BadCredentials, manager.login, name, "wrong password 1", "198.51.100.7")

    assert refused(Throttled, manager.login, "alice", PW, "198.51.100.7").retry_after_s == 30
    assert manager.login("alice", PW, "203.0.113.9").token  # another address is not affected


def test_wrong_old_passwords_are_throttled_and_count_for_the_account(manager, alice) -> None:
    for _ in range(5):
        refused(WrongPassword, manager.change_password, alice.id, "not it at all 1", NEW_PW)

    assert refused(Throttled, manager.change_password, alice.id, PW, NEW_PW).retry_after_s == 30
    assert User.get_by_id(alice.id).failed_logins == 5  # the account's record: it is locked ...
    refused(BadCredentials, manager.login, "alice", "wrong password 1", "198.51.100.7")
    assert refused(Throttled, manager.login, "alice", PW, "198.51.100.7").retry_after_s == 60
    assert manager.login("alice", PW, "203.0.113.9").token  # ... for addresses that failed on it only


# --- nobody can lock somebody else out (issue 12) -------------------------------------------

ATTACKERS = [f"198.51.100.{i}" for i in range(1, 6)]
OWNER = "203.0.113.9"


def test_wrong_passwords_from_five_addresses_do_not_lock_the_owner_out(manager, alice) -> None:
    for address in ATTACKERS:
        refused(BadCredentials, manager.login, "alice", "wrong password 1", address)

    assert manager.login("alice", PW, OWNER).token  # a sixth address, that has not failed


def test_one_guess_per_lock_of_the_account_from_each_address_that_failed(manager, alice, clock) -> None:
    for address in ATTACKERS:
        refused(BadCredentials, manager.login, "alice", "wrong password 1", address)

    # The account is locked for the addresses that failed on it: even the right password waits.
    for address in ATTACKERS:
        assert refused(Throttled, manager.login, "alice", PW, address).retry_after_s == 30
    # A fresh address gets its guess, and the lock doubles for all that failed.
    refused(BadCredentials, manager.login, "alice", "wrong password 1", "198.51.100.6")
    assert refused(Throttled, manager.login, "alice", "wrong password 1", ATTACKERS[0]).retry_after_s == 60
    clock.advance(60)
    refused(BadCredentials, manager.login, "alice", "wrong password 1", ATTACKERS[0])
    assert refused(Throttled, manager.login, "alice", "wrong password 1", ATTACKERS[1]).retry_after_s == 120
    # Meanwhile the owner is never refused.
    assert manager.login("alice", PW, OWNER).token


def test_one_address_guessing_one_account_is_locked_out_of_it_alone(manager, alice) -> None:
    manager.register("bob", "bob@example.com", PW)
    attacker = ATTACKERS[0]
    for _ in range(5):
        refused(BadCredentials, manager.login, "alice", "wrong password 1", attacker)

    assert refused(Throttled, manager.login, "alice", PW, attacker).retry_after_s == 30
    assert manager.login("alice", PW, OWNER).token  # resets the account's record ...
    assert refused(Throttled, manager.login, "alice", PW, attacker).retry_after_s == 30  # ... not the pair
    assert manager.login("bob", PW, attacker).token  # another account from that address is fine


def test_failed_sign_ups_do_not_count_as_failed_logins(manager, alice) -> None:
    for _ in range(10):
        refused(Conflict, manager.register, "alice", "x@example.com", PW)

    assert manager.login("alice", PW, ATTACKERS[0]).token


def test_a_login_rehashes_a_hash_made_with_weaker_parameters(store, clock) -> None:
    weak = UserManager(store, clock, passwords=Passwords(cheap_hasher()))
    user = weak.register("alice", "alice@example.com", PW)
    old_hash = User.get_by_id(user.id).password_hash
    stronger = UserManager(
        store, clock, passwords=Passwords(PasswordHasher(time_cost=2, memory_cost=16, parallelism=1))
    )

    assert stronger.login("alice", PW, None).token

    new_hash = User.get_by_id(user.id).password_hash
    assert new_hash != old_hash and "t=2" in new_hash
    assert User.get_by_id(user.id).password_changed_at == T0_MS  # the password itself did not change
    assert stronger.login("alice", PW, None).token


# --- settings ------------------------------------------------------------------------------


def test_settings_default_until_saved(manager, alice) -> None:
    unverified = tuple(DestinationView(c, None, "unverified") for c in CHANNEL_TARGETS)
    assert manager.get_settings(alice.id) == SettingsView(
        None, None, None, None, None, None, None, "UTC", "USD", unverified
    )


def test_settings_are_replaced_whole(manager, alice) -> None:
    saved = manager.put_settings(
        alice.id,
        {
            "webhook_url": "https://example.com/hook",
            "webhook_secret": "s" * 20,
            "telegram_chat_id": -100123,
            "quiet_hours": "22:00-07:00",
            "timezone": "Europe/Paris",
        },
    )

    assert manager.get_settings(alice.id) == saved
    assert saved.telegram_chat_id == "-100123" and saved.quote_currency == "USD"
    assert "s" * 20 not in repr(saved)

    cleared = manager.put_settings(alice.id, {"sms_to": "+14155552671"})
    assert (cleared.webhook_url, cleared.timezone, cleared.sms_to) == (None, "UTC", "+14155552671")


def test_a_patch_changes_only_the_settings_given(manager, alice, store) -> None:
    with_targets(manager, alice.id, quiet_hours="22:00-07:00")
    scanner_told = []
    manager.changed = scanner_told.append

    patched = manager.patch_settings(alice.id, {"timezone": "Asia/Tokyo", "quiet_hours": None})

    assert (patched.timezone, patched.quiet_hours) == ("Asia/Tokyo", None)
    assert (patched.email_to, patched.sms_to) == ("alerts@example.com", "+14155552671")  # kept
    assert manager.get_settings(alice.id) == patched
    assert scanner_told == [alice.id]
    invalid("timezone", manager.patch_settings, alice.id, {"timezone": "Mars/Olympus"})
    invalid("fax", manager.patch_settings, alice.id, {"fax": "+1234"})
    assert manager.get_settings(alice.id) == patched
    refused(NotFound, manager.patch_settings, 12345, {})


def test_bad_settings_change_nothing(manager, alice) -> None:
    with_targets(manager, alice.id)

    invalid("sms_to", manager.put_settings, alice.id, {"sms_to": "0612345678"})
    invalid("body", manager.put_settings, alice.id, ["not", "a", "mapping"])

    assert manager.get_settings(alice.id).sms_to == "+14155552671"


def test_a_target_in_use_by_a_strategy_cannot_be_cleared(manager, alice) -> None:
    with_targets(manager, alice.id)
    manager.create_strategy(alice.id, strategy(name="Texts", channels=["sms"]))

    error = refused(Conflict, manager.put_settings, alice.id, {"email_to": "alerts@example.com"})

    assert error.field == "sms_to" and "'Texts' sends to sms" in error.description
    assert manager.get_settings(alice.id).sms_to == "+14155552671"


def test_currencies_and_local_webhooks_are_options(store, clock, passwords) -> None:
    manager = UserManager(
        store, clock, passwords=passwords, currencies=("EUR", "USD"), allow_local_webhooks=True
    )
    user = manager.register("alice", "alice@example.com", PW)

    assert manager.get_settings(user.id).quote_currency == "EUR"
    saved = manager.put_settings(
        user.id, {"webhook_url": "http://localhost:9000/h", "webhook_secret": "k" * 16}
    )
    assert saved.webhook_url == "http://localhost:9000/h"


def test_settings_of_an_unknown_user_are_not_saved(manager) -> None:
    refused(NotFound, manager.put_settings, 12345, {})


# --- strategies ----------------------------------------------------------------------------


def test_a_strategy_is_created_with_its_indicators(manager, alice) -> None:
    with_targets(manager, alice.id)

    view = manager.create_strategy(alice.id, strategy(condition="sma(50) > sma(200) and rsi(14) < 30"))

    assert isinstance(view, StrategyView)
    assert view.indicators == ("rsi(14)", "sma(200)", "sma(50)")
    assert (view.top_n, view.symbols, view.channels, view.enabled) == (50, None, ("email",), True)
    assert view.created_at == view.updated_at == iso_from_ms(T0_MS)
    assert manager.get_strategy(alice.id, view.id) == view
    assert manager.list_strategies(alice.id) == (view,)
    assert as_json(view)["channels"] == ["email"]


def test_a_strategy_needs_its_channels_targets(manager, alice) -> None:
    error = invalid("channels", manager.create_strategy, alice.id, strategy())

    assert "email needs email_to" in error.message


def test_a_bad_condition_names_its_column(manager, alice) -> None:
    with_targets(manager, alice.id)

    error = invalid("condition", manager.create_strategy, alice.id, strategy(condition="rsi(14) ? 30"))

    assert error.column == 9
    assert manager.list_strategies(alice.id) == ()


def test_strategy_names_are_unique_per_user(manager, alice) -> None:
    with_targets(manager, alice.id)
    manager.create_strategy(alice.id, strategy())

    assert refused(Conflict, manager.create_strategy, alice.id, strategy()).field == "name"


def test_a_user_has_at_most_50_strategies(manager, alice) -> None:
    with_targets(manager, alice.id)
    for i in range(50):
        manager.create_strategy(alice.id, strategy(name=f"s{i}"))

    error = refused(Conflict, manager.create_strategy, alice.id, strategy(name="one more"))

    assert "50" in error.description
    manager.delete_strategy(alice.id, manager.list_strategies(alice.id)[0].id)
    assert manager.create_strategy(alice.id, strategy(name="one more")).name == "one more"


def test_put_replaces_the_whole_strategy(manager, alice, clock) -> None:
    with_targets(manager, alice.id)
    view = manager.create_strategy(alice.id, strategy(cooldown_s=600, enabled=False))
    clock.advance(10)

    updated = manager.update_strategy(
        alice.id, view.id, strategy(symbols=["eth"], top_n=None, condition="ema(9) > ema(21)")
    )

    assert (updated.symbols, updated.top_n, updated.indicators) == (("ETH",), None, ("ema(21)", "ema(9)"))
    assert (updated.cooldown_s, updated.enabled) == (0, True)  # back to the defaults
    assert updated.updated_at == iso_from_ms(T0_MS + 10_000) and updated.created_at == view.created_at


def test_put_keeps_names_unique(manager, alice) -> None:
    with_targets(manager, alice.id)
    first = manager.create_strategy(alice.id, strategy(name="first"))
    manager.create_strategy(alice.id, strategy(name="second"))

    assert (
        refused(Conflict, manager.update_strategy, alice.id, first.id, strategy(name="second")).field
        == "name"
    )
    assert manager.update_strategy(alice.id, first.id, strategy(name="first")).name == "first"  # its own name


def test_patch_changes_only_what_is_given(manager, alice) -> None:
    with_targets(manager, alice.id)
    view = manager.create_strategy(alice.id, strategy(symbols=["BTC"], top_n=None, cooldown_s=600))

    patched = manager.patch_strategy(alice.id, view.id, {"enabled": False, "channels": ["sms", "email"]})
    assert (patched.enabled, patched.channels, patched.cooldown_s, patched.symbols) == (
        False,
        ("sms", "email"),
        600,
        ("BTC",),
    )

    to_top = manager.patch_strategy(alice.id, view.id, {"top_n": 10})
    assert (to_top.top_n, to_top.symbols) == (10, None)
    back = manager.patch_strategy(alice.id, view.id, {"symbols": ["SOL"]})
    assert (back.top_n, back.symbols) == (None, ("SOL",))
    assert manager.patch_strategy(alice.id, view.id, {"condition": "macd() > 0"}).indicators == ("macd()",)


def test_patch_validates_the_result(manager, alice) -> None:
    with_targets(manager, alice.id)
    view = manager.create_strategy(alice.id, strategy())

    invalid("symbols", manager.patch_strategy, alice.id, view.id, {"top_n": None})
    invalid("top_n", manager.patch_strategy, alice.id, view.id, {"symbols": ["BTC"], "top_n": 5})
    invalid("cooldown_s", manager.patch_strategy, alice.id, view.id, {"cooldown_s": -1})
    invalid("bogus", manager.patch_strategy, alice.id, view.id, {"bogus": 1})

    assert manager.get_strategy(alice.id, view.id) == view


def test_an_expired_strategy_can_still_be_patched(manager, alice, clock) -> None:
    with_targets(manager, alice.id)
    view = manager.create_strategy(alice.id, strategy(expires_at=T0_MS + 60_000))
    clock.advance(120)

    patched = manager.patch_strategy(alice.id, view.id, {"enabled": False})

    assert patched.expires_at == iso_from_ms(T0_MS + 60_000)
    assert manager.patch_strategy(alice.id, view.id, {"expires_at": None}).expires_at is None
    invalid("expires_at", manager.patch_strategy, alice.id, view.id, {"expires_at": T0_MS})


def test_read_only_fields_sent_back_are_ignored(manager, alice) -> None:
    with_targets(manager, alice.id)
    view = manager.create_strategy(alice.id, strategy())

    again = manager.update_strategy(
        alice.id, view.id, as_json(view) | {"indicators": ["forged(1)"], "id": 999}
    )

    assert (again.id, again.indicators) == (view.id, ("rsi(14)",))


def test_deleting_a_strategy(manager, alice) -> None:
    with_targets(manager, alice.id)
    view = manager.create_strategy(alice.id, strategy())

    assert manager.delete_strategy(alice.id, view.id) is None
    refused(NotFound, manager.delete_strategy, alice.id, view.id)
    refused(NotFound, manager.get_strategy, alice.id, view.id)


def test_another_users_strategy_does_not_exist_for_them(manager, alice) -> None:
    bob = manager.register("bob", "bob@example.com", PW)
    with_targets(manager, alice.id)
    with_targets(manager, bob.id)
    view = manager.create_strategy(alice.id, strategy())

    for call, args in (
        (manager.get_strategy, (bob.id, view.id)),
        (manager.update_strategy, (bob.id, view.id, strategy(name="mine now"))),
        (manager.patch_strategy, (bob.id, view.id, {"enabled": False})),
        (manager.delete_strategy, (bob.id, view.id)),
    ):
        assert refused(NotFound, call, *args).description == f"no strategy {view.id}"
    assert manager.list_strategies(bob.id) == ()
    assert manager.get_strategy(alice.id, view.id) == view


@pytest.mark.parametrize("strategy_id", ["1", None, 1.0, True])
def test_a_strategy_id_that_is_not_an_integer_is_not_found(manager, alice, strategy_id) -> None:
    refused(NotFound, manager.get_strategy, alice.id, strategy_id)
    refused(NotFound, manager.delete_strategy, alice.id, strategy_id)


def test_validating_a_condition_saves_nothing(manager, alice) -> None:
    info = manager.validate_condition("rsi(14) < 30 and percent_change_24h < -10")

    assert info.indicators == ("rsi(14)",) and info.fields == ("percent_change_24h",)
    assert as_json(info) == {
        "valid": True,
        "indicators": ["rsi(14)"],
        "fields": ["percent_change_24h"],
    }
    assert invalid("condition", manager.validate_condition, "   ").column == 1
    assert manager.list_strategies(alice.id) == ()
