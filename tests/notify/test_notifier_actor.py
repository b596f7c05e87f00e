"""The Notifier actor on a FakeClock with in-memory channels: write first, then deliver; retries with
backoff; pacing; quiet hours; slow channels and destinations delay nobody else; resume after a crash.

Every wait is for an event (a channel call, a written delivery, a sleeper on the fake clock), with a
timeout that is only reached when a test is about to fail. Time moves only when a test moves it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pykka
import pytest

from tests.support.waits import wait_until
from ubot.actors.notifier import Notifier
from ubot.clocks import FakeClock
from ubot.models.alerts import AlertStore
from ubot.models.tables import Delivery, Strategy, User, UserSettings
from ubot.models.users import UserStore
from ubot.notify.channel import FAILED, RETRY, SENT, Message, Outcome
from ubot.notify.messages import (
    Alert,
    AlertState,
    AlertView,
    DeliveryTarget,
    GetAlerts,
    GetAlertState,
    Released,
    ScanOutcome,
)
from ubot.users.manager import UserManager

WAIT = 10.0
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
T0_MS = int(T0 * 1000)


class TestChannel:
    """A Channel that records every message and answers from a script (then ``sent``). Sends to the
    targets in ``blocked`` wait for ``gate``."""

    __test__ = False

    def __init__(
        self,
        name: str,
        answers: Sequence[Outcome | Exception] = (),
        min_interval_s: float = 0.0,
        blocked: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.min_interval_s = min_interval_s
        self.calls: list[Message] = []
        self.entered = threading.Event()  # a blocked send has started
        self.gate = threading.Event()
        self._blocked = set(blocked)
        self._answers = list(answers)
        self._lock = threading.Lock()
        self._messages: queue.Queue[Message] = queue.Queue()

    def destination(self, message: Message) -> str:
        return message.target

    def send(self, message: Message) -> Outcome:
        with self._lock:
            self.calls.append(message)
            answer = self._answers.pop(0) if self._answers else Outcome(SENT)
        if message.target in self._blocked:
            self.entered.set()
            self.gate.wait(WAIT)
        self._messages.put(message)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def next(self) -> Message:
        """The next message sent (waits for it)."""
        try:
            return self._messages.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"{self.name}: nothing sent within {WAIT} s") from None


class Running:
    """A started Notifier and what it reports: written deliveries and published events."""

    def __init__(self, db, clock: FakeClock, channels: Sequence[TestChannel], **options: Any) -> None:
        self.store = AlertStore(db)
        self._written: queue.Queue[tuple[int, str]] = queue.Queue()
        self.published: list[tuple[str, Any, int | None]] = []
        self.ref = Notifier.start(
            self.store,
            {c.name: c for c in channels},
            clock,
            publish=lambda event, data, user: self.published.append((event, data, user)),
            on_delivery=lambda delivery_id, status: self._written.put((delivery_id, status)),
            **options,
        )

    def written(self) -> tuple[int, str]:
        """The next (delivery id, sent | retry | failed) written by the actor."""
        try:
            return self._written.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError(f"no delivery written within {WAIT} s") from None

    def tell(self, outcome: ScanOutcome) -> None:
        self.ref.tell(outcome)

    def alerts(self, user_id: int, **kwargs: Any) -> tuple[AlertView, ...]:
        return self.ref.ask(GetAlerts(user_id, **kwargs), timeout=WAIT)

    def stop(self) -> None:
        self.ref.stop(block=True, timeout=WAIT * 4)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def channels() -> Iterator[list[TestChannel]]:
    """Channels made by a test, their gates opened at the end whatever happened."""
    made: list[TestChannel] = []
    yield made
    for channel in made:
        channel.gate.set()
    pykka.ActorRegistry.stop_all(block=True, timeout=WAIT * 4)


@pytest.fixture
def make(channels):
    def make_channel(name: str, **kwargs: Any) -> TestChannel:
        channel = TestChannel(name, **kwargs)
        channels.append(channel)
        return channel

    return make_channel


@pytest.fixture
def strategy(db) -> Strategy:
    user = User.create(
        username="alice", email="alice@example.com", password_hash="h", created_at=1, password_changed_at=1
    )
    UserSettings.create(user=user, webhook_url="https://example.com/hook", webhook_secret="s3cret")
    return Strategy.create(
        user=user,
        name="oversold",
        condition="rsi(14) < 30",
        indicators=["rsi(14)"],
        timeframe="1h",
        top_n=10,
        channels=["webhook"],
        frequency="once_per_bar",
        cooldown_s=0,
        enabled=True,
        created_at=1,
        updated_at=1,
    )


def another(strategy: Strategy, name: str) -> Strategy:
    """A second strategy of the same owner (its alerts are another batch)."""
    return Strategy.create(**{**strategy.__data__, "id": None, "name": name})


def alert(strategy: Strategy, *targets: DeliveryTarget, coin_id: int = 1, **overrides: Any) -> Alert:
    fields: dict[str, Any] = {
        "strategy_id": strategy.id,
        "user_id": strategy.user_id,
        "strategy_name": strategy.name,
        "coin_id": coin_id,
        "symbol": f"C{coin_id}",
        "timeframe": "1h",
        "fired_at_ms": T0_MS,
        "bar_open_ms": T0_MS - T0_MS % 3_600_000,
        "condition": "rsi(14) < 30",
        "values": {"rsi(14)": 28.5},
        "name": f"Coin {coin_id}",
        "price": 61250.5,
        "subject": f"C{coin_id}: rsi(14) < 30",
        "text": f"C{coin_id} 1h: rsi(14) 28.5",
        "deliveries": targets,
    }
    fields.update(overrides)
    return Alert(**fields)


def scan(*alerts: Alert, states: Sequence[AlertState] = (), tick: int = 1) -> ScanOutcome:
    return ScanOutcome(worker=0, tick=tick, snapshot_ms=T0_MS, alerts=alerts, states=tuple(states))


def hook(target: str = "https://example.com/hook") -> DeliveryTarget:
    return DeliveryTarget("webhook", target)


def delivery(delivery_id: int) -> Delivery:
    return Delivery.get_by_id(delivery_id)


def notifier_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("ubot-notify")}


# -- the alert log ----------------------------------------------------------------------------------


def test_an_alert_without_deliveries_is_written_logged_and_published(db, clock, strategy, caplog) -> None:
    caplog.set_level(logging.INFO, logger="ubot.actors.notifier")
    running = Running(db, clock, [])

    running.tell(scan(alert(strategy, values={"rsi(14)": 28.5, "close": 61250.5})))
    (view,) = running.alerts(strategy.user_id)

    assert (view.strategy_id, view.symbol, view.fired_at_ms, view.deliveries) == (
        strategy.id,
        "C1",
        T0_MS,
        (),
    )
    line = (
        f"alert {view.id}: user {strategy.user_id}, strategy 'oversold' (#{strategy.id}): C1 at 61,250.50 USD"
    )
    assert f"{line} on 1h: 'rsi(14) < 30' [rsi(14)=28.50, close=61,250.50]" in caplog.messages
    ((event, data, user_id),) = running.published
    assert (event, data["id"], data["symbol"], data["values"], user_id) == (
        "alert",
        view.id,
        "C1",
        {"rsi(14)": 28.5, "close": 61250.5},
        strategy.user_id,
    )


def test_a_failing_publish_loses_nothing(db, clock, strategy, make) -> None:
    webhook = make("webhook")
    store = AlertStore(db)

    def publish(*args: Any) -> None:
        raise ConnectionError("stream hub gone")

    ref = Notifier.start(store, {"webhook": webhook}, clock, publish=publish)
    ref.tell(scan(alert(strategy, hook())))

    assert webhook.next().target == "https://example.com/hook"
    assert len(ref.ask(GetAlerts(strategy.user_id), timeout=WAIT)) == 1


def test_alert_state_is_answered_after_earlier_writes(db, clock, strategy) -> None:
    running = Running(db, clock, [])
    states = (AlertState(strategy.id, 1, True, T0_MS, T0_MS), AlertState(strategy.id, 2, False))

    running.tell(scan(states=states))
    running.tell(scan(states=[AlertState(strategy.id, 2, True, T0_MS + 1, T0_MS)], tick=2))

    answer = running.ref.ask(GetAlertState((strategy.id,)), timeout=WAIT)
    assert answer == (states[0], AlertState(strategy.id, 2, True, T0_MS + 1, T0_MS))


def test_a_forgotten_strategys_saved_state_is_deleted_so_a_restart_does_not_revive_it(
    db, clock, strategy
) -> None:
    running = Running(db, clock, [])
    old = (AlertState(strategy.id, 0, True), AlertState(strategy.id, 1, True, T0_MS, T0_MS))
    running.tell(scan(states=old))
    forget = ScanOutcome(worker=0, tick=0, snapshot_ms=0, forget=(strategy.id,))
    running.tell(forget)
    assert running.ref.ask(GetAlertState((strategy.id,)), timeout=WAIT) == ()
    assert running.store.states([strategy.id]) == ()  # in the database too
    running.tell(scan(states=[AlertState(strategy.id, 2, True)], tick=2))  # the new rules' state stays

    # Not written yet (the database is down): a restarted worker asking gets the same answer.
    real = running.store.record

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("database restarting")

    running.store.record = down  # type: ignore[method-assign]
    running.tell(scan(states=old, tick=3))
    running.tell(forget)
    running.tell(scan(states=[AlertState(strategy.id, 3, True)], tick=4))
    assert running.ref.ask(GetAlertState((strategy.id,)), timeout=WAIT) == (AlertState(strategy.id, 3, True),)
    running.store.record = real  # type: ignore[method-assign]
    running.tell(scan(tick=5))  # the database is back: everything waiting is written, in order
    assert running.ref.ask(GetAlertState((strategy.id,)), timeout=WAIT) == (AlertState(strategy.id, 3, True),)
    assert running.store.states([strategy.id]) == (AlertState(strategy.id, 3, True),)


def test_a_failing_write_is_kept_and_written_first_when_the_database_is_back(
    db, clock, strategy, make, caplog
) -> None:
    webhook = make("webhook")
    running = Running(db, clock, [webhook])
    real = running.store.record
    calls = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("database restarting")
        return real(*args, **kwargs)

    running.store.record = flaky  # type: ignore[method-assign]
    running.tell(
        scan(alert(strategy, hook(), coin_id=1), states=[AlertState(strategy.id, 1, True, T0_MS, T0_MS)])
    )
    # Not written yet, but a restarted worker asking for the state gets it all the same.
    assert running.ref.ask(GetAlertState((strategy.id,)), timeout=WAIT) == (
        AlertState(strategy.id, 1, True, T0_MS, T0_MS),
    )
    running.tell(scan(alert(strategy, hook(), coin_id=2), tick=2))

    assert {webhook.next().payload["alerts"][0]["symbol"], webhook.next().payload["alerts"][0]["symbol"]} == {
        "C1",
        "C2",
    }
    assert [v.symbol for v in running.alerts(strategy.user_id)] == ["C2", "C1"]
    assert "writing 1 alert(s) of worker 0, tick 1 failed; kept to try again" in caplog.text


# -- delivering -------------------------------------------------------------------------------------


def test_a_delivery_is_sent_then_marked_sent(db, clock, strategy, make) -> None:
    webhook = make("webhook")
    running = Running(db, clock, [webhook])

    running.tell(scan(alert(strategy, hook())))
    message = webhook.next()

    assert (message.channel, message.target, message.secret) == (
        "webhook",
        "https://example.com/hook",
        "s3cret",
    )
    # Worded by the Notifier (ubot/notify/words.py), whatever the alert came with.
    assert message.subject == 'uBot: "oversold" fired for C1 (Coin 1)'
    assert message.text == (
        'C1 (Coin 1) is at 61,250.50 USD: your strategy "oversold" fired on 1h.\n'
        "rsi(14) = 28.50\n"
        "Condition: rsi(14) < 30\n"
        "Time: 2023-11-14 22:13:20 UTC"
    )
    assert message.short == 'uBot: C1 61,250.50 USD, rsi(14) 28.50. "oversold" 1h, 22:13 UTC'
    assert (
        message.payload["alerts"][0]["text"] == message.text
        and message.payload["alerts"][0]["subject"] == message.subject
    )
    assert message.payload["alerts"][0]["id"] == message.alert_id and message.payload["alerts"][0][
        "values"
    ] == {"rsi(14)": 28.5}
    assert running.written() == (message.delivery_id, SENT)
    row = delivery(message.delivery_id)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 1, T0_MS)
    ((view_delivery,),) = [v.deliveries for v in running.alerts(strategy.user_id)]
    assert (view_delivery.channel, view_delivery.status, view_delivery.attempts) == ("webhook", "sent", 1)


def test_a_channel_this_server_does_not_have_fails_at_once(db, clock, strategy, make) -> None:
    running = Running(db, clock, [make("webhook")])

    running.tell(scan(alert(strategy, DeliveryTarget("telegram", "42"))))

    delivery_id, status = running.written()
    assert status == FAILED
    row = delivery(delivery_id)
    assert (row.status, row.attempts) == ("failed", 0)
    assert row.detail == "telegram is not configured on this server: set [notify] telegram_bot_token"


def test_the_words_follow_the_users_timezone_the_servers_url_and_a_simulated_market(
    db, clock, strategy, make
) -> None:
    webhook = make("webhook")
    running = Running(db, clock, [webhook], public_url="https://ubot.example.com", simulated=True)

    running.tell(scan(alert(strategy, hook(), timezone="Europe/Berlin", values={"rsi(14)": 28.5})))
    message = webhook.next()

    assert message.subject == 'uBot: "oversold" fired for C1 (Coin 1) (simulated market)'
    assert message.text.splitlines()[3:] == [
        "Time: 2023-11-14 23:13:20 CET (Europe/Berlin)",
        "Chart: https://ubot.example.com/v1/coins/1/candles?timeframe=1h",
        "Simulated market: these prices are not real.",
    ]
    assert message.short.endswith('"oversold" 1h, 23:13 CET. Simulated market')
    (view,) = running.alerts(strategy.user_id)
    assert view.text == message.text  # the alert log keeps the words as sent


def test_a_retry_waits_the_backoff_then_sends(db, clock, strategy, make) -> None:
    webhook = make("webhook", answers=[Outcome(RETRY, "HTTP 503")])
    running = Running(db, clock, [webhook], backoff_s=5, backoff_max_s=900)

    running.tell(scan(alert(strategy, hook())))
    first = webhook.next()
    assert running.written() == (first.delivery_id, RETRY)
    row = delivery(first.delivery_id)
    assert (row.status, row.attempts, row.next_attempt_at, row.detail) == (
        "pending",
        1,
        T0_MS + 5_000,
        "HTTP 503",
    )

    assert clock.wait_for_sleeper() == T0 + 5
    clock.advance(5)

    assert webhook.next() == first
    assert running.written() == (first.delivery_id, SENT)
    row = delivery(first.delivery_id)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 2, T0_MS + 5_000)


def test_a_retry_is_signed_with_the_secret_set_when_it_is_sent(db, clock, strategy, make) -> None:
    webhook = make("webhook", answers=[Outcome(RETRY, "HTTP 401 invalid signature")])
    running = Running(db, clock, [webhook], backoff_s=5)

    running.tell(scan(alert(strategy, hook())))
    first = webhook.next()
    assert first.secret == "s3cret"
    assert running.written() == (first.delivery_id, RETRY)
    assert "secret" not in Delivery._meta.columns  # nothing of it in the outbox
    UserSettings.update(webhook_secret="rotated-0123456789").execute()  # the owner rotates it

    assert clock.wait_for_sleeper() == T0 + 5
    clock.advance(5)
    second = webhook.next()
    assert (second.delivery_id, second.key, second.secret) == (
        first.delivery_id,
        first.key,
        "rotated-0123456789",
    )
    assert running.written() == (first.delivery_id, SENT)


def test_old_alerts_are_pruned_in_batches_once_an_hour_of_data_time(db, clock, strategy, make) -> None:
    day = 86_400_000
    store = AlertStore(db)
    old = [alert(strategy, hook(), coin_id=c, fired_at_ms=T0_MS - 91 * day) for c in range(1, 6)]
    for written in store.record(ScanOutcome(0, 0, T0_MS - 91 * day, tuple(old)), T0_MS - 91 * day):
        for d in written.deliveries:
            store.mark_sent(d.id, T0_MS - 91 * day)
    kept = alert(strategy, coin_id=7, fired_at_ms=T0_MS - 89 * day)
    store.record(ScanOutcome(0, 0, T0_MS, (kept,)), T0_MS)
    running = Running(db, clock, [make("webhook")], retention_ms=90 * day, prune_batch=2)

    running.tell(scan(alert(strategy, coin_id=8)))  # data time T0: alerts before T0 - 90 days go

    wait_until(lambda: len(running.alerts(strategy.user_id)) == 2, "the old alerts pruned, 2 at a time")
    assert sorted(v.symbol for v in running.alerts(strategy.user_id)) == ["C7", "C8"]
    assert Delivery.select().count() == 0

    # Within the hour of data time, no second look; an hour later, one.
    running.store.record(
        ScanOutcome(0, 0, T0_MS, (alert(strategy, coin_id=9, fired_at_ms=T0_MS - 95 * day),)), T0_MS
    )
    running.tell(ScanOutcome(0, 2, T0_MS + 3_599_000, (alert(strategy, coin_id=10),)))
    running.alerts(strategy.user_id)  # answered after the outcome (and any prune it told itself)
    assert sorted(v.symbol for v in running.alerts(strategy.user_id)) == ["C10", "C7", "C8", "C9"]
    running.tell(ScanOutcome(0, 3, T0_MS + 3_600_000, (alert(strategy, coin_id=11),)))
    wait_until(lambda: "C9" not in {v.symbol for v in running.alerts(strategy.user_id)}, "the next prune")


def test_the_providers_retry_after_is_honoured(db, clock, strategy, make) -> None:
    telegram = make("telegram", answers=[Outcome(RETRY, "HTTP 429", retry_after_s=60)])
    running = Running(db, clock, [telegram], backoff_s=5)

    running.tell(scan(alert(strategy, DeliveryTarget("telegram", "42"))))
    telegram.next()
    running.written()

    assert clock.wait_for_sleeper() == T0 + 60
    clock.advance(60)
    telegram.next()
    assert running.written()[1] == SENT


def test_after_max_attempts_the_delivery_fails_with_the_last_detail(db, clock, strategy, make) -> None:
    answers = [Outcome(RETRY, f"HTTP 503 (attempt {n})") for n in (1, 2, 3)]
    webhook = make("webhook", answers=answers)
    running = Running(db, clock, [webhook], max_attempts=3, backoff_s=5, backoff_max_s=900)

    running.tell(scan(alert(strategy, hook())))
    delivery_id = webhook.next().delivery_id
    assert running.written() == (delivery_id, RETRY)
    assert clock.wait_for_sleeper() == T0 + 5
    clock.advance(5)
    webhook.next()
    assert running.written() == (delivery_id, RETRY)
    assert clock.wait_for_sleeper() == T0 + 15  # then 10 s
    clock.advance(10)
    webhook.next()
    assert running.written() == (delivery_id, FAILED)

    row = delivery(delivery_id)
    assert (row.status, row.attempts, row.detail, row.sent_at) == ("failed", 3, "HTTP 503 (attempt 3)", None)
    assert len(webhook.calls) == 3


def test_a_channel_that_raises_is_retried(db, clock, strategy, make) -> None:
    webhook = make("webhook", answers=[RuntimeError("bug")])
    running = Running(db, clock, [webhook], backoff_s=1)

    running.tell(scan(alert(strategy, hook())))
    delivery_id = webhook.next().delivery_id

    assert running.written() == (delivery_id, RETRY)
    assert delivery(delivery_id).detail == "internal error in the webhook channel (RuntimeError)"


def test_quiet_hours_hold_the_delivery_until_they_end(db, clock, strategy, make) -> None:
    webhook = make("webhook")
    running = Running(db, clock, [webhook])
    end = 1_700_031_600.0  # 2023-11-15T07:00:00Z
    UserSettings.update(quiet_hours="22:00-07:00").execute()  # a held alert is held as the settings say

    running.tell(scan(alert(strategy, hook(), quiet_hours="22:00-07:00", timezone="UTC")))
    (view,) = running.alerts(strategy.user_id)

    assert [d.status for d in view.deliveries] == ["held"]
    assert Delivery.get().next_attempt_at == end * 1000
    assert clock.wait_for_sleeper() == end
    assert webhook.calls == []
    clock.set(end)
    webhook.next()
    assert running.written()[1] == SENT


def test_a_mute_holds_the_delivery_until_it_ends(db, clock, strategy, make) -> None:
    """The Telegram bot's /mute: the same hold as quiet hours (the mute ends at 05:00 UTC, then
    the quiet hours of 22:00-06:00 UTC still hold it until 06:00)."""
    webhook = make("webhook")
    running = Running(db, clock, [webhook])
    muted, end = 1_700_024_400.0, 1_700_028_000.0  # 2023-11-15T05:00:00Z, 06:00:00Z
    UserSettings.update(muted_until=int(muted * 1000)).execute()  # as UserManager.mute writes it

    running.tell(scan(alert(strategy, hook(), muted_until_ms=int(muted * 1000))))
    wait_until(lambda: running.alerts(strategy.user_id), "the first alert written")
    UserSettings.update(quiet_hours="22:00-06:00").execute()  # then quiet hours too
    running.tell(
        scan(
            alert(strategy, hook(), coin_id=2, muted_until_ms=int(muted * 1000), quiet_hours="22:00-06:00"),
            tick=2,
        )
    )
    wait_until(lambda: len(running.alerts(strategy.user_id)) == 2, "both alerts written")

    assert sorted(d.next_attempt_at / 1000 for d in Delivery.select()) == [muted, end]
    assert {d.status for d in Delivery.select()} == {"held"}
    assert webhook.calls == []
    clock.set(muted)
    webhook.next()
    assert running.written()[1] == SENT


def muting(db, clock: FakeClock, running: Running) -> UserManager:
    """The UserManager of the strategy's owner, telling ``running`` of each release as the system
    wires them (``TellReleases``)."""
    manager = UserManager(UserStore(db), clock)
    manager.released = lambda ids, due_ms: running.ref.tell(Released(ids, due_ms))
    return manager


def test_ending_a_mute_early_sends_what_it_held_at_once_but_not_what_was_cancelled(
    db, clock, strategy, make
) -> None:
    """/mute off (``UserManager.mute``): the deliveries the mute held are due now, in the outbox and
    in the senders' queues; one cancelled meanwhile (its strategy disabled) stays cancelled."""
    webhook = make("webhook")
    running = Running(db, clock, [webhook])
    manager = muting(db, clock, running)
    muted = T0_MS + 7_200_000
    manager.mute(strategy.user_id, muted)
    dropped = another(strategy, "dropped")
    running.tell(scan(alert(strategy, hook(), muted_until_ms=muted)))
    running.tell(scan(alert(dropped, hook(), muted_until_ms=muted), tick=2))
    wait_until(lambda: len(running.alerts(strategy.user_id)) == 2, "both alerts written")
    assert clock.wait_for_sleeper() == muted / 1000
    manager.patch_strategy(strategy.user_id, dropped.id, {"enabled": False})

    release = manager.mute(strategy.user_id, None)

    assert (release.count, release.due_ms) == (1, T0_MS)
    assert webhook.next().payload["strategy_id"] == strategy.id  # the clock has not moved
    assert running.written()[1] == SENT
    assert sorted(d.status for d in Delivery.select()) == ["cancelled", "sent"]
    assert clock.now() == T0 and len(webhook.calls) == 1


