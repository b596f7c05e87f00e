"""AlertStore on both databases: the outbox written in one transaction, state upserts, resuming,
delivery state changes that never resend a sent delivery, and the alert history listing."""

from __future__ import annotations

import re

import pytest
from peewee import IntegrityError

import ubot.models.alerts as alerts_module
from ubot.models.alerts import AlertStore
from ubot.models.tables import AlertRecord, AlertStateRecord, Delivery, Strategy, User, UserSettings
from ubot.notify.messages import Alert, AlertState, DeliveryTarget, ScanOutcome

NOW = 1_700_000_000_000
HOUR = 3_600_000


def make_user(name: str = "alice") -> User:
    return User.create(
        username=name, email=f"{name}@example.com", password_hash="h", created_at=1, password_changed_at=1
    )


def make_strategy(user: User, name: str = "oversold") -> Strategy:
    return Strategy.create(
        user=user,
        name=name,
        condition="rsi(14) < 30",
        indicators=["rsi(14)"],
        timeframe="1h",
        top_n=10,
        channels=["webhook", "telegram"],
        frequency="once_per_bar",
        cooldown_s=0,
        enabled=True,
        created_at=1,
        updated_at=1,
    )


def make_alert(strategy: Strategy, coin_id: int = 1, fired_at: int = NOW, **overrides) -> Alert:
    fields = {
        "strategy_id": strategy.id,
        "user_id": strategy.user_id,
        "strategy_name": strategy.name,
        "coin_id": coin_id,
        "symbol": f"C{coin_id}",
        "timeframe": "1h",
        "fired_at_ms": fired_at,
        "bar_open_ms": fired_at - fired_at % HOUR,
        "condition": strategy.condition,
        "values": {"rsi(14)": 28.5, "volume_24h": None},
        "subject": f"C{coin_id}: rsi(14) < 30",
        "text": f"C{coin_id} 1h: rsi(14) 28.5",
        "deliveries": (
            DeliveryTarget("webhook", "https://example.com/hook"),
            DeliveryTarget("telegram", "12345"),
        ),
    }
    fields.update(overrides)
    return Alert(**fields)


def outcome(alerts=(), states=(), tick: int = 1) -> ScanOutcome:
    return ScanOutcome(worker=0, tick=tick, snapshot_ms=NOW, alerts=tuple(alerts), states=tuple(states))


@pytest.fixture
def store(db) -> AlertStore:
    return AlertStore(db)


@pytest.fixture
def strategy(db) -> Strategy:
    return make_strategy(make_user())


def counts() -> tuple[int, int, int]:
    return AlertRecord.select().count(), Delivery.select().count(), AlertStateRecord.select().count()


# -- record ---------------------------------------------------------------------------------------


def test_record_writes_alerts_deliveries_and_states(store, strategy) -> None:
    alerts = [make_alert(strategy, 1), make_alert(strategy, 2, deliveries=())]
    states = [AlertState(strategy.id, 1, True, NOW, NOW - NOW % HOUR), AlertState(strategy.id, 3, False)]

    written = store.record(outcome(alerts, states), NOW)

    assert [w.alert for w in written] == alerts
    assert len({w.id for w in written}) == 2
    first, second = written
    assert [(d.channel, d.target, d.status, d.attempts, d.next_attempt_ms) for d in first.deliveries] == [
        ("webhook", "https://example.com/hook", "pending", 0, NOW),
        ("telegram", "12345", "pending", 0, NOW),
    ]
    keys = [d.key for d in first.deliveries]
    assert all(re.fullmatch("[0-9a-f]{32}", key) for key in keys) and len(set(keys)) == 2
    assert [
        d.key for d in Delivery.select().order_by(Delivery.id)
    ] == keys  # stored: the same on every attempt
    assert "secret" not in Delivery._meta.columns  # the webhook secret is read from the settings when sent
    assert second.deliveries == ()
    assert counts() == (2, 2, 2)
    row = AlertRecord.get_by_id(first.id)
    assert (row.strategy_id, row.user_id, row.symbol, row.fired_at) == (
        strategy.id,
        strategy.user_id,
        "C1",
        NOW,
    )
    assert row.values == {"rsi(14)": 28.5, "volume_24h": None}
    rows = {d.id: d for d in Delivery.select()}
    assert {d.id for d in first.deliveries} == set(rows)
    assert all(rows[d.id].channel == d.channel and rows[d.id].alert_id == first.id for d in first.deliveries)
    assert store.states([strategy.id]) == tuple(states)


