# ruff: noqa: F811  (the fixtures of test_notifier_actor, imported, are parameters here)
"""The Notifier in claims mode (the roles: several notifier processes share the outbox), on a
FakeClock: a scanner's Notifier writes without sending; notifiers claim, each delivery is sent once;
a dead notifier's claims go to another after the lease; a retry returns to the outbox."""

from __future__ import annotations

from typing import Any

from tests.notify.test_notifier_actor import (  # noqa: F401  (fixtures)
    T0_MS,
    Running,
    alert,
    channels,
    clock,
    delivery,
    hook,
    make,
    scan,
    strategy,
)
from tests.support.waits import wait_until
from ubot.actors.notifier import Claims
from ubot.models.alerts import AlertStore
from ubot.models.users import UserStore
from ubot.notify.channel import RETRY, SENT, Outcome
from ubot.notify.messages import DeliveryTarget
from ubot.users.manager import UserManager

LEASE_S = 30.0


def claiming(db, clock, channels, member: str, **options: Any) -> Running:
    return Running(db, clock, channels, claims=Claims(member, lease_s=LEASE_S, poll_s=0.5), **options)


def test_a_scanners_notifier_writes_and_publishes_but_never_sends(db, clock, strategy, make) -> None:
    webhook = make("webhook")
    scanner = Running(db, clock, [webhook], deliver=False)
    scanner.tell(scan(alert(strategy, hook())))
    ((view,),) = [v.deliveries for v in scanner.alerts(strategy.user_id)]  # asked after the write
    assert view.status == "pending" and webhook.calls == []
    assert [event for event, *_ in scanner.published] == ["alert"]


def test_two_notifiers_send_each_delivery_once(db, clock, strategy, make) -> None:
    webhook = make("webhook")
    writer = Running(db, clock, [], deliver=False)
    first = claiming(db, clock, [webhook], "n1")
    second = claiming(db, clock, [webhook], "n2")
    # one alert to six destinations: six deliveries (a strategy's alerts of one tick are one batch)
    writer.tell(scan(alert(strategy, *(hook(f"https://example.com/{c}") for c in range(1, 7)))))
    ((view,),) = [
        [v] for v in writer.alerts(strategy.user_id)
    ]  # written; nobody was told: the pollers find it
    assert len(view.deliveries) == 6
    clock.advance(0.5)
    sent = sorted(webhook.next().delivery_id for _ in range(6))
    assert len(set(sent)) == 6
    wait_until(lambda: {delivery(i).status for i in sent} == {"sent"}, "every delivery marked sent", 10)
    clock.advance(0.5)  # both poll again: nothing left to claim
    clock.wait_for_sleeper()
    assert len(webhook.calls) == 6
    assert {delivery(i).claimed_by for i in sent} <= {"n1", "n2"}
    first.stop()
    second.stop()


def test_a_dead_notifiers_claims_are_sent_by_another_after_the_lease(db, clock, strategy, make) -> None:
    store = AlertStore(db)
    (written,) = store.record(scan(alert(strategy, hook())), T0_MS)
    (delivery_id,) = [d.id for d in written.deliveries]
    assert store.claim("dead", T0_MS, int(LEASE_S * 1000), 10)  # then it was killed
    webhook = make("webhook")
    live = claiming(db, clock, [webhook], "live")
    clock.wait_for_sleeper()
    assert webhook.calls == []  # the lease holds
    clock.advance(LEASE_S + 0.5)
    assert webhook.next().delivery_id == delivery_id
    assert live.written() == (delivery_id, SENT)
    assert delivery(delivery_id).claimed_by == "live"
    live.stop()


def test_a_retry_goes_back_to_the_outbox_and_is_claimed_when_due(db, clock, strategy, make) -> None:
    webhook = make("webhook", answers=[Outcome(RETRY, "HTTP 503")])
    running = claiming(db, clock, [webhook], "n1", backoff_s=5.0)
    running.tell(scan(alert(strategy, hook())))
    delivery_id = webhook.next().delivery_id
    assert running.written() == (delivery_id, "retry")
    row = delivery(delivery_id)
    assert (row.status, row.lease_until, row.next_attempt_at) == ("pending", None, T0_MS + 5000)
    clock.advance(5.5)
    assert webhook.next().delivery_id == delivery_id
    assert running.written() == (delivery_id, SENT)
    running.stop()


def test_pacing_holds_across_notifiers(db, clock, strategy, make) -> None:
    store = AlertStore(db)
    chat = DeliveryTarget("telegram", "42")
    store.record(scan(alert(strategy, chat, coin_id=1), tick=1), T0_MS)  # two ticks: two messages
    store.record(scan(alert(strategy, chat, coin_id=2), tick=2), T0_MS)
    telegram_1, telegram_2 = make("telegram", min_interval_s=1.0), make("telegram", min_interval_s=1.0)
    slow = {"poll_s": 10.0, "limit": 1}  # one claim each; the pollers sleep past the pace
    first = Running(db, clock, [telegram_1], claims=Claims("n1", lease_s=LEASE_S, **slow))
    assert telegram_1.next().payload["alerts"][0]["symbol"] == "C1"
    second = Running(db, clock, [telegram_2], claims=Claims("n2", lease_s=LEASE_S, **slow))
    # n2 holds the other delivery to chat 42: it waits for the slot n1 took, a second after T0.
    wait_until(lambda: clock.wait_for_sleeper() == T0_MS / 1000 + 1, "n2 to wait for the slot", 10)
    assert telegram_2.calls == []
    clock.advance(1)
    assert telegram_2.next().payload["alerts"][0]["symbol"] == "C2"
    first.stop()
    second.stop()


def test_a_stopping_notifier_releases_what_it_holds(db, clock, strategy, make) -> None:
    store = AlertStore(db)
    (written,) = store.record(scan(alert(strategy, hook())), T0_MS)
    (delivery_id,) = [d.id for d in written.deliveries]
    webhook = make("webhook", blocked=["https://example.com/hook"])  # held in flight until the stop
    running = claiming(db, clock, [webhook], "n1")
    assert webhook.entered.wait(10)
    assert delivery(delivery_id).lease_until is not None
    running.stop()  # the attempt is cut: not written; the claim is released
    row = delivery(delivery_id)
    assert (row.status, row.claimed_by, row.lease_until) == ("pending", "n1", None)


def test_ending_a_mute_early_lets_a_claiming_notifier_send_what_it_held(db, clock, strategy, make) -> None:
    """The roles: the mute ends in a gateway's UserManager, which tells no notifier; the outbox
    says the held delivery is due now, and the next poll claims it."""
    webhook = make("webhook")
    writer = Running(db, clock, [], deliver=False)
    notifier = claiming(db, clock, [webhook], "n1")
    manager = UserManager(UserStore(db), clock)  # its ``released`` hook tells nobody
    muted = T0_MS + 7_200_000
    manager.mute(strategy.user_id, muted)
    writer.tell(scan(alert(strategy, hook(), muted_until_ms=muted)))
    ((view,),) = [v.deliveries for v in writer.alerts(strategy.user_id)]
    assert view.status == "held"

    assert manager.mute(strategy.user_id, None).count == 1
    clock.advance(0.5)

    webhook.next()
    assert notifier.written()[1] == SENT
