"""Candles survive a restart: no duplicate, no reset, whatever bucket the restart falls in.

A stream of snapshots is folded into a book continuously while saving (the reference run), then
again with restarts: a fresh book, ``CandleStore.restore``, the rest of the stream. The database's
candles and the open candles of the last book must be exactly those of the reference run.
"""

from __future__ import annotations

import numpy as np
import pytest

from ubot.market.candles import TIMEFRAMES, CandleBook
from ubot.models.candle_store import WATERMARK, CandleStore
from ubot.models.closes import closed_candles
from ubot.models.db import is_sqlite
from ubot.models.dryrun import DryRunReader
from ubot.models.history import History
from ubot.models.store import SnapshotWriter
from ubot.models.tables import Candle, GlobalMetric, Meta, Quote, SnapshotRecord
from ubot.scan.dryrun import DryRunSpec
from ubot.timeutil import parse_iso_ms

SECOND = 1000


def at(text: str) -> int:
    """``"03-09 23:54:40"`` -> epoch ms (UTC, 2024)."""
    return parse_iso_ms(f"2024-{text.replace(' ', 'T')}.000Z")


#: (first, last, step seconds) of the snapshot times. Together they cross every timeframe's
#: boundary: 1m everywhere, 5m at 23:55/00:00/00:05, 15m at 00:00/00:15, 1h at 00:00/01:00, 4h at
#: 00:00/04:00 and 1d at 00:00 (the first phase starts the day before), with gaps in between.
PHASES = (
    (at("03-09 23:54:00"), at("03-10 00:06:00"), 20),
    (at("03-10 00:13:20"), at("03-10 00:17:20"), 40),
    (at("03-10 00:58:00"), at("03-10 01:02:00"), 30),
    (at("03-10 03:59:00"), at("03-10 04:01:00"), 30),
)


def stream_items(cmc) -> list[tuple[int, list[dict]]]:
    """(snapshot time, listing items) of the stream. Five coins that each stress one rule."""
    rng = np.random.default_rng(7)
    prices = {1: 60000.0, 2: 3000.0, 3: 1.0, 4: 0.01, 5: 150.0}
    times = [t for first, last, step in PHASES for t in range(first, last + 1, step * SECOND)]
    stale_ts = times[0]
    result = []
    for n, ts in enumerate(times):
        for coin_id in prices:
            prices[coin_id] *= float(np.exp(rng.normal(0, 0.01)))
        if n % 3 == 0:
            stale_ts = ts
        items = [
            cmc.coin(1, prices[1], ts=ts - SECOND),  # quoted just before the boundary
            cmc.coin(2, prices[2], ts=stale_ts),  # the same last_updated three times in a row
        ]
        if n % 4 != 2:
            items.append(cmc.coin(3, prices[3]))  # absent from every fourth snapshot
        if n >= 10:
            items.append(cmc.coin(4, prices[4], ts=ts - 25 * SECOND))  # a coin listed later on
        # Coin 5 sometimes reports an earlier time (may become its bucket's open) or a late one.
        offset = {5: 15, 7: 15, 11: 120, 20: 45, 23: 120}.get(n % 25, 0)
        items.append(cmc.coin(5, prices[5], ts=ts - offset * SECOND))
        result.append((ts, items))
    return result


@pytest.fixture
def stream(db, cmc) -> list[tuple[int, object]]:
    """(snapshot id, snapshot) of the whole stream, stored (the candles' coins must exist)."""
    writer = SnapshotWriter(db)
    result = []
    for ts, items in stream_items(cmc):
        snap = cmc.snapshot(ts, items)
        result.append((writer.write(snap, "replay"), snap))
    return result


def stored_candles() -> list[tuple]:
    return sorted(Candle.select().tuples())


def open_candles(book: CandleBook) -> dict[str, list[tuple]]:
    return {tf: sorted(book.open_candles(tf).rows()) for tf in book.timeframes}


def run(db, stream, restarts=()) -> tuple[list[tuple], dict[str, list[tuple]], int]:
    """Fold ``stream`` saving as the OHLC stage does, restarting before each position in
    ``restarts``. Returns (stored candles, open candles of the last book, late quotes)."""
    Candle.delete().execute()
    Meta.delete().where(Meta.key == WATERMARK).execute()
    candles = CandleStore(db)
    book = CandleBook()
    late = 0
    for position, (snapshot_id, snap) in enumerate(stream):
        if position in restarts:
            book = CandleBook()
            candles.restore(book)
        update = book.apply(snap.ids, snap.quote_ts_ms, snap.column("price"))
        late += update.late
        candles.save(book, update, snapshot_id)
    return stored_candles(), open_candles(book), late


