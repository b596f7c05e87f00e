"""Verified destinations in the UserManager (plain, on the fake clock): codes expire, wrong ones are
limited, sending is throttled per destination, per address whoever asks and per user, a changed address is unverified again,
and only verified destinations reach the Scanner as deliverable."""

from __future__ import annotations

import pytest

from tests.support.pglocks import second_waits
from ubot.models.db import is_sqlite
from ubot.models.users import UserStore
from ubot.users import destinations as dest
from ubot.users.errors import Conflict, NotFound, NotVerified, Throttled, ValidationError
from ubot.users.manager import UserManager


@pytest.fixture
def ada(manager) -> int:
    user = manager.register("ada", "ada@example.com", "correct horse battery 9")
    manager.put_settings(user.id, {"email_to": "ada@example.com", "sms_to": "+14155552671"})
    manager.create_strategy(
        user.id,
        {
            "name": "dip",
            "condition": "price > 1",
            "timeframe": "1h",
            "top_n": 5,
            "channels": ["email", "sms"],
        },
    )
    return user.id


def state(manager, user_id: int, channel: str) -> str:
    return {d.channel: d.state for d in manager.get_settings(user_id).destinations}[channel]


def test_only_verified_destinations_are_deliverable(manager, ada) -> None:
    (spec,) = manager.specs_of(ada).specs
    assert [(d.channel, d.unverified) for d in spec.deliveries] == [("email", True), ("sms", True)]
    with pytest.raises(NotVerified, match="email destination is not verified"):
        manager.test_target(ada, "email")

    what = manager.begin_verification(ada, "email")
    assert state(manager, ada, "email") == "pending"
    assert manager.store.destination(ada, "email").code_hash == dest.digest(what.code)  # only its digest
    manager.confirm_destination(ada, "email", what.code)

    (spec,) = manager.specs_of(ada).specs
    assert [(d.channel, d.unverified) for d in spec.deliveries] == [("email", False), ("sms", True)]
    assert manager.list_strategies(ada)[0].unverified == ("sms",)
    with pytest.raises(Conflict, match="already verified"):
        manager.begin_verification(ada, "email")


def test_a_changed_address_is_unverified_again_even_if_changed_back(manager, ada) -> None:
    what = manager.begin_verification(ada, "email")
    manager.confirm_destination(ada, "email", what.code)
    manager.patch_settings(ada, {"email_to": "other@example.com"})
    assert state(manager, ada, "email") == "unverified"
    manager.patch_settings(ada, {"email_to": "ada@example.com"})
    assert state(manager, ada, "email") == "unverified"
    manager.patch_settings(ada, {"timezone": "Europe/Paris"})  # other members leave it alone
    assert state(manager, ada, "email") == "unverified"


def test_a_code_expires(manager, ada, clock) -> None:
    what = manager.begin_verification(ada, "sms")
    clock.advance(dest.CODE_LIFETIME_MS / 1000)
    assert state(manager, ada, "sms") == "unverified"
    with pytest.raises(ValidationError, match="expired") as refused:
        manager.confirm_destination(ada, "sms", what.code)
    assert refused.value.field == "code"


def test_wrong_codes_are_limited_then_a_new_code_works(manager, ada, clock) -> None:
    what = manager.begin_verification(ada, "sms")
    wrong = f"{(int(what.code) + 1) % 10**6:06d}"
    for left in range(dest.MAX_ATTEMPTS - 1, -1, -1):
        with pytest.raises(ValidationError, match="is not the code sent") as refused:
            manager.confirm_destination(ada, "sms", wrong)
        assert (f"{left} attempt(s) left" if left else "ask for a new one") in refused.value.message
    with pytest.raises(ValidationError, match="wrong codes"):
        manager.confirm_destination(ada, "sms", what.code)
    clock.advance(dest.RESEND_MS / 1000)
    again = manager.begin_verification(ada, "sms")
    assert manager.confirm_destination(ada, "sms", again.code).state == "verified"


