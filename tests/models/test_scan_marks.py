"""Scan marks (``--role scanner``): an outcome that names its snapshot moves the marks of the
strategies it scanned, and is written only for those whose mark it moved; two scanners racing to
write one strategy's scan of one snapshot write it once. On SQLite, and on PostgreSQL with
``UBOT_TEST_DATABASE_URL`` (where the race is a real one: the second waits for the first's row lock)."""

from __future__ import annotations

import threading

import pytest

from tests.models.test_alerts_store import NOW, make_alert, make_strategy, make_user
from tests.support.pglocks import backend_pid, waiting_for
from tests.support.waits import wait_until
from ubot.models.alerts import AlertStore
from ubot.models.db import close_connection, is_sqlite
from ubot.models.tables import AlertRecord, AlertStateRecord
from ubot.notify.messages import AlertState, ScanOutcome


def scan(worker: int, snapshot_id: int, scanned, alerts=(), states=()) -> ScanOutcome:
    return ScanOutcome(
        worker=worker,
        tick=snapshot_id,
        snapshot_ms=NOW,
        alerts=tuple(alerts),
        states=tuple(states),
        snapshot_id=snapshot_id,
        scanned=tuple(scanned),
    )


@pytest.fixture
def store(db) -> AlertStore:
    return AlertStore(db, marks=True)


def test_an_outcome_is_written_only_for_the_strategies_whose_mark_it_moves(store) -> None:
    user = make_user()
    a, b = make_strategy(user, "a"), make_strategy(user, "b")
    store.record(scan(0, 10, [a.id], [make_alert(a)], [AlertState(a.id, 1, True, NOW)]), NOW)
    assert store.scan_marks([a.id, b.id]) == {a.id: 10}

    # Another scanner's scan of snapshot 10 for a and b: b's is written, a's is not (a's mark is 10).
    written = store.record(
        scan(1, 10, [a.id, b.id], [make_alert(a, 2), make_alert(b, 3)], [AlertState(a.id, 2, True, NOW)]), NOW
    )
    assert [w.alert.strategy_id for w in written] == [b.id]
    assert sorted(AlertRecord.select(AlertRecord.strategy).tuples()) == sorted([(a.id,), (b.id,)])
    assert [(s.strategy_id, s.coin_id) for s in AlertStateRecord.select()] == [(a.id, 1)]
    # An older snapshot never moves a mark back, nor is written.
    assert store.record(scan(0, 9, [b.id], [make_alert(b, 4)]), NOW) == []
    assert store.scan_marks([a.id, b.id]) == {a.id: 10, b.id: 10}
    # The next one is written for both.
    assert len(store.record(scan(0, 11, [a.id, b.id], [make_alert(a, 5), make_alert(b, 5)]), NOW)) == 2
    assert store.scan_marks([a.id, b.id]) == {a.id: 11, b.id: 11}


def test_without_marks_every_outcome_is_written(db) -> None:
    """The single process (``--role all``) has one scanner: no marks, as before."""
    store = AlertStore(db)
    a = make_strategy(make_user())
    assert len(store.record(scan(0, 10, [a.id], [make_alert(a)]), NOW)) == 1
    assert len(store.record(scan(0, 10, [a.id], [make_alert(a, 2)]), NOW)) == 1
    assert store.scan_marks([a.id]) == {}


def test_two_scanners_racing_for_one_strategys_snapshot_write_it_once(db, store) -> None:
    """The first scanner's transaction has moved the mark and not committed; the second's write of
    the same (strategy, snapshot) waits for it (PostgreSQL: the row lock; SQLite: the write lock),
    then finds the mark moved and writes nothing of it. Each alert fired by one of them only."""
    a = make_strategy(make_user())
    store.record(scan(0, 9, [a.id]), NOW)
    inside, release = threading.Event(), threading.Event()
    results: dict[str, list] = {}

    def hold(alert, now_ms):  # called inside the first transaction, after the marks moved
        results["pid"] = None if is_sqlite(db) else backend_pid(db)  # this thread's session
        inside.set()
        assert release.wait(30)
        return None

    def first() -> None:
        try:
            results["first"] = store.record(scan(0, 10, [a.id], [make_alert(a, 1)]), NOW, hold)
        finally:
            close_connection()

    def second() -> None:
        try:
            results["second"] = store.record(scan(1, 10, [a.id], [make_alert(a, 2)]), NOW)
        finally:
            close_connection()

    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert inside.wait(30)
    threads.append(threading.Thread(target=second))
    threads[1].start()
    if not is_sqlite(db):  # the second is waiting for the row's lock
        wait_until(lambda: waiting_for(db, results["pid"]), "the second write to wait", 30)
    release.set()
    for thread in threads:
        thread.join(30)
    assert [w.alert.coin_id for w in results["first"]] == [1]
    assert results["second"] == []
    assert [(r.coin_id,) for r in AlertRecord.select()] == [(1,)]
    assert store.scan_marks([a.id]) == {a.id: 10}