def position_of(stream, text: str) -> int:
    """Index of the first snapshot at or after ``text`` (restarting before it)."""
    ts = at(text)
    return next(i for i, (_, snap) in enumerate(stream) if snap.timestamp_ms >= ts)


#: Restart points, by the time of the first snapshot the new book sees.
CUTS = {
    "middle of a 1m bucket": "03-09 23:54:40",
    "just after a 5m boundary": "03-09 23:55:20",
    "middle of a 5m bucket": "03-09 23:57:40",
    "just after midnight: every bucket has opened once": "03-10 00:00:20",
    "second snapshot of a new day": "03-10 00:00:40",
    "middle of 15m, 1h, 4h and 1d buckets": "03-10 00:03:20",
    "after a gap, before a 15m boundary": "03-10 00:13:20",
    "just after a 15m boundary": "03-10 00:15:20",
    "just before an 1h boundary": "03-10 00:59:30",
    "just after an 1h boundary": "03-10 01:00:30",
    "after a three-hour gap": "03-10 03:59:00",
    "just after a 4h boundary": "03-10 04:00:30",
}


def test_the_stream_exercises_every_rule(db, stream) -> None:
    """Guards the test data itself: every timeframe has closed candles, some quotes are late."""
    stored, opened, late = run(db, stream)

    # Stored: closed candles of every timeframe, plus the open ones of the finest.
    closed = {tf: sum(1 for row in stored if row[1] == tf) for tf in TIMEFRAMES}
    closed["1m"] -= len(opened["1m"])
    assert all(closed[tf] >= 4 for tf in TIMEFRAMES), closed
    assert late > 0
    assert {row[0] for row in opened["1d"]} == {1, 2, 3, 4, 5}
    assert any(row[8] > 1 for row in opened["1d"])


@pytest.mark.parametrize("cut", list(CUTS), ids=list(CUTS))
def test_a_restart_continues_the_candles_exactly(db, stream, cut) -> None:
    reference = run(db, stream)
    position = position_of(stream, CUTS[cut])
    assert 0 < position < len(stream)

    assert run(db, stream, restarts={position}) == reference


def test_a_restart_before_every_snapshot_changes_nothing(db, stream) -> None:
    reference = run(db, stream)

    assert run(db, stream, restarts=set(range(1, len(stream)))) == reference


def test_restore_after_a_restart_gives_the_open_candles_of_every_timeframe(db, stream) -> None:
    """Direct check of restore (not only through the end result): the open candles of the book
    that was running equal those of a book restored from the database at that moment."""
    candles, book = CandleStore(db), CandleBook()
    for snapshot_id, snap in stream[: position_of(stream, "03-10 00:59:30")]:
        candles.save(book, book.apply(snap.ids, snap.quote_ts_ms, snap.column("price")), snapshot_id)
    restored = CandleBook()

    candles.restore(restored)

    assert open_candles(restored) == open_candles(book)
    assert len(restored) == len(book)


def test_restore_into_an_empty_database_leaves_the_book_empty(db) -> None:
    book = CandleBook()
    CandleStore(db).restore(book)
    assert len(book) == 0
    assert CandleStore(db).watermark() == 0


def test_watermark_and_snapshots_after(db, stream) -> None:
    candles, book = CandleStore(db), CandleBook()
    for snapshot_id, snap in stream[:3]:
        candles.save(book, book.apply(snap.ids, snap.quote_ts_ms, snap.column("price")), snapshot_id)
    assert candles.watermark() == stream[2][0]

    behind = candles.snapshots_after(candles.watermark())

    assert [row[0] for row in behind] == [snapshot_id for snapshot_id, _ in stream[3:]]
    for (_, ids, stamps, prices), (_, snap) in zip(behind, stream[3:], strict=True):
        order = np.argsort(ids)
        expected = np.argsort(snap.ids)
        assert ids[order].tolist() == snap.ids[expected].tolist()
        assert stamps[order].tolist() == snap.quote_ts_ms[expected].tolist()
        assert prices[order].tolist() == snap.column("price")[expected].tolist()
    assert candles.snapshots_after(stream[-1][0]) == []


