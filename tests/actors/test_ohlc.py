"""OHLC actor: folds stored snapshots into candles once each, also across a crash and restart."""

from __future__ import annotations

from tests.support.actors import Inbox
from tests.support.market import T0, fetched, market
from ubot.actors.ohlc import Ohlc
from ubot.market.candles import CandleBook
from ubot.messages import Candled, Stored, TickDone
from ubot.models.candle_store import WATERMARK, CandleStore
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


def test_each_stored_snapshot_is_folded_saved_and_passed_on(db) -> None:
    snapshots = [market(T0 + n * SECONDS_20) for n in range(3)]
    expected_rows, expected_open = fold(db, snapshots, [1, 2, 3])  # ids only set the watermark
    writer = SnapshotWriter(db)
    ohlc, container, monitor = start(CandleStore(db))

    for number, snap in enumerate(snapshots, start=1):
        snapshot_id = writer.write(snap, "simulated")  # as the Store does, then tells OHLC
        ohlc.tell(stored(number, snap, snapshot_id))
        candled = container.next(Candled)
        assert candled.snapshot_id == snapshot_id
        assert [stage for stage, _ in candled.stages] == ["fetch", "ohlc"]
        assert CandleStore(db).watermark() == snapshot_id

    assert open_rows(candled.open_candles) == expected_open
    assert sorted(Candle.select().tuples()) == expected_rows
    assert {row[8] for row in expected_open["1m"]} == {3}  # three quotes in each 1m candle
    assert monitor.received() == []


def test_a_snapshot_stored_but_not_folded_before_a_crash_is_folded_once_on_restart(db) -> None:
    snapshots = [market(T0 + n * SECONDS_20) for n in range(3)]
    rows_after_2, open_after_2 = fold(db, snapshots[:2], [1, 2])
    rows_after_3, open_after_3 = fold(db, snapshots, [1, 2, 3])
    # The crashed run: snapshot 1 stored, folded and saved; snapshot 2 committed by the Store,
    # but the process died before OHLC saved it (the watermark is behind).
    writer, candles, book = SnapshotWriter(db), CandleStore(db), CandleBook()
    first, second = (writer.write(snap, "simulated") for snap in snapshots[:2])
    candles.save(
        book, book.apply(snapshots[0].ids, snapshots[0].quote_ts_ms, snapshots[0].column("price")), first
    )
    assert candles.watermark() == first

    ohlc, container, monitor = start(CandleStore(db))  # on_start: restore, fold snapshot 2

    assert ohlc.proxy().watermark.get(timeout=WAIT) == second
    assert sorted(Candle.select().tuples()) == rows_after_2
    # The Stored message for snapshot 2 still arrives (it was queued when the process stopped).
    ohlc.tell(stored(2, snapshots[1], second))
    candled = container.next(Candled)
    assert open_rows(candled.open_candles) == open_after_2  # counted once, not twice
    assert {row[8] for row in open_after_2["1m"]} == {2}
    assert sorted(Candle.select().tuples()) == rows_after_2
    assert CandleStore(db).watermark() == second

    third = writer.write(snapshots[2], "simulated")  # and the pipeline carries on as usual
    ohlc.tell(stored(3, snapshots[2], third))

    assert open_rows(container.next(Candled).open_candles) == open_after_3
    assert sorted(Candle.select().tuples()) == rows_after_3
    assert monitor.received() == []


def test_a_failing_save_skips_the_tick_and_ohlc_goes_on(db) -> None:
    class FailingOnce(CandleStore):
        failed = False

        def save(self, book, update, snapshot_id):
            if not self.failed:
                self.failed = True
                raise RuntimeError("disk I/O error")
            return super().save(book, update, snapshot_id)

    snapshots = [market(T0 + n * SECONDS_20) for n in range(2)]
    writer = SnapshotWriter(db)
    ohlc, container, monitor = start(FailingOnce(db))

    ohlc.tell(stored(1, snapshots[0], writer.write(snapshots[0], "simulated")))
    done = monitor.next(TickDone)
    assert (done.tick.number, done.outcome) == (1, "skipped")
    assert done.reason == "ohlc failed: RuntimeError: disk I/O error"

    second = writer.write(snapshots[1], "simulated")
    ohlc.tell(stored(2, snapshots[1], second))
    assert container.next(Candled).tick.number == 2
    assert CandleStore(db).watermark() == second