def test_an_alert_scanned_with_a_mute_ended_meanwhile_is_not_held_by_it(db, clock, strategy, make) -> None:
    """The Scanner's spec may still say muted for a scan under way when /mute off ends it (the
    release moves only what is written): the alert is held by the mute as the settings say when it
    is written, so it goes at once."""
    webhook = make("webhook")
    running = Running(db, clock, [webhook])
    manager = muting(db, clock, running)
    muted = T0_MS + 7_200_000
    manager.mute(strategy.user_id, muted)
    manager.mute(strategy.user_id, None)  # before the alert scanned with the mute is written

    running.tell(scan(alert(strategy, hook(), muted_until_ms=muted)))

    webhook.next()
    assert running.written()[1] == SENT and clock.now() == T0


def test_ending_a_mute_inside_the_quiet_hours_holds_until_they_end(db, clock, strategy, make) -> None:
    """Released as a new alert would be held: the mute (until 08:13 UTC) ends at 22:13 UTC, inside
    the quiet hours 22:00-06:00 UTC, so what it held goes when they end, not before."""
    webhook = make("webhook")
    running = Running(db, clock, [webhook])
    manager = muting(db, clock, running)
    UserSettings.update(quiet_hours="22:00-06:00").execute()
    muted, quiet_end = T0_MS + 36_000_000, 1_700_028_000_000  # 2023-11-15T08:13:20Z, 06:00:00Z
    manager.mute(strategy.user_id, muted)
    running.tell(scan(alert(strategy, hook(), muted_until_ms=muted, quiet_hours="22:00-06:00")))
    wait_until(lambda: running.alerts(strategy.user_id), "the alert written")
    assert clock.wait_for_sleeper() == muted / 1000

    release = manager.mute(strategy.user_id, None)

    assert (release.count, release.due_ms) == (1, quiet_end)
    assert Delivery.get().next_attempt_at == quiet_end
    wait_until(lambda: clock.wait_for_sleeper() == quiet_end / 1000, "the sender sleeping until 06:00")
    assert webhook.calls == []
    clock.set(quiet_end / 1000)
    webhook.next()
    assert running.written()[1] == SENT