def test_sending_is_throttled_per_destination_and_per_user(manager, ada, clock) -> None:
    manager.begin_verification(ada, "email")
    with pytest.raises(Throttled) as throttled:
        manager.begin_verification(ada, "email")
    assert throttled.value.retry_after_s == 60
    clock.advance(59)
    with pytest.raises(Throttled) as throttled:
        manager.begin_verification(ada, "email")
    assert throttled.value.retry_after_s == 1
    for number in range(dest.USER_SENDS - 1):  # each to another number (one gets ADDRESS_SENDS)
        clock.advance(dest.RESEND_MS / 1000)
        manager.patch_settings(ada, {"sms_to": f"+1415555{2600 + number}"})
        manager.begin_verification(ada, "sms")
    clock.advance(dest.RESEND_MS / 1000)
    with pytest.raises(Throttled, match=f"at most {dest.USER_SENDS} verification messages"):
        manager.begin_verification(ada, "email")


def test_one_address_is_throttled_whoever_asks_and_however_often_it_is_typed_again(
    manager, ada, clock
) -> None:
    """Several accounts typing one victim's address, or one account changing it away and back, do
    not get more codes to it: one a minute and ADDRESS_SENDS an hour per address, all accounts
    together (the e-mail address case-insensitive)."""
    others = []
    for name in ("bob", "cyd", "dan", "eve", "fay", "gus"):
        user = manager.register(name, f"{name}@example.com", "correct horse battery 9").id
        manager.put_settings(user, {"email_to": "Victim@Example.com"})
        others.append(user)
    manager.begin_verification(others[0], "email")
    with pytest.raises(Throttled, match="less than 60 s ago") as throttled:
        manager.begin_verification(others[1], "email")  # another account, the same address
    assert throttled.value.retry_after_s == 60
    manager.put_settings(others[0], {"email_to": "bob@example.com"})  # away and back: a new row
    manager.put_settings(others[0], {"email_to": "victim@example.com"})
    with pytest.raises(Throttled, match="less than 60 s ago"):
        manager.begin_verification(others[0], "email")
    for user in others[1 : dest.ADDRESS_SENDS]:
        clock.advance(dest.RESEND_MS / 1000)
        manager.begin_verification(user, "email")
    clock.advance(dest.RESEND_MS / 1000)
    with pytest.raises(Throttled, match=f"got {dest.ADDRESS_SENDS} verification messages in the last 60"):
        manager.begin_verification(others[dest.ADDRESS_SENDS], "email")
    manager.begin_verification(ada, "email")  # another address is not concerned
    clock.advance(dest.USER_WINDOW_MS / 1000)
    manager.begin_verification(others[dest.ADDRESS_SENDS], "email")


def test_channels_without_a_target_or_a_code(manager, ada) -> None:
    with pytest.raises(ValidationError, match="set whatsapp_to first"):
        manager.begin_verification(ada, "whatsapp")
    with pytest.raises(ValidationError, match="not verified by a code"):
        manager.confirm_destination(ada, "webhook", "123456")
    with pytest.raises(NotFound):
        manager.begin_verification(ada, "pigeon")
    with pytest.raises(ValidationError, match="no code was sent"):
        manager.confirm_destination(ada, "email", "123456")


def test_an_email_link_confirms_once_while_live_and_for_its_address(manager, ada, clock) -> None:
    what = manager.begin_verification(ada, "email")
    row = manager.store.destination(ada, "email")
    assert len(what.token) == 43 and row.token == dest.digest(what.token)  # only its digest is stored
    with pytest.raises(ValidationError, match="unknown or used"):
        manager.confirm_link("x" * 43)
    view = manager.confirm_link(what.token)
    assert (view.channel, view.target, view.state) == ("email", "ada@example.com", "verified")
    assert manager.specs_of(ada).specs[0].deliveries[0].unverified is False
    with pytest.raises(ValidationError, match="unknown or used"):
        manager.confirm_link(what.token)
    # expired
    manager.patch_settings(ada, {"email_to": "new@example.com"})
    clock.advance(dest.RESEND_MS / 1000)
    late = manager.begin_verification(ada, "email")
    clock.advance(dest.CODE_LIFETIME_MS / 1000)
    with pytest.raises(ValidationError, match="expired"):
        manager.confirm_link(late.token)
    # sent to an address changed since
    clock.advance(dest.RESEND_MS / 1000)
    moved = manager.begin_verification(ada, "email")
    manager.store.put_settings(ada, {**manager.store.settings(ada), "email_to": "other@example.com"})
    with pytest.raises(ValidationError, match="no longer in email_to"):
        manager.confirm_link(moved.token)
    # a code confirms as well, and uses the link up
    manager.patch_settings(ada, {"email_to": "ada@example.com"})
    clock.advance(dest.RESEND_MS / 1000)
    both = manager.begin_verification(ada, "email")
    manager.confirm_destination(ada, "email", both.code)
    with pytest.raises(ValidationError, match="unknown or used"):
        manager.confirm_link(both.token)


