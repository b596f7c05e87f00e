"""Persisting candles, and rebuilding the open ones after a restart.

Per snapshot the OHLC stage writes, in one transaction with its watermark (the id of the last
snapshot folded in), the candles that closed, and nothing else: open candles are never written, as
they are implied by rows stored anyway. After a restart the open candle of the finest timeframe is
rebuilt from the stored quotes of its bucket (up to the watermark), and those of the higher
timeframes by merging, level by level, the closed candles of the timeframe below in the open bucket
with that timeframe's own open candle (:func:`ubot.market.candles.merge`, the one folding rule).
Snapshots stored after the watermark (a crash between the Store and OHLC commits) are then folded
in again.
"""

from __future__ import annotations

import numpy as np
from peewee import Database, fn

from ubot.market.candles import TIMEFRAMES, CandleBook, CandleRows, CandleUpdate, merge
from ubot.models.bulk import upsert_columns
from ubot.models.db import writing
from ubot.models.tables import Candle, Meta, Quote, SnapshotRecord

#: A candle row's columns, in the order every read and write of candles uses.
CANDLE_FIELDS = [
    Candle.coin,
    Candle.timeframe,
    Candle.open_time,
    Candle.open,
    Candle.high,
    Candle.low,
    Candle.close,
    Candle.first_ts,
    Candle.last_ts,
    Candle.count,
]
_KEY = [Candle.coin, Candle.timeframe, Candle.open_time]
_VALUES = [Candle.open, Candle.high, Candle.low, Candle.close, Candle.first_ts, Candle.last_ts, Candle.count]
WATERMARK = "ohlc_watermark"
_SELECT = (
    Candle.coin,
    Candle.open_time,
    Candle.open,
    Candle.high,
    Candle.low,
    Candle.close,
    Candle.first_ts,
    Candle.last_ts,
    Candle.count,
)


def _columns(parts: list[CandleRows]) -> list[np.ndarray]:
    """Candles of several timeframes as one set of columns, ordered like ``CANDLE_FIELDS``, the rows
    in key order (coin, timeframe, open time): the key's index is then written one page after the
    next rather than at scattered places."""
    timeframes = np.repeat(np.array([c.timeframe for c in parts]), [len(c) for c in parts])
    names = ("open_time", "open", "high", "low", "close", "first_ts", "last_ts", "count")
    joined = [np.concatenate([getattr(c, name) for c in parts]) for name in names]
    coins = np.concatenate([c.coin_ids for c in parts])
    order = np.lexsort((joined[0], timeframes, coins))
    return [coins[order], timeframes[order], *(column[order] for column in joined)]


class CandleStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    def save(self, book: CandleBook, update: CandleUpdate, snapshot_id: int) -> int:
        """Write the candles ``update`` closed and advance the watermark; return the rows written."""
        parts = [closed for closed in update.closed.values() if len(closed)]
        with writing(self._db):
            if parts:
                upsert_columns(Candle, CANDLE_FIELDS, _columns(parts), conflict_target=_KEY, update=_VALUES)
            Meta.insert(key=WATERMARK, value=str(snapshot_id)).on_conflict(
                conflict_target=[Meta.key], update={Meta.value: str(snapshot_id)}
            ).execute()
        return sum(map(len, parts))

    def watermark(self) -> int:
        row = Meta.get_or_none(Meta.key == WATERMARK)
        return int(row.value) if row else 0

    def restore(self, book: CandleBook) -> None:
        """Load the open candles of every timeframe, as of the watermark, into an empty ``book``."""
        finest = book.finest
        below = self._open_from_quotes(finest, self.watermark())
        book.restore(below)
        for timeframe in book.timeframes[1:]:
            if not len(below):
                break
            below = self._rebuild(timeframe, below)
            book.restore(below)

    def open_candle(self, coin_id: int, timeframe: str) -> CandleRows:
        """One coin's open candle of ``timeframe`` as of the watermark, from the database alone (a
        gateway role, which holds no book): what :meth:`restore` gives that coin, at most one row."""
        names = list(TIMEFRAMES)  # finest first; each level is merged from the one below
        below = self._open_from_quotes(names[0], self.watermark(), coin_id)
        for tf in names[1 : names.index(timeframe) + 1]:
            if not len(below):
                break
            below = self._rebuild(tf, below, coin_id)
        return below

    @staticmethod
    def _open_from_quotes(timeframe: str, watermark: int, coin_id: int | None = None) -> CandleRows:
        """Each coin's open candle of ``timeframe``: its quotes (snapshots up to ``watermark``, with a
        price) in the bucket of its latest one, folded in the order they were stored. None of them
        was late: a quote is late only when older than the bucket of a quote folded before it."""
        length = TIMEFRAMES[timeframe]
        folded = (Quote.snapshot <= watermark) & Quote.price.is_null(False)
        if coin_id is not None:
            folded &= Quote.coin == coin_id
        latest = Quote.select(Quote.coin, fn.MAX(Quote.ts).alias("t")).where(folded).group_by(Quote.coin)
        quotes = (
            Quote.select(Quote.coin, Quote.ts, Quote.price)
            .join(
                latest,
                # The bucket's start: integer division on both databases (peewee's % is GLOB).
                on=((Quote.coin == latest.c.coin_id) & (Quote.ts >= latest.c.t / length * length)),
            )
            .where(folded)
            .order_by(Quote.snapshot, Quote.coin)
            .tuples()
        )
        singles = ((c, t - t % length, p, p, p, p, t, t, 1) for c, t, p in quotes)
        return merge(timeframe, CandleRows.from_rows(timeframe, singles))

    @staticmethod
    def _rebuild(timeframe: str, below: CandleRows, coin_id: int | None = None) -> CandleRows:
        """Open candles of ``timeframe`` = merge of the open candles one level ``below`` and the
        closed candles of that level inside the same bucket."""
        length = TIMEFRAMES[timeframe]
        bucket = {c: t - t % length for c, t in zip(below.coin_ids.tolist(), below.open_time.tolist())}
        current = dict(zip(below.coin_ids.tolist(), below.open_time.tolist(), strict=True))
        where = (Candle.timeframe == below.timeframe) & (Candle.open_time >= min(bucket.values()))
        if coin_id is not None:
            where &= Candle.coin == coin_id
        query = Candle.select(*_SELECT).where(where).tuples()
        closed = [
            row
            for row in query
            if row[0] in bucket and row[1] - row[1] % length == bucket[row[0]] and row[1] < current[row[0]]
        ]
        return merge(timeframe, CandleRows.from_rows(below.timeframe, [*below.rows(), *closed]))

    def snapshots_after(self, snapshot_id: int) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """(id, coin ids, quote timestamps, prices) of every stored snapshot after ``snapshot_id``."""
        ids = [
            row[0]
            for row in SnapshotRecord.select(SnapshotRecord.id)
            .where(SnapshotRecord.id > snapshot_id)
            .order_by(SnapshotRecord.id)
            .tuples()
        ]
        result = []
        for sid in ids:
            quotes = list(
                Quote.select(Quote.coin, Quote.ts, Quote.price).where(Quote.snapshot == sid).tuples()
            )
            coins, stamps, prices = zip(*quotes, strict=True) if quotes else ((), (), ())
            result.append(
                (
                    sid,
                    np.array(coins, dtype=np.int64),
                    np.array(stamps, dtype=np.int64),
                    np.array(prices, dtype=np.float64),
                )
            )
        return result

    def recent_closed(self, timeframe: str, depth: int, before_ms: int) -> CandleRows:
        """Closed candles of ``timeframe`` that opened in the ``depth`` buckets before ``before_ms`` (the
        Scanner's indicator history after a restart). Only (coin, open time, close) are filled in."""
        start = before_ms - depth * TIMEFRAMES[timeframe]
        query = (
            Candle.select(Candle.coin, Candle.open_time, Candle.close)
            .where(
                (Candle.timeframe == timeframe) & (Candle.open_time >= start) & (Candle.open_time < before_ms)
            )
            .order_by(Candle.coin, Candle.open_time)
            .tuples()
        )
        rows = list(query)
        coins, times, closes = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [])
        n = len(coins)
        zeros = np.zeros(n, dtype=np.int64)
        nans = np.full(n, np.nan)
        close = np.array(closes, dtype=np.float64)
        return CandleRows(
            timeframe,
            np.array(coins, dtype=np.int64),
            np.array(times, dtype=np.int64),
            nans,
            nans,
            nans,
            close,
            zeros,
            zeros,
            zeros,
        )