# -- nobody waits for the slow ---------------------------------------------------------------------


def test_a_slow_channel_delays_neither_the_others_nor_the_mailbox(db, clock, strategy, make) -> None:
    telegram = make("telegram", blocked=["42"])
    webhook = make("webhook")
    running = Running(db, clock, [telegram, webhook])

    running.tell(scan(alert(strategy, DeliveryTarget("telegram", "42"), hook())))
    assert telegram.entered.wait(WAIT)  # stuck in the provider
    webhook.next()
    assert running.written()[1] == SENT
    running.tell(scan(alert(strategy, hook(), coin_id=2), tick=2))  # later writes go on
    webhook.next()
    assert running.written()[1] == SENT

    views = running.alerts(strategy.user_id)  # and queries are answered
    assert sorted(d.status for v in views for d in v.deliveries) == ["pending", "sent", "sent"]

    telegram.gate.set()
    assert telegram.next().target == "42"
    assert running.written()[1] == SENT


def test_a_slow_destination_does_not_delay_others_on_its_channel(db, clock, strategy, make) -> None:
    webhook = make("webhook", blocked=["https://slow.example.com"])
    running = Running(db, clock, [webhook])

    running.tell(scan(alert(strategy, hook("https://slow.example.com"))))
    assert webhook.entered.wait(WAIT)
    running.tell(scan(alert(strategy, hook("https://fast.example.com"), coin_id=2), tick=2))

    assert webhook.next().target == "https://fast.example.com"
    webhook.gate.set()
    assert webhook.next().target == "https://slow.example.com"


