"""Batches, caps, pause and cancellation through the Notifier and the real Telegram and webhook channels,
over real sockets against the local fakes (issue 13): a 1,000-coin flood is one message per tick per
destination, another strategy's alert to the same chat is not queued behind a thousand messages, an
hourly cap keeps messages back and the next one says how many, a strategy firing too often pauses
itself, and disabling or deleting a strategy cancels what it has not sent."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest

from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.fakes.webhook import FakeWebhook
from tests.support.waits import wait_until
from ubot.actors.notifier import Notifier
from ubot.clocks import FakeClock
from ubot.http.shapes import WebhookBody
from ubot.models.alerts import AlertStore
from ubot.models.tables import Delivery, Strategy, User, UserSettings
from ubot.models.users import UserStore
from ubot.notify.channels import TelegramChannel, WebhookChannel
from ubot.notify.channels.webhook import verify
from ubot.notify.messages import Alert, DeliveryTarget, ScanOutcome
from ubot.users.manager import UserManager

T0 = 1_764_876_000.0
SECRET = "whsec-0123456789abcdef"
COINS = 1000


@pytest.fixture
def fakes():
    with FakeWebhook() as hook, FakeTelegram() as telegram:
        yield hook, telegram


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


def make_strategy(user: User, name: str) -> Strategy:
    return Strategy.create(
        user=user, name=name, condition="price > 0", indicators=[], timeframe="1m", top_n=1000,
        channels=["webhook", "telegram"], frequency="once_per_bar", cooldown_s=0, enabled=True,
        created_at=1, updated_at=1,
    )  # fmt: skip


@pytest.fixture
def owner(db, fakes) -> User:
    hook, _ = fakes
    user = User.create(
        username="ada", email="ada@example.com", password_hash="h", created_at=1, password_changed_at=1
    )
    UserSettings.create(user=user, webhook_url=hook.url(), webhook_secret=SECRET, telegram_chat_id="42")
    return user


def alerts(strategy: Strategy, hook: FakeWebhook, coins: int, at_ms: int) -> list[Alert]:
    """The strategy's alerts of one tick, the least significant coin first (the scan's order need
    not be the message's)."""
    targets = (DeliveryTarget("webhook", hook.url()), DeliveryTarget("telegram", "42"))
    return [
        Alert(
            strategy_id=strategy.id,
            user_id=strategy.user_id,
            strategy_name=strategy.name,
            coin_id=n,
            symbol=f"C{n}",
            name=f"Coin {n}",
            price=1000.0 / n,
            timeframe="1m",
            fired_at_ms=at_ms,
            bar_open_ms=at_ms - at_ms % 60_000,
            condition="price > 0",
            values={"price": 1000.0 / n},
            subject="",
            text="",
            deliveries=targets,
            rank=n,
        )  # fmt: skip
        for n in range(coins, 0, -1)
    ]


def start(db, clock: FakeClock, telegram: FakeTelegram, **options: Any):
    channels = {
        "webhook": WebhookChannel(allow_private_addresses=True, clock=clock.now),
        "telegram": TelegramChannel(bot_token=TOKEN, base_url=telegram.base_url),
    }
    return Notifier.start(AlertStore(db), channels, clock, **options)


def tick(notifier, number: int, *batches: list[Alert]) -> None:
    at_ms = round(T0 * 1000) + number * 60_000
    notifier.tell(
        ScanOutcome(worker=0, tick=number, snapshot_ms=at_ms, alerts=tuple(a for b in batches for a in b))
    )


def statuses() -> list[str]:
    return [d.status for d in Delivery.select().order_by(Delivery.id)]


def test_a_thousand_coin_flood_is_one_message_per_tick_per_destination(db, fakes, clock, owner) -> None:
    hook, telegram = fakes
    flood, other = make_strategy(owner, "flood"), make_strategy(owner, "other")
    notifier = start(db, clock, telegram)
    try:
        for number in (1, 2, 3):
            at_ms = round(clock.now() * 1000)
            # the other strategy's single alert comes after the thousand in the worker's outcome
            tick(notifier, number, alerts(flood, hook, COINS, at_ms), alerts(other, hook, 1, at_ms))
            sent = 2 * number
            wait_until(lambda sent=sent: len(hook.requests) == sent, "both webhook calls of the tick")
            wait_until(lambda sent=sent: len(telegram.sent) == sent - 1, "the tick's first Telegram message")
            # chat 42 is paced at one message a second: the other strategy's message is next, not
            # behind a thousand
            assert clock.wait_for_sleeper() == clock.now() + 1
            clock.advance(1)
            wait_until(lambda sent=sent: len(telegram.sent) == sent, "the tick's second Telegram message")
            # written once the sender is done (the chat's next pace is set from the clock as it is now)
            wait_until(
                lambda sent=sent: statuses() == ["sent"] * 2 * sent, "the tick's deliveries marked sent"
            )
            clock.advance(59)
    finally:
        notifier.stop()

    assert Delivery.select().count() == 12  # 3 ticks x 2 strategies x 2 destinations, not 6,006
    texts = [m["text"] for m in telegram.sent]
    assert [t.startswith('Your strategy "flood" fired on 1m for 1,000 coins:') for t in texts] == [
        True,
        False,
    ] * 3
    flood_text = texts[0]
    assert flood_text.splitlines()[1].startswith("C1 (Coin 1) 1,000.00 USD")  # the top coin first
    assert "more coins" in flood_text and len(flood_text.encode("utf-16-le")) // 2 <= 4096
    assert texts[1].startswith('C1 (Coin 1) is at 1,000.00 USD: your strategy "other" fired on 1m.')
    bodies = [msgspec.json.decode(r.body, type=WebhookBody) for r in hook.requests]
    assert sorted(len(b.alerts) for b in bodies) == [1, 1, 1, COINS, COINS, COINS]
    big = next(b for b in bodies if len(b.alerts) == COINS)
    assert [a.symbol for a in big.alerts[:3]] == ["C1", "C2", "C3"] and big.strategy_name == "flood"
    assert len({a.id for a in big.alerts}) == COINS
    for request, body in zip(hook.requests, bodies, strict=True):
        assert body.delivery_id == request.header("X-Ubot-Delivery")
        assert verify(SECRET, request.header("X-Ubot-Signature") or "", request.body, now=T0 + 200)
    assert len({b.delivery_id for b in bodies}) == 6


