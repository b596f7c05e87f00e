"""A delivery written at the very moment its user's holds are released (``/mute off``, quiet hours
cleared): the Notifier's write (``AlertStore.record``) and the release (``release_held``, in the
transaction that changes the settings) meet at the user's settings row, so the delivery is never held
past what the settings hold. The moment is built, not hoped for: one transaction is held open, the
other is shown waiting for it (PostgreSQL: ``pg_blocking_pids``), then the first lets go. Both
orders, both kinds of release. On SQLite one writer at a time decides it the same way."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from tests.models.test_alerts_store import HOUR, NOW, make_alert, make_strategy, make_user, outcome
from tests.support.pglocks import backend_pid, waiting_for
from tests.support.waits import wait_until
from ubot.models.alerts import AlertStore
from ubot.models.db import close_connection, is_sqlite, writing
from ubot.models.tables import Delivery, Strategy, UserSettings
from ubot.models.users import UserStore
from ubot.notify.outbox import hold_until

MUTED = NOW + HOUR  # NOW is 2023-11-14T22:13:20Z: inside quiet hours of 22:00-06:00 UTC too


def release_mute(users: UserStore, user_id: int) -> list[int]:
    """``/mute off`` as ``UserManager.mute`` writes it: nothing else holds, so due now."""
    return users.set_muted_until(user_id, None, release_until_ms=NOW)


def release_quiet_hours(users: UserStore, user_id: int) -> list[int]:
    """The quiet hours cleared (``PATCH /v1/me/settings``), as ``UserManager`` writes it."""
    values = users.settings(user_id)
    assert values is not None
    return users.put_settings(user_id, {**values, "quiet_hours": None}, release_until_ms=NOW)


RELEASES = {
    "mute off": (release_mute, {"muted_until": MUTED}, {"muted_until_ms": MUTED}),
    "quiet hours cleared": (
        release_quiet_hours,
        {"quiet_hours": "22:00-06:00"},
        {"quiet_hours": "22:00-06:00"},
    ),
}


@pytest.fixture(params=list(RELEASES))
def held(request, db) -> tuple[Strategy, Callable[[UserStore, int], list[int]], dict]:
    """A user whose settings hold their alerts now; the release that ends the hold; the hold as
    their strategies' specs carry it (what the Scanner put in the alert)."""
    release, settings, spec = RELEASES[request.param]
    strategy = make_strategy(make_user())
    UserSettings.create(user=strategy.user_id, **settings)
    return strategy, release, spec


class Holder(threading.Thread):
    """Runs ``work`` in a transaction of its own (its own connection) and keeps that transaction open
    until :meth:`let_go`."""

    def __init__(self, db, work: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.db, self.work = db, work
        self.inside, self.go = threading.Event(), threading.Event()
        self.pid: int | None = None
        self.result: object = None

    def run(self) -> None:
        try:
            with writing(self.db):
                self.result = self.work()
                self.pid = None if is_sqlite(self.db) else backend_pid(self.db)
                self.inside.set()
                assert self.go.wait(30)
        finally:
            close_connection()

    def let_go(self) -> None:
        self.go.set()
        self.join(30)
        assert not self.is_alive()


def race(db, holder: Holder, second: Callable[[], object]) -> tuple[object, bool]:
    """``holder``'s transaction open, ``second`` runs in another thread; once it waits for the holder
    (or has ended without waiting), the holder commits. ``second``'s result, and whether it waited."""
    holder.start()
    assert holder.inside.wait(30)
    done: dict[str, object] = {}

    def run() -> None:
        try:
            done["result"] = second()
        finally:
            close_connection()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    waited = False
    if holder.pid is not None:

        def settled() -> bool:
            nonlocal waited
            waited = bool(waiting_for(db, holder.pid))
            return waited or not thread.is_alive()

        wait_until(settled, "the second transaction to wait for the first, or to end")
    holder.let_go()
    thread.join(30)
    assert not thread.is_alive() and "result" in done
    return done["result"], waited or holder.pid is None


def test_a_release_under_way_makes_the_write_wait_and_the_write_sees_it(db, held) -> None:
    """The release has changed the settings, not committed; an alert scanned with the old hold is
    written then: the write waits for the release, then reads the settings it committed: not held."""
    strategy, release, spec = held
    users, alerts = UserStore(db), AlertStore(db)
    releasing = Holder(db, lambda: release(users, strategy.user_id))

    written, waited = race(
        db,
        releasing,
        lambda: alerts.record(outcome([make_alert(strategy, **spec)]), NOW, hold_until),
    )

    assert releasing.result == []  # nothing written yet to release
    assert [(d.status, d.next_attempt_ms) for d in written[0].deliveries] == [("pending", NOW)] * 2
    assert [(d.status, d.next_attempt_at) for d in Delivery.select()] == [("pending", NOW)] * 2
    assert waited


def test_a_write_under_way_makes_the_release_wait_and_the_release_moves_it(db, held) -> None:
    """The write has read the hold and written its deliveries held, not committed; the release then
    waits for the write, and moves what it wrote."""
    strategy, release, spec = held
    users, alerts = UserStore(db), AlertStore(db)
    writing_alert = Holder(
        db, lambda: alerts.record(outcome([make_alert(strategy, **spec)]), NOW, hold_until)
    )

    released, waited = race(db, writing_alert, lambda: release(users, strategy.user_id))

    (written,) = writing_alert.result
    assert {d.status for d in written.deliveries} == {"held"}  # as the settings said when it was written
    assert sorted(released) == sorted(d.id for d in written.deliveries)
    assert [d.next_attempt_at for d in Delivery.select()] == [NOW] * 2
    assert waited