def test_messages_to_one_destination_are_paced_others_are_not(db, clock, strategy, make) -> None:
    telegram = make("telegram", min_interval_s=1.0)
    running = Running(db, clock, [telegram])
    chat = DeliveryTarget("telegram", "42")

    running.tell(
        scan(
            alert(strategy, chat, coin_id=1),
            alert(another(strategy, "second"), chat, coin_id=2),
            alert(another(strategy, "third"), DeliveryTarget("telegram", "43"), coin_id=3),
        )
    )
    first, other = telegram.next(), telegram.next()

    # both at T0, in parallel: chat 43 did not wait, chat 42's second message did
    assert {
        (first.target, first.payload["alerts"][0]["symbol"]),
        (other.target, other.payload["alerts"][0]["symbol"]),
    } == {
        ("42", "C1"),
        ("43", "C3"),
    }
    assert clock.wait_for_sleeper() == T0 + 1  # chat 42's pace
    assert len(telegram.calls) == 2
    clock.advance(1)
    assert telegram.next().payload["alerts"][0]["symbol"] == "C2"


# -- stopping and resuming ---------------------------------------------------------------------------


def test_written_but_not_sent_before_a_crash_is_sent_once_after_the_restart(
    db, clock, strategy, make
) -> None:
    store = AlertStore(db)
    (written,) = store.record(scan(alert(strategy, hook())), T0_MS)  # then the process died
    (delivery_id,) = [d.id for d in written.deliveries]

    webhook = make("webhook")
    first_run = Running(db, clock, [webhook])
    assert webhook.next().delivery_id == delivery_id
    assert first_run.written() == (delivery_id, SENT)
    first_run.stop()
    assert delivery(delivery_id).status == "sent"

    second_run = Running(db, clock, [webhook])
    second_run.tell(scan(alert(strategy, hook(), coin_id=2), tick=2))  # same destination: queued behind
    assert webhook.next().delivery_id != delivery_id  # anything resumed would have gone first
    second_run.written()
    second_run.stop()

    assert [m.delivery_id for m in webhook.calls].count(delivery_id) == 1
    assert store.pending() == []