def test_over_the_hourly_cap_messages_are_kept_back_and_the_next_one_says_how_many(
    db, fakes, clock, owner
) -> None:
    hook, telegram = fakes
    flood = make_strategy(owner, "flood")
    notifier = start(db, clock, telegram, messages_per_destination_hour=2)
    try:
        for number in (1, 2, 3, 4):
            tick(notifier, number, alerts(flood, hook, 5, round(clock.now() * 1000)))
            clock.advance(60)
        wait_until(lambda: len(telegram.sent) == 1, "the first Telegram message")
        clock.advance(clock.wait_for_sleeper() - clock.now())  # chat 42's pace, for the second
        wait_until(lambda: statuses().count("sent") == 4, "the first two ticks sent")
        assert statuses().count("capped") == 4  # ticks 3 and 4, both destinations
        clock.advance(3600)  # an hour later: room again
        tick(notifier, 5, alerts(flood, hook, 5, round(clock.now() * 1000)))
        wait_until(lambda: statuses().count("sent") == 6, "the fifth tick sent")
    finally:
        notifier.stop()

    assert len(telegram.sent) == 3 and len(hook.requests) == 3
    said = telegram.sent[-1]["text"]
    assert said.startswith("10 alerts not sent before this one: hourly message cap reached.\n"), said
    assert msgspec.json.decode(hook.requests[-1].body, type=WebhookBody).skipped == 10


def test_a_strategy_firing_too_often_pauses_itself_and_tells_its_owner(db, fakes, clock, owner) -> None:
    hook, telegram = fakes
    flood = make_strategy(owner, "flood")
    manager = UserManager(UserStore(db), clock)
    notifier = start(
        db, clock, telegram, pause_after_alerts=1500, pause_window_s=600, pause=manager.disable_strategy
    )
    try:
        tick(notifier, 1, alerts(flood, hook, COINS, round(clock.now() * 1000)))
        clock.advance(60)
        tick(notifier, 2, alerts(flood, hook, COINS, round(clock.now() * 1000)))
        wait_until(lambda: len(hook.requests) == 2, "both ticks' webhook calls")
        wait_until(lambda: not Strategy.get_by_id(flood.id).enabled, "the strategy paused")
    finally:
        notifier.stop()

    view = manager.get_strategy(owner.id, flood.id)
    assert view.enabled is False
    assert view.paused_reason is not None and view.paused_reason.startswith(
        "paused by uBot: it raised 2,000 alerts within 10 minutes, more than the 1,500 allowed"
    )
    assert hook.requests[1].json()["alerts"][0]["symbol"] == "C1"
    manager.patch_strategy(owner.id, flood.id, {"enabled": True})
    assert manager.get_strategy(owner.id, flood.id).paused_reason is None


@pytest.mark.parametrize("how", ["disable", "delete"])
def test_disabling_or_deleting_a_strategy_cancels_what_it_has_not_sent(
    db, fakes, clock, owner, how, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="ubot.actors.notifier")
    hook, telegram = fakes
    flood = make_strategy(owner, "flood")
    manager = UserManager(UserStore(db), clock)
    notifier = start(db, clock, telegram)
    try:
        tick(notifier, 1, alerts(flood, hook, 3, round(clock.now() * 1000)))
        tick(notifier, 2, alerts(flood, hook, 3, round(clock.now() * 1000) + 1))
        wait_until(lambda: len(telegram.sent) == 1, "the first message to chat 42")
        assert clock.wait_for_sleeper() == T0 + 1  # the second waits for the chat's pace
        # (the first may still be marked cancelled below, its answer not yet written: it ends "sent",
        # as it was)
        if how == "disable":
            manager.patch_strategy(owner.id, flood.id, {"enabled": False})
        else:
            manager.delete_strategy(owner.id, flood.id)
        clock.advance(1)
        wait_until(lambda: "cancelled, not sent" in caplog.text, "the sender to find it cancelled")
        wait_until(lambda: "sent" in statuses(), "the first marked sent")
    finally:
        notifier.stop()

    assert len(telegram.sent) == 1
    telegram_rows = Delivery.select().where(Delivery.channel == "telegram").order_by(Delivery.id)
    assert [(d.status, d.detail) for d in telegram_rows] == [
        ("sent", None),
        ("cancelled", f"cancelled: the strategy was {how}d"),
    ]