def test_values_are_stored_as_plain_json_numbers(store, strategy) -> None:
    class Float64(float):  # what numpy hands out
        pass

    values = {"rsi(14)": Float64(28.5), "volume": 12, "change": float("nan"), "cap": None}

    (written,) = store.record(outcome([make_alert(strategy, values=values)]), NOW)

    expected = {"rsi(14)": 28.5, "volume": 12.0, "change": None, "cap": None}
    assert written.alert.values == expected
    assert AlertRecord.get_by_id(written.id).values == expected
    ((raw,),) = store.db.execute_sql('SELECT "values" FROM alert').fetchall()
    assert "NaN" not in raw and '"change":null' in raw


def test_ids_line_up_with_many_alerts(store, strategy, monkeypatch) -> None:
    monkeypatch.setattr(alerts_module, "CHUNK", 7)  # several INSERTs
    strategies = [strategy] + [make_strategy(strategy.user, f"s{n}") for n in range(1, 30)]
    alerts = [
        make_alert(s, coin, deliveries=(DeliveryTarget("webhook", f"https://h/{coin}"),))
        for coin, s in enumerate(strategies, start=1)
    ]

    written = store.record(outcome(alerts), NOW)

    for w in written:
        assert AlertRecord.get_by_id(w.id).coin_id == w.alert.coin_id
        (delivery,) = w.deliveries
        assert Delivery.get_by_id(delivery.id).target == f"https://h/{w.alert.coin_id}"
        assert Delivery.get_by_id(delivery.id).alert_id == w.id


def test_a_strategys_alerts_of_one_tick_are_one_batch_with_one_delivery_per_channel(
    store, strategy, monkeypatch
) -> None:
    monkeypatch.setattr(alerts_module, "CHUNK", 7)  # several UPDATEs
    other = make_strategy(strategy.user, "other")
    alerts = [make_alert(strategy, coin) for coin in range(1, 21)] + [make_alert(other, 99)]

    lead, *rest, alone = store.record(outcome(alerts), NOW)

    assert [(i, a.coin_id) for i, a in lead.batch] == [(w.id, w.alert.coin_id) for w in [lead, *rest]]
    assert [d.channel for d in lead.deliveries] == ["webhook", "telegram"]
    assert all(w.deliveries == () and w.members == () for w in rest)
    assert alone.members == () and len(alone.deliveries) == 2
    assert Delivery.select().count() == 4  # not 42
    assert {r.batch for r in AlertRecord.select().where(AlertRecord.id << [w.id for w in rest])} == {lead.id}
    (resumed, resumed_alone) = store.pending()
    assert [i for i, _ in resumed.batch] == [i for i, _ in lead.batch]
    assert resumed_alone.members == ()
    views = {v.id: v for v in store.alerts(strategy.user_id, limit=100)}
    assert [d.channel for d in views[rest[-1].id].deliveries] == ["webhook", "telegram"]
    store.mark_sent(lead.deliveries[0].id, NOW + 1)
    assert [d.status for d in views[rest[0].id].deliveries] == ["pending", "pending"]
    assert [d.status for d in store.alerts(strategy.user_id, limit=100)[-2].deliveries] == ["sent", "pending"]


def test_states_are_upserted(store, strategy) -> None:
    store.record(outcome(states=[AlertState(strategy.id, 1, True, NOW, NOW)]), NOW)

    later = AlertState(strategy.id, 1, False, NOW, NOW)
    store.record(outcome(states=[later, AlertState(strategy.id, 2, True, NOW + 1, NOW)]), NOW + 1)
    store.record(
        outcome(states=[AlertState(strategy.id, 2, False), AlertState(strategy.id, 2, True, 9, 9)]), NOW + 2
    )

    assert store.states([strategy.id]) == (later, AlertState(strategy.id, 2, True, 9, 9))
    assert store.states([]) == ()
    assert store.states([strategy.id + 100]) == ()


def test_the_scan_watermark_only_moves_forward(store) -> None:
    assert store.scan_watermark() is None
    store.set_scan_watermark(5)
    store.set_scan_watermark(3)
    assert store.scan_watermark() == 5
    store.set_scan_watermark(9)
    assert store.scan_watermark() == 9


def test_forgetting_a_strategys_state(store, strategy) -> None:
    store.record(
        outcome(states=[AlertState(strategy.id, 1, True, NOW, NOW), AlertState(strategy.id, 0, True)]), NOW
    )
    assert store.forget_states([strategy.id]) == 2
    assert store.states([strategy.id]) == ()
    assert store.forget_states([]) == 0