def test_the_snapshots_behind_the_watermark_are_read_by_snapshot_not_by_coin(db, stream, caplog) -> None:
    """A dry run or a gateway asks for a few coins' quotes of the snapshots behind the watermark:
    the same rows as all coins' filtered, read through the snapshot key. A database without
    statistics (SQLite never analyzed) chose the coin index, reading every quote ever stored of
    those coins (a week of 100 coins: 2.9 s a dry run)."""
    candles, book = CandleStore(db), CandleBook()
    for snapshot_id, snap in stream[:3]:
        candles.save(book, book.apply(snap.ids, snap.quote_ts_ms, snap.column("price")), snapshot_id)
    wanted = [1, 3, *range(1000, 1020)]  # more than a few: a dry run's (a chart's one coin is by coin)
    every = candles.snapshots_after(candles.watermark())
    with caplog.at_level("DEBUG", logger="peewee"):
        some = candles.snapshots_after(candles.watermark(), wanted)

    assert [row[0] for row in some] == [row[0] for row in every]
    for (_, ids, stamps, prices), (_, all_ids, all_stamps, all_prices) in zip(some, every, strict=True):
        keep = np.isin(all_ids, wanted)
        assert (ids.tolist(), stamps.tolist(), prices.tolist()) == (
            all_ids[keep].tolist(),
            all_stamps[keep].tolist(),
            all_prices[keep].tolist(),
        )
    if is_sqlite(db):
        sql, params = next(
            r.msg for r in caplog.records if isinstance(r.msg, tuple) and '"quote"' in r.msg[0]
        )
        plan = " ".join(row[-1] for row in db.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "quote_snapshot_id" in plan or "sqlite_autoindex_quote" in plan, plan
        assert "coin_id" not in plan.replace("snapshot_id", ""), plan


@pytest.mark.parametrize("cut", ["03-10 00:03:20", "03-10 00:59:30", "03-10 04:00:30"])
def test_one_coins_open_candle_read_alone_is_the_running_one(db, stream, cut) -> None:
    """A gateway role has no book: it reads one coin's open candle from the database, and gets what
    the running book holds for that coin, on every timeframe, the candles written up to ``cut`` (the
    watermark) and not after it."""
    candles, book = CandleStore(db), CandleBook()
    for position, (snapshot_id, snap) in enumerate(stream):
        candles.add(book.apply(snap.ids, snap.quote_ts_ms, snap.column("price")), snapshot_id)
        if position + 1 == position_of(stream, cut):
            candles.flush()
    assert candles.watermark() < stream[-1][0]
    for coin_id in (1, 5, 999):
        for tf in TIMEFRAMES:
            expected = [row for row in book.open_candles(tf).rows() if row[0] == coin_id]
            assert list(candles.open_candle(coin_id, tf).rows()) == expected, (coin_id, tf)


@pytest.mark.parametrize("timeframes", [tuple(TIMEFRAMES), ("4h", "1d")], ids=["1m..1d", "4h,1d"])
def test_coins_last_quoted_long_before_the_watermark_keep_their_open_candles(db, cmc, timeframes) -> None:
    """The open candles are looked for near the watermark first, then further back (LOOKBACK_MS):
    a coin last quoted minutes, hours or days before it, or quoted with the same old time over and
    over, gets back the open candles that the running book holds, read for all coins or alone.
    Also for a book whose finest timeframe is 4h: a look-back of an hour or a day still starts at a
    bucket of 4h (coin 6, last quoted at 07:31, has quotes since 05:00 in its 04:00 bucket)."""
    phases = (  # (first, last snapshot time, coins listed); 20 s apart
        (at("03-10 10:00:00"), at("03-10 10:02:00"), (1, 2, 3, 4, 5)),
        (at("03-12 05:00:00"), at("03-12 05:01:00"), (1, 2, 3, 5, 6)),  # 4: gone for two days
        (at("03-12 07:30:00"), at("03-12 07:31:00"), (1, 2, 5, 6)),  # 3: for four hours
        (at("03-12 09:00:00"), at("03-12 09:02:00"), (1, 2, 5)),  # 6: for two hours
        (at("03-12 09:30:00"), at("03-12 09:31:00"), (1, 5)),  # 2: for half an hour
    )
    stale = at("03-12 03:00:00")  # coin 5's last_updated from the second phase on: hours old
    writer, candles, book = SnapshotWriter(db), CandleStore(db), CandleBook(timeframes)
    for n, (ts, listed) in enumerate(
        (ts, listed) for first, last, listed in phases for ts in range(first, last + 1, 20 * SECOND)
    ):
        items = [cmc.coin(c, 10.0 * c + n % 7, ts=stale if c == 5 and ts > stale else ts) for c in listed]
        snap = cmc.snapshot(ts, items)
        snapshot_id = writer.write(snap, "replay")
        candles.save(book, book.apply(snap.ids, snap.quote_ts_ms, snap.column("price")), snapshot_id)
    assert book.open_candles(timeframes[0], [5]).count.tolist() == [19]  # the stale time, folded 19 times

    restored = CandleBook(timeframes)
    candles.restore(restored)

    assert open_candles(restored) == open_candles(book)
    if timeframes != tuple(TIMEFRAMES):
        return  # a coin read alone is read with every timeframe (those of the running engine)
    for coin_id in (1, 2, 3, 4, 5, 6):
        for tf in TIMEFRAMES:
            expected = [row for row in book.open_candles(tf).rows() if row[0] == coin_id]
            assert list(candles.open_candle(coin_id, tf).rows()) == expected, (coin_id, tf)


# Candles written in batches: every reader sees what a write at every close would have stored.

FAR = at("03-11 00:00:00")


def reads(db) -> dict:
    """What every reader of candles answers: the Scanner's closed candles, the API's history, a dry
    run's candles, and each coin's open candles read alone."""
    result: dict = {}
    for tf in TIMEFRAMES:
        result["closes", tf] = [
            row
            for part in closed_candles(tf, None, FAR)
            for row in zip(part.coin_ids.tolist(), part.open_time.tolist(), part.close.tolist(), strict=True)
        ]
    history = History(db)
    for coin_id in (1, 5):
        for tf in ("1m", "5m", "1h"):
            result["history", coin_id, tf] = history.candles(coin_id, tf, None, None, 10_000)
        result["history 3 latest", coin_id] = history.candles(coin_id, "1m", at("03-09 23:56:00"), None, 3)
        book = CandleStore(db).replay([coin_id]).book
        result["open", coin_id] = {tf: list(book.open_candles(tf).rows()) for tf in TIMEFRAMES}
    spec = DryRunSpec("price > 0", "5m", "once", 0, at("03-09 23:56:00"), FAR, symbols=("C1", "C3", "C5"))
    stored = DryRunReader(db).read(spec)
    result["dry run"] = [
        (part.coin_ids.tolist(), part.open_time.tolist(), part.close.tolist(), part.last_ts.tolist())
        for part in (stored.minutes, stored.warmup)
    ]
    result["dry run span"] = stored.stored
    return result


def batched_run(db, cmc, flush_every_ms: int, crashes=(), checks=()) -> tuple[list[dict], list[tuple]]:
    """Store the stream snapshot by snapshot and fold each in as the OHLC stage does, its candles
    written every ``flush_every_ms`` of market time (0: at every snapshot, as before batches). Before
    folding each snapshot at a position in ``crashes``, the process dies: the candles kept in memory
    are lost, and a new run catches up. Returns the reads after each position in ``checks``, and
    every candle stored in the end."""
    for model in (Quote, GlobalMetric, SnapshotRecord, Candle):
        model.delete().execute()
    Meta.delete().where(Meta.key == WATERMARK).execute()
    writer = SnapshotWriter(db)
    candles, book = CandleStore(db, flush_every_ms), CandleBook()
    seen = []
    for position, (ts, items) in enumerate(stream_items(cmc)):
        snap = cmc.snapshot(ts, items)
        snapshot_id = writer.write(snap, "replay")
        if position in crashes:  # stored, not folded: the restart folds it in
            candles = CandleStore(db, flush_every_ms)
            book = candles.catch_up().book
        else:
            update = book.apply(snap.ids, snap.quote_ts_ms, snap.column("price"))
            if candles.add(update, snapshot_id, snap.timestamp_ms):
                candles.flush()
        if position in checks:
            seen.append(reads(db))
    candles.flush()  # the OHLC stage's stop
    return seen, stored_candles()


@pytest.mark.parametrize(
    ("flush_every_ms", "crashes"),
    [
        (2 * 60_000, ()),
        (7 * 60_000, ()),
        (2 * 60_000, ("middle of a 5m bucket", "second snapshot of a new day", "just after an 1h boundary")),
        (10**9, ("just after a 15m boundary", "just after a 4h boundary")),  # nothing written but at restarts
    ],
    ids=["every 2 min", "every 7 min", "every 2 min, crashes", "only at restarts"],
)
def test_candles_written_in_batches_read_the_same_everywhere(db, cmc, flush_every_ms, crashes) -> None:
    """Every reader answers the same after every checked snapshot, across each batch's boundary and
    across crashes, as when every closed candle is written at once; and in the end the same rows
    are stored."""
    times = [ts for ts, _ in stream_items(cmc)]
    cuts = {next(i for i, ts in enumerate(times) if ts >= at(CUTS[name])) for name in crashes}
    checks = set(range(0, len(times), 4)) | cuts | {c - 1 for c in cuts} | {len(times) - 1}
    reference, stored = batched_run(db, cmc, 0, checks=checks)

    batched, batched_stored = batched_run(db, cmc, flush_every_ms, cuts, checks)

    assert len(batched) == len(reference) == len(checks)
    for position, got, expected in zip(sorted(checks), batched, reference, strict=True):
        assert got == expected, position
    assert batched_stored == stored
    assert reference[-1]["closes", "1d"]  # the stream closes candles of every timeframe
    assert reference[-1]["dry run"][0][0]
