"""The Telegram bot's commands (``ubot/users/bot.py``), plain: a UserManager on the fake clock, no
thread, no socket. Only the linked chat acts for its user; the commands go through the manager's
own strategy calls (so its rules hold); other chats are told once, throttled."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.notify.test_notifier_actor import alert, scan
from ubot.models.alerts import AlertStore
from ubot.models.tables import Delivery
from ubot.notify.caps import paused_reason
from ubot.notify.messages import DeliveryTarget
from ubot.notify.outbox import hold_until
from ubot.timeutil import parse_iso_ms
from ubot.users import bot
from ubot.users import destinations as dest
from ubot.users.errors import ValidationError

CHAT = "42"


def strategy(manager, user_id: int, name: str, **extra) -> int:
    body = {"name": name, "condition": "price > 1", "timeframe": "1h", "top_n": 5, "channels": ["telegram"]}
    return manager.create_strategy(user_id, {**body, **extra}).id


@pytest.fixture
def ada(manager) -> int:
    user = manager.register("ada", "ada@example.com", "correct horse battery 9").id
    manager.patch_settings(user, {"timezone": "Europe/Berlin"})
    token = manager.begin_verification(user, "telegram").token
    assert manager.telegram_message(CHAT, f"/start {token}").startswith(
        "Linked: this chat gets the alerts of ada"
    )
    return user


def say(manager, text: str, chat: str = CHAT) -> str | None:
    return manager.telegram_message(chat, text)


def test_parse_and_durations() -> None:
    assert bot.parse("/pause 3") == ("pause", "3")
    assert bot.parse("  /Resume@ubot_alerts_bot all ") == ("resume", "all")
    assert bot.parse("/list") == ("list", "")
    assert bot.parse("hello") is None
    assert [bot.duration_ms(t) for t in ("30m", "2h", "1d", "90 minutes", "3 hours")] == [
        1_800_000,
        7_200_000,
        86_400_000,
        5_400_000,
        10_800_000,
    ]
    for wrong, why in (("soon", "not a duration"), ("8d", "at most 7 days"), ("0m", "at least 1 minute")):
        with pytest.raises(ValidationError, match=why) as error:
            bot.duration_ms(wrong)
        assert error.value.field == "duration"


def test_start_links_the_chat_and_says_so_and_a_bad_token_is_told(manager, clock) -> None:
    ada = manager.register("ada", "ada@example.com", "correct horse battery 9").id
    bob = manager.register("bob", "bob@example.com", "correct horse battery 9").id
    assert "link is unknown, used or has expired" in say(manager, "/start not-a-live-token", "7")
    assert say(manager, "/start another-dead-token", "7") is None  # told a moment ago: throttled
    token = manager.begin_verification(ada, "telegram").token  # a live one is never throttled
    reply = say(manager, f"/start@ubot_alerts_bot {token}", "7")
    assert reply.startswith("Linked: this chat gets the alerts of ada on uBot.") and "/pause" in reply
    assert manager.get_settings(ada).telegram_chat_id == "7"
    assert "stays linked" in say(manager, f"/start {token}", "7")  # used
    # a chat acts for one account: another's link for the same chat is refused
    other = manager.begin_verification(bob, "telegram").token
    assert "linked to another uBot account" in say(manager, f"/start {other}", "7")
    assert manager.get_settings(bob).telegram_chat_id is None


def test_only_the_linked_chat_acts_and_others_are_told_once(manager, ada, clock) -> None:
    strategy(manager, ada, "dip")
    assert say(manager, "/pause all", "99") == bot.NOT_LINKED
    assert say(manager, "/list", "99") is None  # once per chat in NOT_LINKED_EVERY_MS
    assert manager.list_strategies(ada)[0].enabled
    # every chat together: at most NOT_LINKED_PER_MINUTE replies a minute
    replies = [say(manager, "hi", str(1000 + i)) for i in range(bot.NOT_LINKED_PER_MINUTE + 5)]
    assert replies.count(bot.NOT_LINKED) == bot.NOT_LINKED_PER_MINUTE - 1 and replies[-1] is None
    clock.advance(bot.NOT_LINKED_EVERY_MS / 1000)
    assert say(manager, "/list", "99") == bot.NOT_LINKED
    # a chat whose link was replaced in the settings no longer acts
    manager.patch_settings(ada, {"telegram_chat_id": "43"})
    clock.advance(bot.NOT_LINKED_EVERY_MS / 1000)
    assert say(manager, "/list") == bot.NOT_LINKED


def test_unknown_commands_and_text_get_the_help(manager, ada) -> None:
    assert say(manager, "/frobnicate") == bot.HELP
    assert say(manager, "what now?") == bot.HELP
    assert say(manager, "/help") == bot.HELP
    assert say(manager, "/start") == bot.HELP


def test_list_pause_and_resume_through_the_managers_strategy_calls(manager, ada, clock) -> None:
    dip = strategy(manager, ada, "dip")
    rise = strategy(manager, ada, "rise")
    assert say(manager, "/list") == f"#{dip} dip: on\n#{rise} rise: on"

    assert say(manager, f"/pause {dip}") == f"#{dip} dip: paused."
    assert [v.enabled for v in manager.list_strategies(ada)] == [False, True]
    assert say(manager, f"/pause #{dip}") == f"#{dip} is paused already."
    assert say(manager, "/pause 999") == "You have no strategy #999."
    assert "is not a strategy id" in say(manager, "/pause dip")
    assert "Which strategy?" in say(manager, "/pause")
    assert say(manager, "/pause all") == f"#{rise} rise: paused."
    assert "Nothing to pause" in say(manager, "/pause all")
    assert say(manager, "/list") == f"#{dip} dip: paused\n#{rise} rise: paused"

    # uBot paused one itself (it fired too often): /list says why, /resume clears it
    manager.patch_strategy(ada, dip, {"enabled": True})
    reason = paused_reason(5_000, 1_000, 600_000)
    manager.disable_strategy(dip, reason)
    listed = say(manager, "/list").splitlines()
    assert listed[0].startswith(f"#{dip} dip: paused by uBot: it raised 5,000 alerts") and listed[0].endswith(
        "…"
    )
    assert say(manager, "/resume all") == f"#{dip} dip: resumed.\n#{rise} rise: resumed."
    views = manager.list_strategies(ada)
    assert [v.enabled for v in views] == [True, True] and views[0].paused_reason is None
    # another user's strategy is not found, as over HTTP
    bob = manager.register("bob", "bob@example.com", "correct horse battery 9").id
    theirs = strategy(manager, bob, "theirs", channels=[])
    assert say(manager, f"/pause {theirs}") == f"You have no strategy #{theirs}."
    assert manager.list_strategies(bob)[0].enabled


def test_resume_follows_the_managers_rules(manager, ada) -> None:
    dip = strategy(manager, ada, "dip", enabled=False)
    manager.budgets = type(manager.budgets)(user=1, server=10**9)  # any strategy is over it now
    reply = say(manager, f"/resume {dip}")
    assert reply.startswith(f"#{dip} not resumed: this strategy costs") and "user_budget" in reply
    assert not manager.list_strategies(ada)[0].enabled


def test_mute_holds_every_alert_until_its_end_and_off_ends_it(manager, ada, clock) -> None:
    dip = strategy(manager, ada, "dip")
    now = manager.now_ms()
    reply = say(manager, "/mute 2h")
    assert reply.startswith("Muted until ") and "CET" in reply
    assert manager.store.muted_until(ada) == now + 7_200_000
    (spec,) = manager.specs_of(ada).specs
    assert spec.id == dip and spec.muted_until_ms == now + 7_200_000
    assert manager.get_settings(ada).muted_until is not None
    assert say(manager, "/list").startswith("Alerts muted until ")
    assert "not a duration" in say(manager, "/mute forever")
    assert say(manager, "/mute").startswith("Alerts muted until ")

    assert say(manager, "/mute off").startswith("Unmuted: new alerts go out at once.")
    assert manager.store.muted_until(ada) is None and manager.specs_of(ada).specs[0].muted_until_ms is None
    assert say(manager, "/mute off") == "Not muted: alerts go out as they are raised."
    say(manager, "/mute 30m")
    clock.advance(1800)
    assert manager.get_settings(ada).muted_until is None  # over
    assert say(manager, "/mute").startswith("Not muted.")


def held_alert(manager, user_id: int, strategy_id: int, coin_id: int = 1) -> None:
    """An alert of the strategy written now to the linked chat, held as the Notifier writes it."""
    owner = SimpleNamespace(id=strategy_id, user_id=user_id, name="dip")
    muted = manager.store.muted_until(user_id)
    raised = alert(owner, DeliveryTarget("telegram", CHAT), coin_id=coin_id, muted_until_ms=muted)
    AlertStore(manager.store.db).record(scan(raised, tick=coin_id), manager.now_ms(), hold_until)


def test_mute_off_sends_what_the_mute_held_now_or_when_the_quiet_hours_end(manager, ada, clock) -> None:
    """``/mute off`` releases the deliveries the mute held (``UserManager.mute``): due now, or at
    the end of the quiet hours the user is in; a shorter mute releases them at its end."""
    dip = strategy(manager, ada, "dip")
    say(manager, "/mute 1d")
    held_alert(manager, ada, dip, 1)
    held_alert(manager, ada, dip, 2)
    muted = manager.store.muted_until(ada)
    assert [(d.status, d.next_attempt_at) for d in Delivery.select()] == [("held", muted)] * 2

    reply = say(manager, "/mute 2h")
    assert "The 2 held already go out then too." in reply
    assert {d.next_attempt_at for d in Delivery.select()} == {manager.now_ms() + 7_200_000}

    assert say(manager, "/mute off") == (
        "Unmuted: the 2 messages it held go out now (paced as usual); new alerts go out at once."
    )
    assert {d.next_attempt_at for d in Delivery.select()} == {manager.now_ms()}

    # quiet hours 22:00-07:00 in Berlin; it is 23:13 there (T0 is 22:13 UTC)
    manager.patch_settings(ada, {"quiet_hours": "22:00-07:00"})
    say(manager, "/mute 1d")
    Delivery.delete().execute()
    held_alert(manager, ada, dip, 3)
    reply = say(manager, "/mute off")
    assert (
        reply == "Unmuted; your quiet hours hold alerts until 07:00 CET: the message it held goes out then."
    )
    (row,) = Delivery.select()
    assert (row.status, row.next_attempt_at) == ("held", parse_iso_ms("2023-11-15T06:00:00Z"))


def test_a_chat_linked_before_the_telegram_target_changed_is_not_linked(manager, ada, clock) -> None:
    """The link belongs to the chat it was made for: verifying another target unlinks this one."""
    manager.patch_settings(ada, {"telegram_chat_id": None})
    manager.patch_settings(ada, {"telegram_chat_id": CHAT})  # typed back: not verified any more
    assert {d.channel: d.state for d in manager.get_settings(ada).destinations}["telegram"] == dest.UNVERIFIED
    assert say(manager, "/list") == bot.NOT_LINKED