def test_a_telegram_link_links_the_chat_once_and_expires(manager, ada, clock) -> None:
    first = manager.begin_verification(ada, "telegram")
    assert first.code is None and first.token
    with pytest.raises(ValidationError, match="not a live link"):
        manager.link_telegram("unknown-token", "42")
    assert manager.link_telegram(first.token, "42") == "ada"
    assert manager.get_settings(ada).telegram_chat_id == "42"
    assert state(manager, ada, "telegram") == "verified"
    with pytest.raises(ValidationError, match="not a live link"):
        manager.link_telegram(first.token, "43")  # used
    clock.advance(dest.RESEND_MS / 1000)
    second = manager.begin_verification(ada, "telegram")
    clock.advance(dest.LINK_LIFETIME_MS / 1000)
    with pytest.raises(ValidationError, match="not a live link"):
        manager.link_telegram(second.token, "43")  # expired
    assert manager.get_settings(ada).telegram_chat_id == "42"


def test_a_webhook_is_verified_only_when_it_answered(manager, ada, clock) -> None:
    manager.patch_settings(ada, {"webhook_url": "https://hooks.example.com/x", "webhook_secret": "s" * 20})
    what = manager.begin_verification(ada, "webhook")
    assert what.secret == "s" * 20 and what.code is None
    assert manager.verification_answered(ada, "webhook", what.target, False, "HTTP 500").state == "unverified"
    clock.advance(dest.RESEND_MS / 1000)
    what = manager.begin_verification(ada, "webhook")
    assert manager.verification_answered(ada, "webhook", what.target, True, "HTTP 200").state == "verified"


def test_the_limits_hold_across_processes(db, manager, ada, clock, passwords) -> None:
    """Several gateway workers each have a UserManager (and a UserStore) of their own: the sends are
    counted in the database, so alternating between two neither resends sooner nor sends more
    (per address and per user), and a send of one counts in the other at once."""
    other = UserManager(UserStore(db), clock, passwords=passwords)  # another worker's
    manager.begin_verification(ada, "email")
    with pytest.raises(Throttled, match="less than 60 s ago"):
        other.begin_verification(ada, "email")
    bob = other.register("bob", "bob@example.com", "correct horse battery 9").id
    other.put_settings(bob, {"email_to": "ADA@example.com"})  # ada's address, typed in by bob
    with pytest.raises(Throttled, match="less than 60 s ago"):
        other.begin_verification(bob, "email")
    workers = [other, manager]
    for number in range(dest.USER_SENDS - 1):  # each to another number, each worker in turn
        clock.advance(dest.RESEND_MS / 1000)
        manager.patch_settings(ada, {"sms_to": f"+1415555{2600 + number}"})
        workers[number % 2].begin_verification(ada, "sms")
    clock.advance(dest.RESEND_MS / 1000)
    for worker in workers:
        with pytest.raises(Throttled, match=f"at most {dest.USER_SENDS} verification messages"):
            worker.begin_verification(ada, "email")
    clock.advance(dest.USER_WINDOW_MS / 1000)
    other.begin_verification(ada, "email")


def test_two_workers_sending_to_one_address_at_once_take_turns(
    db, store, manager, ada, clock, passwords
) -> None:
    """PostgreSQL: worker A is between its check and its count (its turn held) when worker B asks to
    send to the same address: B waits for A's turn, then finds A's send and is refused. Without the
    turn both would read no send and both send."""
    if is_sqlite(db):
        pytest.skip("SQLite: the turn is the database's write lock, taken at BEGIN IMMEDIATE")
    other = UserManager(UserStore(db), clock, passwords=passwords)
    bob = other.register("bob", "bob@example.com", "correct horse battery 9").id
    other.put_settings(bob, {"email_to": "ada@example.com"})

    refused = second_waits(
        db,
        store.send_turn(),  # worker A's turn
        lambda: manager.begin_verification(ada, "email"),  # the turn is re-entrant
        lambda: other.begin_verification(bob, "email"),  # worker B
    )

    assert isinstance(refused, Throttled) and "less than 60 s ago" in str(refused)
