"""OHLC actor: folds stored snapshots into candles once each, also across a crash and restart."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from peewee import Database, SqliteDatabase
from playhouse.db_url import connect

from tests.procs import WriteLock
from tests.support.actors import Inbox
from tests.support.market import T0, fetched, market
from ubot.actors.monitor import Monitor
from ubot.actors.ohlc import Ohlc
from ubot.clocks import FakeClock
from ubot.market.candles import CandleBook
from ubot.messages import Candled, GetHealth, Stored, TickDone
from ubot.models.candle_store import WATERMARK, CandleStore
from ubot.models.db import SQLITE_PRAGMAS, database, is_sqlite, sqlite_path
from ubot.models.store import SnapshotWriter
from ubot.models.tables import Candle, Coin, Meta

SECONDS_20 = 20_000
WAIT = 10.0


def stored(number: int, snap, snapshot_id: int) -> Stored:
    return Stored.extend(fetched(number, snap), snapshot_id=snapshot_id)


def open_rows(open_candles) -> dict[str, list[tuple]]:
    return {tf: sorted(rows.rows()) for tf, rows in open_candles.items()}


def fold(db, snapshots: list, ids: list[int]) -> tuple[list[tuple], dict[str, list[tuple]]]:
    """The reference: candles as one uninterrupted run leaves them (stored, open); then forgets them."""
    for snap in snapshots:  # the coins the candles refer to
        rows = zip(snap.ids.tolist(), snap.symbols, snap.names, snap.slugs, strict=True)
        coins = [
            {"id": i, "symbol": s, "name": n, "slug": g, "first_seen": snap.timestamp_ms}
            for i, s, n, g in rows
        ]
        Coin.insert_many(coins).on_conflict_ignore().execute()
    candles, book = CandleStore(db), CandleBook()
    for snap, snapshot_id in zip(snapshots, ids, strict=True):
        candles.save(book, book.apply(snap.ids, snap.quote_ts_ms, snap.column("price")), snapshot_id)
    result = (
        sorted(Candle.select().tuples()),
        {tf: sorted(book.open_candles(tf).rows()) for tf in book.timeframes},
    )
    Candle.delete().execute()
    Meta.delete().where(Meta.key == WATERMARK).execute()
    return result


def start(candles: CandleStore):
    """The OHLC actor, once its on_start (restore and catch-up) is done."""
    container, monitor = Inbox(), Inbox()
    ohlc = Ohlc.start(candles, container.ref, monitor.ref)
    ohlc.proxy().watermark.get(timeout=WAIT)  # answered after on_start
    return ohlc, container, monitor


def settled(ohlc) -> None:
    """Returns once the actor has handled every message told before."""
    ohlc.proxy().watermark.get(timeout=WAIT)


def test_each_stored_snapshot_is_folded_passed_on_and_its_candles_written_in_batches(db) -> None:
    snapshots = [market(T0 + n * SECONDS_20) for n in range(20)]  # 6 min 20 s: candles close
    ids = list(range(1, 21))
    expected_rows, expected_open = fold(db, snapshots, ids)  # ids only set the watermark
    writer = SnapshotWriter(db)
    ohlc, container, monitor = start(CandleStore(db, flush_every_ms=2 * 60_000))

    watermarks = []
    for number, snap in enumerate(snapshots, start=1):
        snapshot_id = writer.write(snap, "simulated")  # as the Store does, then tells OHLC
        ohlc.tell(stored(number, snap, snapshot_id))
        candled = container.next(Candled)
        assert candled.snapshot_id == snapshot_id
        assert [stage for stage, _ in candled.stages] == ["fetch", "ohlc"]
        settled(ohlc)
        watermarks.append(CandleStore(db).watermark())

    # Written every two minutes of market time (six snapshots), the watermark with them.
    assert watermarks == [0] * 6 + [7] * 7 + [14] * 7
    assert open_rows(candled.open_candles) == expected_open
    assert Candle.select().where(Candle.timeframe == "1m").count() == 4 * 5  # 4 minutes closed by 14
    ohlc.stop()  # writes the rest
    assert sorted(Candle.select().tuples()) == expected_rows
    assert CandleStore(db).watermark() == 20
    assert {row[8] for row in expected_open["1m"]} == {2}  # two quotes in the last 1m candle
    assert monitor.received() == []


def test_a_due_batch_is_written_before_the_tick_is_handed_on(db) -> None:
    """The Scanner's Notifier and the next tick's Store write right after the hand-on; on SQLite one
    write lock serves them all, so the batch must not come after it (``actors/ohlc.py``)."""
    told_before_write: list[int] = []

    class Watching(CandleStore):
        def flush(self) -> int:
            # An ask queues behind every message told before: what the Container had by now.
            told_before_write.append(len(container.received()))
            return super().flush()

    snapshots = [market(T0 + n * 60_000) for n in range(3)]
    writer = SnapshotWriter(db)
    ohlc, container, monitor = start(Watching(db, flush_every_ms=0))  # a write after every tick
    for number, snap in enumerate(snapshots, start=1):
        snapshot_id = writer.write(snap, "simulated")
        ohlc.tell(stored(number, snap, snapshot_id))
        assert container.next(Candled).snapshot_id == snapshot_id
        assert CandleStore(db).watermark() == snapshot_id  # committed before the Candled was told
    assert told_before_write == [0, 0, 0]


def test_a_snapshot_stored_but_not_folded_before_a_crash_is_folded_once_on_restart(db) -> None:
    snapshots = [market(T0 + n * SECONDS_20) for n in range(6)]
    rows_after_5, open_after_5 = fold(db, snapshots[:5], [1, 2, 3, 4, 5])
    rows_after_6, open_after_6 = fold(db, snapshots, [1, 2, 3, 4, 5, 6])
    # The crashed run: snapshot 1 stored, folded and written; snapshots 2 to 4 folded, their candles
    # kept in memory (lost in the crash); snapshot 5 committed by the Store, not folded.
    writer, candles, book = SnapshotWriter(db), CandleStore(db), CandleBook()
    ids = [writer.write(snap, "simulated") for snap in snapshots[:5]]
    for snap, snapshot_id in zip(snapshots[:4], ids, strict=False):
        candles.add(book.apply(snap.ids, snap.quote_ts_ms, snap.column("price")), snapshot_id)
        if snapshot_id == ids[0]:
            candles.flush()
    assert candles.watermark() == ids[0]

    ohlc, container, monitor = start(CandleStore(db))  # on_start: restore, fold snapshots 2 to 5

    assert ohlc.proxy().watermark.get(timeout=WAIT) == ids[4]
    assert sorted(Candle.select().tuples()) == rows_after_5
    assert CandleStore(db).watermark() == ids[4]
    # The Stored message for snapshot 5 still arrives (it was queued when the process stopped).
    ohlc.tell(stored(5, snapshots[4], ids[4]))
    candled = container.next(Candled)
    assert open_rows(candled.open_candles) == open_after_5  # counted once, not twice
    assert {row[8] for row in open_after_5["1m"]} == {2}

    sixth = writer.write(snapshots[5], "simulated")  # and the pipeline carries on as usual
    ohlc.tell(stored(6, snapshots[5], sixth))

    assert open_rows(container.next(Candled).open_candles) == open_after_6
    ohlc.stop()
    assert sorted(Candle.select().tuples()) == rows_after_6
    assert monitor.received() == []


def impatient(database_url: str) -> Database:
    """The database of ``database_url`` bound as uBot's (``models/db.py``), but waiting only 50 ms for
    a lock: a write that the test's :class:`~tests.procs.WriteLock` blocks fails at once, as it would
    after ``busy_timeout`` (SQLite) or a ``lock_timeout`` (PostgreSQL)."""
    path = sqlite_path(database_url)
    if path is not None:
        db: Database = SqliteDatabase(
            path, pragmas={**SQLITE_PRAGMAS, "busy_timeout": 50}, check_same_thread=False
        )
    else:
        parts = urlsplit(database_url)
        query = parse_qs(parts.query)
        query["options"] = [" ".join([*query.get("options", []), "-c lock_timeout=50"])]
        db = connect(urlunsplit(parts._replace(query=urlencode(query, doseq=True))))
    database.initialize(db)
    return db


def test_a_failed_candle_write_is_on_health_and_the_next_one_writes_its_candles(database_url, db) -> None:
    """The batched write of the closed candles fails (the database locked by another writer past its
    lock wait): the tick goes on all the same, /health says degraded and why, and the candles are
    kept; the next tick's write, the lock gone, writes them all and /health is ok again."""
    snapshots = [market(T0 + n * 60_000) for n in range(4)]
    expected_rows, _ = fold(db, snapshots, [1, 2, 3, 4])
    quick = impatient(database_url)
    try:
        container, monitor = Inbox(), Monitor.start("simulated", FakeClock(T0 / 1000))
        ohlc = Ohlc.start(CandleStore(quick, flush_every_ms=0), container.ref, monitor)  # a write every tick
        settled(ohlc)
        writer = SnapshotWriter(quick)
        ids = [writer.write(snap, "simulated") for snap in snapshots]  # before the lock: only OHLC writes

        def health() -> dict:
            monitor.tell(TickDone(fetched(1, snapshots[0]).tick, (), snapshot_ms=T0))  # a tick done: ok
            return monitor.ask(GetHealth(), timeout=WAIT).health(T0 / 1000, None)[1]

        ohlc.tell(stored(1, snapshots[0], ids[0]))
        container.next(Candled)
        settled(ohlc)
        assert (health()["status"], CandleStore(db).watermark()) == ("ok", ids[0])

        lock = WriteLock(database_url, Candle._meta.table_name)
        try:
            ohlc.tell(stored(2, snapshots[1], ids[1]))
            ohlc.tell(stored(3, snapshots[2], ids[2]))
            assert [container.next(Candled).tick.number for _ in range(2)] == [2, 3]  # both handed on
            settled(ohlc)
            doc = health()
        finally:
            lock.release()
        assert doc["status"] == "degraded"
        (problem,) = doc["faults"].values()
        assert list(doc["faults"]) == ["ohlc"] and doc["reason"] == f"ohlc: {problem}"
        assert problem == "writing the closed candles failed (kept for the next write): " + (
            "OperationalError: database is locked"
            if is_sqlite(db)
            else "LockNotAvailable: canceling statement due to lock timeout"
        )
        assert CandleStore(db).watermark() == ids[0]

        ohlc.tell(stored(4, snapshots[3], ids[3]))
        container.next(Candled)
        settled(ohlc)
        doc = health()
        assert doc["status"] == "ok" and "faults" not in doc and "reason" not in doc
        assert CandleStore(db).watermark() == ids[3]
        assert sorted(Candle.select().tuples()) == expected_rows  # nothing lost
    finally:  # the test's database again for the rest of the session, the impatient one closed
        database.initialize(db)
        quick.close()
