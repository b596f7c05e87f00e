"""The hourly caps with several processes writing one user's alerts (``--role scanner``: each
scanner process has its own Notifier): counted from the database at write time, the cap holds for
all of them together; counted per process it would be passed K times (the control)."""

from __future__ import annotations

import pytest

from tests.notify.test_batches_e2e import make_strategy
from ubot.actors.notifier import Notifier
from ubot.clocks import FakeClock
from ubot.models.alerts import AlertStore
from ubot.models.tables import Delivery, Strategy, User
from ubot.notify.caps import Caps
from ubot.notify.messages import Alert, DeliveryTarget, GetScanWatermark, ScanOutcome

T0 = 1_764_876_000.0
HOOK = "https://hooks.example.com/ada"


def test_recount_replaces_the_local_counts_of_the_users_and_destinations_asked() -> None:
    caps = Caps(per_user=3, per_destination=2)
    assert caps.admit(7, "webhook", HOOK, 1, now_ms=1_000).sent
    # another process wrote two messages of user 7 to the hook, and one of user 8 elsewhere
    sent = [(7, "webhook", HOOK, 500), (7, "webhook", HOOK, 900), (8, "sms", "+1555", 950)]
    caps.recount(sent, [7], [("webhook", HOOK)])
    assert caps.users.total(7, 1_000) == 2 and caps.destinations.total(("webhook", HOOK), 1_000) == 2
    assert caps.users.total(8, 1_000) == 0  # not asked: not counted here
    assert not caps.admit(7, "webhook", HOOK, 4, now_ms=1_000).sent  # the destination is full
    caps.recount([], [7], [("webhook", HOOK)])  # an hour later: nothing in the window
    assert caps.admit(7, "webhook", HOOK, 1, now_ms=3_700_000).sent


def test_one_recount_loads_every_window_at_start_and_the_asked_ones_later() -> None:
    """The Notifier's start (no users or destinations named: all of them, from the last hour's
    deliveries) and a shared recount (only those named) are the same path."""
    sent = [(7, "webhook", HOOK, 500), (8, "sms", "+1555", 600), (8, "sms", "+1555", 700)]
    caps = Caps(per_user=2, per_destination=5)
    assert caps.admit(9, "email", "c@example.com", 1, now_ms=100).sent  # counted before: replaced
    caps.recount(sent)
    totals = {user: caps.users.total(user, 1_000) for user in (7, 8, 9)}
    assert totals == {7: 1, 8: 2, 9: 0}
    assert caps.destinations.total(("sms", "+1555"), 1_000) == 2
    assert caps.destinations.total(("email", "c@example.com"), 1_000) == 0
    assert not caps.admit(8, "email", "b@example.com", 1, now_ms=1_000).sent  # user 8 is full
    # later, user 8's window only: user 7's and the destinations' stay as counted
    caps.recount([(8, "sms", "+1555", 700)], users=[8], destinations=[])
    assert caps.users.total(8, 1_000) == 1 and caps.users.total(7, 1_000) == 1
    assert caps.destinations.total(("sms", "+1555"), 1_000) == 2
    assert caps.admit(8, "email", "b@example.com", 1, now_ms=1_000).sent


def alert(strategy: Strategy, at_ms: int) -> Alert:
    return Alert(
        strategy_id=strategy.id, user_id=strategy.user_id, strategy_name=strategy.name, coin_id=1,
        symbol="BTC", name="Bitcoin", price=1.0, timeframe="1m", fired_at_ms=at_ms,
        bar_open_ms=at_ms - at_ms % 60_000, condition="price > 0", values={"price": 1.0},
        subject="", text="", deliveries=(DeliveryTarget("webhook", HOOK),), rank=1,
    )  # fmt: skip


@pytest.mark.parametrize("shared", [True, False])
def test_two_scanner_processes_keep_one_users_hourly_cap_together(db, shared: bool) -> None:
    clock = FakeClock(T0)
    user = User.create(
        username="ada", email="ada@example.com", password_hash="h", created_at=1, password_changed_at=1
    )
    strategies = [make_strategy(user, f"s{n}") for n in range(2)]
    processes = [
        Notifier.start(AlertStore(db), {}, clock, deliver=False, messages_per_user_hour=3, shared_caps=shared)
        for _ in range(2)
    ]
    for notifier in processes:  # both started (their caps seeded from the empty outbox)
        notifier.ask(GetScanWatermark(), timeout=30)
    try:
        for number in range(1, 7):  # each tick, one message from each process's strategy
            at_ms = round(clock.now() * 1000)
            for notifier, strategy in zip(processes, strategies):
                notifier.tell(
                    ScanOutcome(worker=0, tick=number, snapshot_ms=at_ms, alerts=(alert(strategy, at_ms),))
                )
                notifier.ask(GetScanWatermark(), timeout=30)  # written
            clock.advance(60)
    finally:
        for notifier in processes:
            notifier.stop()
    statuses = [d.status for d in Delivery.select().order_by(Delivery.id)]
    assert len(statuses) == 12
    allowed = sum(s != "capped" for s in statuses)
    assert allowed == (3 if shared else 6)  # per process, each lets 3 through: the cap passed twice