def test_a_delivery_in_quiet_hours_is_held_until_they_end(store, strategy) -> None:
    quiet = make_alert(strategy, 1, quiet_hours="22:00-07:00")
    seen = []

    def hold_until(alert: Alert, now_ms: int) -> int | None:
        seen.append((alert.coin_id, now_ms))
        return NOW + 8 * HOUR if alert.quiet_hours else None

    other = make_strategy(strategy.user, "other")
    (held, normal) = store.record(outcome([quiet, make_alert(other, 2)]), NOW, hold_until)

    assert seen == [(1, NOW), (2, NOW)]
    assert {(d.status, d.next_attempt_ms) for d in held.deliveries} == {("held", NOW + 8 * HOUR)}
    assert {(d.status, d.next_attempt_ms) for d in normal.deliveries} == {("pending", NOW)}
    assert Delivery.select().where(Delivery.status == "held").count() == 2


def test_record_is_all_or_nothing(store, strategy, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(alerts_module, "insert_rows", broken)  # the state upsert, last of the three

    with pytest.raises(RuntimeError, match="disk full"):
        store.record(outcome([make_alert(strategy)], [AlertState(strategy.id, 1, True)]), NOW)

    assert counts() == (0, 0, 0)


def test_alerts_and_states_of_a_deleted_strategy_are_dropped(store, strategy) -> None:
    gone = make_strategy(User.get_by_id(strategy.user_id), "gone")
    gone_id = gone.id
    gone.delete_instance()

    written = store.record(
        outcome(
            [make_alert(strategy), make_alert(gone)],
            [AlertState(strategy.id, 1, True), AlertState(gone_id, 1, True)],
        ),
        NOW,
    )

    assert [w.alert.strategy_id for w in written] == [strategy.id]
    assert counts() == (1, 2, 1)


def test_a_strategy_deleted_during_the_write_is_checked_again(store, strategy, monkeypatch) -> None:
    """PostgreSQL: the delete can land between the check and the insert; the write is retried."""
    real = alerts_module._existing_strategies
    calls = []

    def stale(ids):
        calls.append(1)
        return real(ids) | ({999_999} if len(calls) == 1 else set())

    monkeypatch.setattr(alerts_module, "_existing_strategies", stale)
    ghost = make_alert(strategy, strategy_id=999_999)

    written = store.record(outcome([make_alert(strategy), ghost]), NOW)

    assert len(calls) == 2
    assert [w.alert.strategy_id for w in written] == [strategy.id]
    assert counts() == (1, 2, 0)


def test_an_integrity_error_that_persists_is_raised(store, strategy, monkeypatch) -> None:
    monkeypatch.setattr(alerts_module, "_existing_strategies", lambda ids: {999_999})

    with pytest.raises(IntegrityError):
        store.record(outcome([make_alert(strategy, strategy_id=999_999)]), NOW)

    assert counts() == (0, 0, 0)


# -- resuming and delivery states ----------------------------------------------------------------


def test_pending_and_due_return_unsent_deliveries_with_their_alert(store, strategy) -> None:
    first = store.record(outcome([make_alert(strategy, 1)]), NOW)[0]
    second = store.record(
        outcome([make_alert(strategy, 2, quiet_hours="x")]), NOW + 1, lambda a, n: NOW + HOUR
    )[0]
    webhook, telegram = first.deliveries
    store.mark_sent(webhook.id, NOW + 5)
    store.mark_retry(telegram.id, 1, NOW + 10_000, "HTTP 502")

    pending = store.pending()

    assert [(w.id, [d.id for d in w.deliveries]) for w in pending] == [
        (first.id, [telegram.id]),
        (second.id, [d.id for d in second.deliveries]),
    ]
    resumed = pending[0]
    assert resumed.alert == make_alert(strategy, 1, deliveries=())
    (row,) = resumed.deliveries
    assert (row.channel, row.target, row.status, row.attempts, row.next_attempt_ms) == (
        "telegram",
        "12345",
        "pending",
        1,
        NOW + 10_000,
    )
    assert [d.status for d in pending[1].deliveries] == ["held", "held"]
    assert pending[1].deliveries[0].key == Delivery.get_by_id(pending[1].deliveries[0].id).key


def test_a_sent_delivery_is_never_sent_or_changed_again(store, strategy) -> None:
    (written,) = store.record(outcome([make_alert(strategy)]), NOW)
    delivery = written.deliveries[0]

    assert store.mark_sent(delivery.id, NOW + 5, attempts=2) is True
    assert store.mark_sent(delivery.id, NOW + 6) is False
    assert store.mark_retry(delivery.id, 3, NOW + 7, "late") is False
    assert store.mark_failed(delivery.id, "late") is False

    row = Delivery.get_by_id(delivery.id)
    assert (row.status, row.attempts, row.sent_at, row.detail) == ("sent", 2, NOW + 5, None)
    assert delivery.id not in {d.id for w in store.pending() for d in w.deliveries}


def test_retry_then_failed(store, strategy) -> None:
    (written,) = store.record(outcome([make_alert(strategy)]), NOW)
    delivery = written.deliveries[1]

    store.mark_retry(delivery.id, 1, NOW + 5_000, "timed out")
    row = Delivery.get_by_id(delivery.id)
    assert (row.status, row.attempts, row.next_attempt_at, row.detail) == (
        "pending",
        1,
        NOW + 5_000,
        "timed out",
    )

    assert store.mark_failed(delivery.id, "HTTP 403: bot was blocked") is True
    row = Delivery.get_by_id(delivery.id)
    assert (row.status, row.attempts, row.detail, row.sent_at) == (
        "failed",
        2,
        "HTTP 403: bot was blocked",
        None,
    )


def test_mark_sent_without_attempts_counts_one_more(store, strategy) -> None:
    (written,) = store.record(outcome([make_alert(strategy)]), NOW)
    delivery = written.deliveries[0]
    store.mark_retry(delivery.id, 3, NOW, "x")

    store.mark_sent(delivery.id, NOW + 1)

    assert Delivery.get_by_id(delivery.id).attempts == 4


# -- the alert history ----------------------------------------------------------------------------


def test_alerts_newest_first_with_delivery_statuses(store, strategy) -> None:
    other = make_strategy(User.get_by_id(strategy.user_id), "breakout")
    older = store.record(outcome([make_alert(strategy, 1, NOW)]), NOW)[0]
    newer = store.record(outcome([make_alert(other, 2, NOW + HOUR)]), NOW + HOUR)[0]
    store.mark_sent(older.deliveries[0].id, NOW + 3)
    store.mark_failed(older.deliveries[1].id, "telegram is not configured", attempts=0)

    views = store.alerts(strategy.user_id)

    assert [v.id for v in views] == [newer.id, older.id]
    view = views[1]
    assert (view.strategy_id, view.strategy_name, view.symbol, view.fired_at_ms) == (
        strategy.id,
        "oversold",
        "C1",
        NOW,
    )
    assert view.values == {"rsi(14)": 28.5, "volume_24h": None}
    assert view.condition == "rsi(14) < 30" and view.text == "C1 1h: rsi(14) 28.5"
    assert [(d.channel, d.status, d.attempts, d.detail, d.sent_at_ms) for d in view.deliveries] == [
        ("webhook", "sent", 1, None, NOW + 3),
        ("telegram", "failed", 0, "telegram is not configured", None),
    ]
    assert [d.status for d in views[0].deliveries] == ["pending", "pending"]


def test_alerts_filters(store, strategy) -> None:
    other = make_strategy(User.get_by_id(strategy.user_id), "breakout")
    for hour in range(5):
        store.record(
            outcome([make_alert(strategy, 1, NOW + hour * HOUR), make_alert(other, 2, NOW + hour * HOUR)]),
            NOW,
        )
    stranger = make_strategy(make_user("bob"))
    store.record(outcome([make_alert(stranger)]), NOW)

    assert len(store.alerts(strategy.user_id)) == 10
    assert len(store.alerts(strategy.user_id, limit=3)) == 3
    assert {v.fired_at_ms for v in store.alerts(strategy.user_id, since_ms=NOW + 3 * HOUR)} == {
        NOW + 3 * HOUR,
        NOW + 4 * HOUR,
    }
    only = store.alerts(strategy.user_id, strategy_id=other.id)
    assert len(only) == 5 and {v.strategy_id for v in only} == {other.id}
    assert store.alerts(strategy.user_id, strategy_id=stranger.id) == ()  # another user's strategy
    about = store.alerts(strategy.user_id, coin_id=2)
    assert len(about) == 5 and {v.coin_id for v in about} == {2}
    assert len(store.alerts(strategy.user_id, coin_id=1, limit=2)) == 2  # the limit counts that coin's
    assert store.alerts(strategy.user_id, strategy_id=strategy.id, coin_id=2) == ()
    assert store.alerts(strategy.user_id, coin_id=3) == ()
    assert [v.strategy_name for v in store.alerts(stranger.user_id)] == ["oversold"]


def test_alerts_page_back_with_before(store, strategy) -> None:
    other = make_strategy(User.get_by_id(strategy.user_id), "breakout")
    for hour in range(5):  # two alerts fired at each time: ties are ordered by id
        store.record(
            outcome([make_alert(strategy, 1, NOW + hour * HOUR), make_alert(other, 2, NOW + hour * HOUR)]),
            NOW,
        )
    everything = store.alerts(strategy.user_id)
    pages, before = [], None
    while True:
        page = store.alerts(strategy.user_id, limit=3, before=before)
        if not page:
            break
        pages.append(page)
        before = page[-1].id
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [v.id for p in pages for v in p] == [v.id for v in everything]
    stranger = make_strategy(make_user("bob"))
    store.record(outcome([make_alert(stranger)]), NOW)
    assert store.alerts(stranger.user_id, before=everything[0].id) == ()  # not an id of theirs: by id


def test_deleting_a_strategy_keeps_its_alerts_and_drops_its_states(store, strategy) -> None:
    (written,) = store.record(outcome([make_alert(strategy)], [AlertState(strategy.id, 1, True)]), NOW)
    strategy_id = strategy.id

    strategy.delete_instance()

    (view,) = store.alerts(strategy.user_id)
    assert (view.id, view.strategy_id, view.strategy_name) == (written.id, None, "oversold")
    assert store.states([strategy_id]) == ()
    (resumed,) = store.pending()  # still delivered: it was raised before the strategy went
    assert resumed.alert.strategy_id is None and len(resumed.deliveries) == 2


def test_deleting_the_user_deletes_their_alerts(store, strategy) -> None:
    store.record(outcome([make_alert(strategy)], [AlertState(strategy.id, 1, True)]), NOW)

    User.get_by_id(strategy.user_id).delete_instance()

    assert counts() == (0, 0, 0)


# -- the webhook secret, read when sending -----------------------------------------------------------


def test_the_webhook_secret_is_read_from_the_settings_as_they_are_now(store, strategy) -> None:
    assert store.webhook_secret(strategy.user_id) is None  # no settings yet
    UserSettings.create(
        user=strategy.user_id, webhook_url="https://example.com/hook", webhook_secret="first-0123456789"
    )
    assert store.webhook_secret(strategy.user_id) == "first-0123456789"
    UserSettings.update(webhook_secret="second-0123456789").execute()  # rotated while deliveries wait
    assert store.webhook_secret(strategy.user_id) == "second-0123456789"
    UserSettings.update(webhook_secret=None).execute()
    assert store.webhook_secret(strategy.user_id) is None


# -- retention --------------------------------------------------------------------------------------


def test_prune_deletes_old_alerts_with_their_deliveries_in_bounded_batches(store, strategy) -> None:
    old = [
        make_alert(make_strategy(strategy.user, f"s{coin}"), coin, fired_at=NOW - 100 * 86_400_000 + coin)
        for coin in range(1, 6)
    ]
    recent = make_alert(strategy, 9, fired_at=NOW)
    for written in [*store.record(outcome(old), NOW), *store.record(outcome([recent]), NOW)]:
        for d in written.deliveries:
            store.mark_sent(d.id, NOW)
    cutoff = NOW - 90 * 86_400_000

    assert store.prune(cutoff, batch=2) == 2  # the oldest two: a full batch, maybe more
    assert counts()[:2] == (4, 8)
    assert store.prune(cutoff, batch=2) == 2
    assert store.prune(cutoff, batch=2) == 1  # less than a batch: done
    assert store.prune(cutoff, batch=2) == 0
    assert [a.symbol for a in AlertRecord.select()] == ["C9"]
    assert {d.alert_id for d in Delivery.select()} == {AlertRecord.get().id}


def test_prune_keeps_a_batch_whose_message_is_still_to_send(store, strategy) -> None:
    old = NOW - 100 * 86_400_000
    lead, member = store.record(outcome([make_alert(strategy, 1, old), make_alert(strategy, 2, old)]), NOW)

    assert store.prune(NOW - 90 * 86_400_000) == 0  # the message lists both: both kept
    for d in lead.deliveries:
        store.mark_sent(d.id, NOW)
    assert store.prune(NOW - 90 * 86_400_000) == 2


def test_prune_keeps_an_old_alert_whose_delivery_is_still_to_send(store, strategy) -> None:
    (stuck,) = store.record(outcome([make_alert(strategy, 1, fired_at=NOW - 100 * 86_400_000)]), NOW)
    (done,) = store.record(outcome([make_alert(strategy, 2, fired_at=NOW - 100 * 86_400_000)]), NOW)
    for d in done.deliveries:
        store.mark_failed(d.id, "gone")

    assert store.prune(NOW - 90 * 86_400_000) == 1
    assert [a.id for a in AlertRecord.select()] == [stuck.id]
    assert Delivery.select().count() == 2