def test_what_is_not_sent_at_stop_stays_pending_and_goes_after_the_restart(db, clock, strategy, make) -> None:
    webhook = make("webhook", answers=[Outcome(RETRY, "HTTP 502")])
    first_run = Running(db, clock, [webhook], backoff_s=30)
    first_run.tell(scan(alert(strategy, hook())))
    delivery_id = webhook.next().delivery_id
    first_run.written()
    assert clock.wait_for_sleeper() == T0 + 30

    first_run.stop()

    row = delivery(delivery_id)
    assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 1, T0_MS + 30_000)
    assert notifier_threads() == set()

    second_run = Running(db, clock, [webhook])
    assert clock.wait_for_sleeper() == T0 + 30  # resumed with its time
    clock.advance(30)
    assert webhook.next().delivery_id == delivery_id
    assert second_run.written() == (delivery_id, SENT)
    assert (delivery(delivery_id).status, delivery(delivery_id).attempts) == ("sent", 2)


def test_a_send_in_flight_at_stop_is_finished_and_written(db, clock, strategy, make) -> None:
    webhook = make("webhook", blocked=["https://example.com/hook"])
    running = Running(db, clock, [webhook])
    running.tell(scan(alert(strategy, hook())))
    assert webhook.entered.wait(WAIT)

    stopped = running.ref.stop(block=False)
    webhook.gate.set()
    stopped.get(timeout=WAIT * 4)

    assert Delivery.get().status == "sent"


def test_an_outcome_written_at_stop_that_is_due_a_prune_still_stops_every_thread(
    db, clock, strategy, make, caplog
) -> None:
    running = Running(db, clock, [make("webhook")], retention_ms=86_400_000)
    real = running.store.record
    running.store.record = lambda *args, **kwargs: (_ for _ in ()).throw(ConnectionError("down"))  # type: ignore[method-assign]
    running.tell(scan(alert(strategy, hook())))
    running.alerts(strategy.user_id)  # the write failed: kept
    running.store.record = real  # type: ignore[method-assign]

    running.stop()  # on_stop writes it, which is due a prune: told to a stopped actor, left for later

    assert [v.symbol for v in AlertStore(db).alerts(strategy.user_id)] == ["C1"]
    assert notifier_threads() == set()
    assert "ActorDeadError" not in caplog.text


def test_stop_joins_every_thread(db, clock, strategy, make) -> None:
    assert notifier_threads() == set()
    running = Running(db, clock, [make("webhook"), make("telegram")], senders_per_channel=3)
    running.alerts(strategy.user_id)  # on_start has run
    assert len(notifier_threads()) == 2 * (1 + 3)

    running.stop()

    assert notifier_threads() == set()
