"""Old recordings and a live database: refused by default, added to the history on request.

A replay appends its snapshots to the history as if they were happening now. Recordings older than
the newest stored snapshot would land behind newer history: their candles would be folded into the
current ones, and the scan would fire alerts dated days ago. So a replay whose first recording is
older than the newest stored snapshot (and not stored already: a replay resumed after a stop
starts with recordings the database has) is refused at start-up (:func:`older_than_history`),
unless the operator asks to backfill.

A backfill (:func:`backfill`) stores every recording (duplicates are skipped as always), then
folds every snapshot not yet in the candles into them by merging: each (coin, timeframe, bucket) it
touches becomes the merge of the stored candle and the new quotes, by their own timestamps (open
from the earliest, close from the latest, the extremes, the counts added). Candles are kept when
raw quotes are pruned, so merging is right where recomputing from quotes would not be. The open
candles of the longer timeframes are not stored (they are rebuilt at start-up from the finer ones),
so they are not written here either. The packed blocks of the candles it writes are packed again
(``models/candle_blocks.py: invalidate``). Nothing is scanned: the watermarks of the candles and of the
scan move past the backfilled snapshots, so the next start neither folds nor scans them again.

With the simulated source, ``--backfill DAYS`` makes the history instead (:func:`simulated_history`):
the simulated market's snapshots of the last DAYS, stored and folded into the candles by the
pipeline's own Store and OHLC code, so that a new user sees charts and can dry-run at once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from peewee import Database, fn

from ubot.market.candles import TIMEFRAMES, CandleBook
from ubot.market.recorder import Recorder
from ubot.market.replay import ReplaySource
from ubot.market.snapshot import MarketDataError, Snapshot, parse_listings
from ubot.market.source import MarketSource, SourceError, SourceExhausted
from ubot.models.alerts import SCAN_WATERMARK
from ubot.models.bulk import insert_rows
from ubot.models.candle_blocks import invalidate
from ubot.models.candle_store import CANDLE_FIELDS, WATERMARK, CandleStore
from ubot.models.db import writing
from ubot.models.store import SnapshotWriter
from ubot.models.tables import Candle, Meta, Quote, SnapshotRecord
from ubot.progress import Progress
from ubot.timeutil import iso_from_ms

log = logging.getLogger(__name__)

FINEST = next(iter(TIMEFRAMES))
CHUNK = 500


class ReplayRefused(RuntimeError):
    """This replay cannot go into this database; ``str()`` is the one line saying what to do."""


def recordings(directory: str, convert: str) -> Iterator[Snapshot]:
    """The parsed snapshots of a replay directory, in file order; unreadable ones skipped (logged)."""
    source = ReplaySource(directory)
    while True:
        try:
            raw = source.fetch(0)
            yield parse_listings(raw.listings, convert, raw.global_metrics)
        except SourceExhausted:
            return
        except (SourceError, MarketDataError) as exc:
            log.warning("backfill: skipped: %s", exc)


def older_than_history(db: Database, directory: str, convert: str, shown_url: str) -> str | None:
    """The one line refusing this replay when its first recording is older than the newest stored
    snapshot and not stored already; ``None`` when it may be played."""
    newest = SnapshotRecord.select(fn.MAX(SnapshotRecord.timestamp)).scalar()
    if newest is None:
        return None
    first = next(recordings(directory, convert), None)
    if first is None or first.timestamp_ms >= newest:
        return None
    if SnapshotRecord.select().where(SnapshotRecord.timestamp == first.timestamp_ms).exists():
        return None  # a replay resumed: its stored recordings are skipped as duplicates
    return (
        f"replay of {directory} starts at {iso_from_ms(first.timestamp_ms)}, before the newest snapshot "
        f"of database {shown_url} ({iso_from_ms(newest)}): its snapshots would go behind newer history "
        "and its alerts would be sent as new; use a new database, or --backfill to add the recordings "
        "to the history (candles rebuilt for their range, nothing scanned or sent)"
    )


@dataclass(frozen=True)
class BackfillResult:
    stored: int  # snapshots stored (the others were already there)
    candles: int  # candle rows written


def backfill(db: Database, directory: str, convert: str) -> BackfillResult:
    """Store the recordings of ``directory`` and fold every snapshot not yet in the candles into
    them (see the module's text)."""
    mark_row = Meta.get_or_none(Meta.key == WATERMARK)
    last = SnapshotRecord.select(fn.MAX(SnapshotRecord.id)).scalar() or 0
    if last > (int(mark_row.value) if mark_row else 0):
        raise ReplayRefused(
            "the candles are behind the stored snapshots (uBot stopped before folding them): start uBot "
            "once with its usual source so that it folds them, then backfill"
        )
    writer = SnapshotWriter(db)
    stored = 0
    for snap in recordings(directory, convert):
        if writer.write(snap, "replay") is not None:
            stored += 1
    candles = fold_unfolded(db)
    return BackfillResult(stored, candles)


def fold_unfolded(db: Database) -> int:
    """Merge the quotes of every snapshot after the candle watermark into the candles, by time, and
    move both watermarks to the last snapshot. Returns the candle rows written."""
    mark_row = Meta.get_or_none(Meta.key == WATERMARK)
    mark = int(mark_row.value) if mark_row else 0
    last = SnapshotRecord.select(fn.MAX(SnapshotRecord.id)).scalar() or 0
    if last <= mark:
        return 0
    quotes = list(
        Quote.select(Quote.coin, Quote.ts, Quote.price)
        .where(Quote.snapshot > mark)
        .order_by(Quote.ts, Quote.snapshot)
        .tuples()
    )
    latest = dict(
        Candle.select(Candle.coin, fn.MAX(Candle.last_ts))
        .where(Candle.timeframe == FINEST)
        .group_by(Candle.coin)
        .tuples()
    )
    for coin, ts, _ in quotes:
        if ts > latest.get(coin, ts - 1):
            latest[coin] = ts
    rows: list[tuple] = []
    for timeframe, length in TIMEFRAMES.items():
        new = _candles(quotes, length)
        old = _stored(timeframe, new)
        for (coin, start), candle in new.items():
            if timeframe != FINEST and start == latest[coin] - latest[coin] % length:
                continue  # still open: rebuilt at start-up from the finer candles
            merged = _merge(old[(coin, start)], candle) if (coin, start) in old else candle
            rows.append((coin, timeframe, start, *merged))
    with writing(db):
        for begin in range(0, len(rows), CHUNK):
            insert_rows(
                Candle,
                CANDLE_FIELDS,
                rows[begin : begin + CHUNK],
                conflict_target=[Candle.coin, Candle.timeframe, Candle.open_time],
                update=CANDLE_FIELDS[3:],
            )
        invalidate((coin, timeframe, start) for coin, timeframe, start, *_ in rows)
        for key in (WATERMARK, SCAN_WATERMARK):
            Meta.insert(key=key, value=str(last)).on_conflict(
                conflict_target=[Meta.key], update={Meta.value: str(last)}
            ).execute()
    return len(rows)


#: (open, high, low, close, first_ts, last_ts, count)
Values = tuple[float, float, float, float, int, int, int]


def _candles(quotes: Iterable[tuple[int, int, float]], length: int) -> dict[tuple[int, int], Values]:
    """The candle of each (coin, bucket) of ``quotes`` (in time order)."""
    result: dict[tuple[int, int], Values] = {}
    for coin, ts, price in quotes:
        key = (coin, ts - ts % length)
        seen = result.get(key)
        if seen is None:
            result[key] = (price, price, price, price, ts, ts, 1)
        else:
            o, h, lo, _, first, _, n = seen
            result[key] = (o, max(h, price), min(lo, price), price, first, ts, n + 1)
    return result


def _stored(timeframe: str, wanted: dict[tuple[int, int], Values]) -> dict[tuple[int, int], Values]:
    """The stored candles of ``timeframe`` among the keys of ``wanted``."""
    if not wanted:
        return {}
    starts = [start for _, start in wanted]
    coins = sorted({coin for coin, _ in wanted})
    found: dict[tuple[int, int], Values] = {}
    for begin in range(0, len(coins), CHUNK):
        query = Candle.select(*CANDLE_FIELDS).where(
            (Candle.timeframe == timeframe)
            & Candle.coin.in_(coins[begin : begin + CHUNK])
            & Candle.open_time.between(min(starts), max(starts))
        )
        for coin, _, start, *values in query.tuples():
            if (coin, start) in wanted:
                found[(coin, start)] = tuple(values)  # type: ignore[assignment]
    return found


def _merge(a: Values, b: Values) -> Values:
    """One candle of the quotes of two candles of the same bucket (no quote in both)."""
    opening = a if a[4] <= b[4] else b
    closing = a if a[5] >= b[5] else b
    return (
        opening[0],
        max(a[1], b[1]),
        min(a[2], b[2]),
        closing[3],
        min(a[4], b[4]),
        max(a[5], b[5]),
        a[6] + b[6],
    )


@dataclass(frozen=True)
class SimulatedBackfill:
    stored: int  # snapshots stored
    candles: int  # closed candle rows written
    first_ms: int  # the first and last snapshot's time
    last_ms: int


def simulated_history(
    db: Database,
    source: MarketSource,
    days: float,
    interval_s: float,
    now_ms: int,
    *,
    retention_days: int | None = None,
    progress: Progress | None = None,
    recorder: Recorder | None = None,
    shown_url: str = "the database",
) -> SimulatedBackfill:
    """``run.py --backfill DAYS`` with the simulated source: the ``days`` before ``now_ms`` of the
    simulated market, one snapshot per ``interval_s`` (60 s when 0) at its own timestamps (the
    deadlines the Clock would have fired), through the pipeline's own code: each snapshot stored by
    the Store's :class:`SnapshotWriter`, folded into the candles by the OHLC stage's
    :class:`CandleBook` and saved by its :class:`CandleStore` (watermark included). Nothing is
    scanned: the scan watermark moves past them. Raw quotes older than ``retention_days`` are pruned
    at the end, as the Store does. ``recorder``: each tick's documents are recorded too (``--record``).

    Refused (:class:`ReplayRefused`) when the database holds a snapshot at or after the first one
    this would write, or candles behind its snapshots."""
    times = backfill_times(days, interval_s, now_ms)
    refused = newer_than_backfill(times, shown_url)
    if refused is not None:
        raise ReplayRefused(refused)
    candles = CandleStore(db)
    last = SnapshotRecord.select(fn.MAX(SnapshotRecord.id)).scalar() or 0
    if last > candles.watermark():
        raise ReplayRefused(
            "the candles are behind the stored snapshots (uBot stopped before folding them): start uBot "
            "once so that it folds them, then backfill"
        )
    book = CandleBook()
    candles.restore(book)
    writer = SnapshotWriter(db)
    stored = written = 0
    snapshot_id = None
    for done, at_ms in enumerate(times, start=1):
        snap = source.fetch(at_ms).snapshot
        assert snap is not None  # the simulated source answers in columns
        if recorder is not None:
            documents = source.documents(at_ms)  # type: ignore[attr-defined]
            recorder.write(at_ms, documents.listings, documents.global_metrics)
        snapshot_id = writer.write(snap, source.name)
        if snapshot_id is not None:
            stored += 1
            update = book.apply(snap.ids, snap.quote_ts_ms, snap.column("price"))
            written += candles.save(book, update, snapshot_id)
        if progress is not None:
            progress.update(done, len(times))
    if snapshot_id is not None:
        with writing(db):
            Meta.insert(key=SCAN_WATERMARK, value=str(snapshot_id)).on_conflict(
                conflict_target=[Meta.key], update={Meta.value: str(snapshot_id)}
            ).execute()
    if retention_days:
        writer.prune(times[-1] - retention_days * 86_400_000)
    return SimulatedBackfill(stored, written, times[0], times[-1])


def backfill_times(days: float, interval_s: float, now_ms: int) -> range:
    """The ticks of ``--backfill DAYS``: the Clock's deadlines (``k x interval``, 60 s when 0) over the
    ``days`` up to ``now_ms``."""
    step = int((interval_s or 60) * 1000)
    end = now_ms - now_ms % step
    count = max(1, round(days * 86_400_000 / step))
    return range(end - (count - 1) * step, end + 1, step)


def newer_than_backfill(times: range, shown_url: str) -> str | None:
    """The one line refusing a backfill into a database that holds a snapshot at or after its first
    tick; ``None`` when it may go ahead."""
    newest = SnapshotRecord.select(fn.MAX(SnapshotRecord.timestamp)).scalar()
    if newest is None or newest < times[0]:
        return None
    return (
        f"{shown_url} already holds history up to {iso_from_ms(newest)}, newer than the backfill's "
        f"start ({iso_from_ms(times[0])}): backfill into a new database, or fewer days"
    )
