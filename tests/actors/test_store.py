"""Store actor: each snapshot in one transaction, then on to OHLC; duplicates and failures skip."""

from __future__ import annotations

from tests.support.actors import Inbox
from tests.support.market import T0, fetched, market
from ubot.actors.store import Store
from ubot.messages import Stored, TickDone
from ubot.models.store import SnapshotWriter
from ubot.models.tables import Quote, SnapshotRecord

HOUR = 3_600_000


class FailingOnce(SnapshotWriter):
    def __init__(self, db) -> None:
        super().__init__(db)
        self.failed = False

    def write(self, snap, source):
        if not self.failed:
            self.failed = True
            raise RuntimeError("database is locked")
        return super().write(snap, source)


def start(writer: SnapshotWriter, retention_ms: int = 7 * 24 * HOUR):
    ohlc, monitor = Inbox(), Inbox()
    return Store.start(writer, ohlc.ref, monitor.ref, retention_ms), ohlc, monitor


def test_a_snapshot_is_stored_and_passed_on_with_its_id(db) -> None:
    store, ohlc, monitor = start(SnapshotWriter(db))
    message = fetched(1, market(T0))

    store.tell(message)

    stored = ohlc.next(Stored)
    record = SnapshotRecord.get(SnapshotRecord.timestamp == T0)
    assert stored.snapshot_id == record.id
    assert (record.source, record.coin_count) == ("simulated", 5)
    assert Quote.select().where(Quote.snapshot == record.id).count() == 5
    assert stored.snapshot is message.snapshot and stored.tick == message.tick
    assert [stage for stage, _ in stored.stages] == ["fetch", "store"]
    assert monitor.received() == []


def test_a_duplicate_timestamp_skips_the_tick(db) -> None:
    store, ohlc, monitor = start(SnapshotWriter(db))
    store.tell(fetched(1, market(T0)))
    ohlc.next(Stored)

    store.tell(fetched(2, market(T0)))

    done = monitor.next(TickDone)
    assert (done.tick.number, done.outcome) == (2, "skipped")
    assert done.reason == "duplicate snapshot timestamp 2024-03-10T00:00:00.000Z: already stored"
    assert [stage for stage, _ in done.stages] == ["fetch", "store"]
    assert done.coins == 5
    assert ohlc.received() == []
    assert SnapshotRecord.select().count() == 1


def test_a_failing_write_skips_the_tick_and_the_store_goes_on(db) -> None:
    store, ohlc, monitor = start(FailingOnce(db))

    store.tell(fetched(1, market(T0)))
    done = monitor.next(TickDone)
    assert (done.outcome, done.reason) == ("skipped", "store failed: RuntimeError: database is locked")

    store.tell(fetched(2, market(T0 + 60_000)))
    assert ohlc.next(Stored).tick.number == 2
    assert [r.timestamp for r in SnapshotRecord.select()] == [T0 + 60_000]


def test_raw_history_older_than_the_retention_is_pruned(db) -> None:
    store, ohlc, _ = start(SnapshotWriter(db), retention_ms=HOUR)
    stamps = [T0, T0 + HOUR // 2, T0 + 2 * HOUR]

    for number, ts in enumerate(stamps, start=1):
        store.tell(fetched(number, market(ts)))
        ohlc.next(Stored)

    assert [r.timestamp for r in SnapshotRecord.select()] == [T0 + 2 * HOUR]
    assert Quote.select().count() == 5
