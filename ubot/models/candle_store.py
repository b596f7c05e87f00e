"""Persisting candles, and rebuilding from the stored quotes the open ones and those not yet written.

The OHLC stage folds each stored snapshot into its book and keeps the candles that closed in memory
(:meth:`CandleStore.add`); every ``FLUSH_EVERY_MS`` of market time, before it hands that tick on
(and when it stops), it writes them all in one transaction with its watermark, the id of the last
snapshot folded in (:meth:`CandleStore.flush`). Before, not after: on SQLite every writer takes the
one write lock, and the Scanner's Notifier and the next tick's Store write right after the hand-on.
Open candles are never written: they are implied by the quotes, which the Store writes anyway. So
the stored candles are exactly those closed by the snapshots up to the watermark; those closed by
later snapshots are *pending*, and nothing is lost in a crash: every candle is a function of the
stored quotes.

:meth:`CandleStore.replay` rebuilds the candles as of the last stored snapshot: the open candle of
the finest timeframe as of the watermark from the stored quotes of its bucket, those of the higher
timeframes by merging, level by level, the closed candles of the timeframe below in the open bucket
with that timeframe's own open candle (:func:`ubot.market.candles.merge`, the one folding rule);
then every snapshot after the watermark folded in again, which closes the pending candles. A restart
starts from it; every reader of closed candles adds its pending ones (:func:`with_pending`, computed
*before* the stored ones are read, so that a flush in between duplicates rows, which it drops,
rather than losing them), and so sees what a write at every close would have stored.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from peewee import SQL, Database, NodeList, fn

from ubot.market.candles import TIMEFRAMES, CandleBook, CandleRows, CandleUpdate, merge
from ubot.models.bulk import upsert_columns
from ubot.models.db import is_sqlite, writing
from ubot.models.tables import Candle, Coin, Meta, Quote, SnapshotRecord

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
#: Market time between two writes of the closed candles (their rows are the same either way; each
#: write is one transaction, on the path of one tick in this many, and a reader replays at most
#: this much).
FLUSH_EVERY_MS = 5 * 60_000
#: How far before the watermark's bucket the open candles are looked for in the stored quotes, in
#: turn, for the coins not found yet (None: anywhere); see ``CandleStore._open_from_quotes``.
LOOKBACK_MS = (0, 3_600_000, 86_400_000, None)
_IN_LIST = 5000  # coins per query
_FEW_COINS = 16  # up to this many, SQLite reads the quotes behind the watermark by coin
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


@dataclass(frozen=True, eq=False)
class Replay:
    """The candles as of the last stored snapshot, rebuilt from the database (:meth:`CandleStore.replay`)."""

    book: CandleBook  # every open candle
    closed: Mapping[str, CandleRows]  # per timeframe, the pending candles: closed after the watermark
    last: int  # the last snapshot folded in (the watermark when none was stored after it)
    behind: int  # snapshots stored after the watermark, folded in again

    def pending(
        self, timeframe: str, after_ms: int | None = None, before_ms: int | None = None
    ) -> CandleRows:
        """The pending candles of ``timeframe`` opened in ``[after_ms, before_ms)`` (None: unbounded)."""
        rows = self.closed[timeframe]
        keep = np.ones(len(rows), dtype=bool)
        if after_ms is not None:
            keep &= rows.open_time >= after_ms
        if before_ms is not None:
            keep &= rows.open_time < before_ms
        return rows.take(keep)


def with_pending(stored: CandleRows, pending: CandleRows) -> CandleRows:
    """``stored`` and the ``pending`` candles not among them, ordered by coin then open time."""
    if not len(pending):
        return stored
    both = CandleRows.concat(stored.timeframe, [stored, pending])
    both = both.take(np.lexsort((both.open_time, both.coin_ids)))  # stable: a stored row comes first
    repeated = (both.coin_ids[1:] == both.coin_ids[:-1]) & (both.open_time[1:] == both.open_time[:-1])
    return both.take(np.concatenate([[True], ~repeated]))


class CandleStore:
    def __init__(self, db: Database, flush_every_ms: int = FLUSH_EVERY_MS) -> None:
        self._db = db
        self.flush_every_ms = flush_every_ms
        self._closed: dict[str, list[CandleRows]] = {}  # closed since the last flush, per timeframe
        self._folded: int | None = None  # the last snapshot folded in since the last flush
        self._since_ms: int | None = None  # market time of the first snapshot folded in since then

    def save(self, book: CandleBook, update: CandleUpdate, snapshot_id: int) -> int:
        """Write the candles ``update`` closed (and any kept by :meth:`add`) and advance the
        watermark now; return the rows written."""
        self.add(update, snapshot_id)
        return self.flush()

    def add(self, update: CandleUpdate, snapshot_id: int, timestamp_ms: int | None = None) -> bool:
        """Keep the candles ``update`` (snapshot ``snapshot_id``, taken at ``timestamp_ms``) closed
        until the next :meth:`flush`; return whether one is due."""
        for timeframe, rows in update.closed.items():
            if len(rows):
                self._closed.setdefault(timeframe, []).append(rows)
        self._folded = snapshot_id
        if timestamp_ms is None:
            return False
        if self._since_ms is None:
            self._since_ms = timestamp_ms
        return timestamp_ms - self._since_ms >= self.flush_every_ms

    def flush(self) -> int:
        """Write the candles kept by :meth:`add` and advance the watermark to the last snapshot
        folded in, in one transaction; return the rows written."""
        if self._folded is None:
            return 0
        parts = [CandleRows.concat(tf, rows) for tf, rows in self._closed.items()]
        with writing(self._db):
            if parts:
                upsert_columns(Candle, CANDLE_FIELDS, _columns(parts), conflict_target=_KEY, update=_VALUES)
            Meta.insert(key=WATERMARK, value=str(self._folded)).on_conflict(
                conflict_target=[Meta.key], update={Meta.value: str(self._folded)}
            ).execute()
        self._closed, self._folded, self._since_ms = {}, None, None
        return sum(map(len, parts))

    def watermark(self) -> int:
        row = Meta.get_or_none(Meta.key == WATERMARK)
        return int(row.value) if row else 0

    def restore(
        self, book: CandleBook, coins: Sequence[int] | None = None, watermark: int | None = None
    ) -> None:
        """Load the open candles of every timeframe (of ``coins``, or of all), as of the watermark,
        into an empty ``book``."""
        below = self._open_from_quotes(
            book.finest, self.watermark() if watermark is None else watermark, coins
        )
        book.restore(below)
        for timeframe in book.timeframes[1:]:
            if not len(below):
                break
            below = self._rebuild(timeframe, below)
            book.restore(below)

    def replay(self, coins: Sequence[int] | None = None) -> Replay:
        """The candles (of ``coins``, or of all) as of the last stored snapshot: the open ones as of
        the watermark, then every stored snapshot after it folded in again."""
        last = self.watermark()
        book = CandleBook()
        self.restore(book, coins, last)
        closed: dict[str, list[CandleRows]] = {tf: [] for tf in book.timeframes}
        behind = self.snapshots_after(last, coins)
        for snapshot_id, ids, stamps, prices in behind:
            last = snapshot_id
            for timeframe, rows in book.apply(ids, stamps, prices).closed.items():
                closed[timeframe].append(rows)
        pending = {tf: CandleRows.concat(tf, rows) for tf, rows in closed.items()}
        return Replay(book, pending, last, len(behind))

    def catch_up(self) -> Replay:
        """Where the last run stopped (the OHLC stage's start): :meth:`replay`, its pending candles
        then written, with the watermark at the last stored snapshot."""
        replay = self.replay()
        if replay.behind:
            self._closed = {tf: [rows] for tf, rows in replay.closed.items()}
            self._folded = replay.last
            self.flush()
        return replay

    def open_candle(self, coin_id: int, timeframe: str) -> CandleRows:
        """One coin's open candle of ``timeframe`` as of the last stored snapshot, from the database
        alone (a gateway role, which holds no book): at most one row."""
        return self.replay([coin_id]).book.open_candles(timeframe)

    @staticmethod
    def _open_from_quotes(timeframe: str, watermark: int, coins: Sequence[int] | None = None) -> CandleRows:
        """Each coin's open candle of ``timeframe``: its quotes (snapshots up to ``watermark``, with a
        price) in the bucket of its latest one, folded in the order they were stored. None of them
        was late: a quote is late only when older than the bucket of a quote folded before it.

        Read by quote time through the (coin, ts) index, never the whole table: first the quotes
        since the watermark's bucket opened (most coins' latest is among them), then, for the coins
        without one, further back (:data:`LOOKBACK_MS`); the last few (gone from the listing for
        over a day) each from the bucket of its own latest quote, found by one index probe. A coin
        that has a quote since a bound has its latest there, and with it every quote of its bucket
        (each bound is a bucket start of ``timeframe``, whatever the look-back)."""
        length = TIMEFRAMES[timeframe]
        last = (
            SnapshotRecord.select(SnapshotRecord.timestamp)
            .where(SnapshotRecord.id <= watermark)
            .order_by(SnapshotRecord.id.desc())
            .limit(1)
            .scalar()
        )
        if last is None:
            return CandleRows.from_rows(timeframe, [])
        wanted = list(coins) if coins is not None else [c for (c,) in Coin.select(Coin.id).tuples()]
        usable = (Quote.snapshot <= watermark) & Quote.price.is_null(False)
        singles = []
        for back in LOOKBACK_MS:
            if back is None:  # the rest, quoted more than a day before: each from its own latest
                bounds = {}
                for c in wanted:  # one index probe each (the coins that left the listing)
                    latest = Quote.select(fn.MAX(Quote.ts)).where(usable & (Quote.coin == c)).scalar()
                    if latest is not None:
                        bounds[c] = latest - latest % length
            else:
                bound = last - back
                bounds = dict.fromkeys(wanted, bound - bound % length)  # a bucket start
            rows = []
            for start, group in _sharing_a_start(bounds):
                where = usable & Quote.coin.in_(group) & (Quote.ts >= start)
                query = Quote.select(Quote.snapshot, Quote.coin, Quote.ts, Quote.price).where(where)
                rows.extend(query.tuples())
            rows.sort()  # in the order they were stored
            opened: dict[int, int] = {}  # coin -> the bucket of its latest quote
            for _, c, t, _ in rows:
                opened[c] = max(opened.get(c, 0), t - t % length)
            singles += [(c, t - t % length, p, p, p, p, t, t, 1) for _, c, t, p in rows if t >= opened[c]]
            wanted = [c for c in wanted if c not in opened]
            if not wanted:
                break
        return merge(timeframe, CandleRows.from_rows(timeframe, singles))

    @staticmethod
    def _rebuild(timeframe: str, below: CandleRows) -> CandleRows:
        """Open candles of ``timeframe`` = merge of the open candles one level ``below`` and the
        closed candles of that level inside the same bucket (read per coin from the bucket's start,
        through the key's index: the coins that share a bucket start in one query)."""
        length = TIMEFRAMES[timeframe]
        current = dict(zip(below.coin_ids.tolist(), below.open_time.tolist(), strict=True))
        bucket = {c: t - t % length for c, t in current.items()}
        closed = []
        for start, group in _sharing_a_start(bucket):
            where = (
                Candle.coin.in_(group) & (Candle.timeframe == below.timeframe) & (Candle.open_time >= start)
            )
            query = Candle.select(*_SELECT).where(where)
            closed += [
                row
                for row in query.order_by(Candle.coin, Candle.open_time).tuples()
                if row[1] - row[1] % length == start and row[1] < current[row[0]]
            ]
        return merge(timeframe, CandleRows.from_rows(below.timeframe, [*below.rows(), *closed]))

    def snapshots_after(
        self, snapshot_id: int, coins: Sequence[int] | None = None
    ) -> list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """(id, coin ids, quote timestamps, prices) of every stored snapshot after ``snapshot_id`` (its
        quotes of ``coins``, or all)."""
        ids = [
            row[0]
            for row in SnapshotRecord.select(SnapshotRecord.id)
            .where(SnapshotRecord.id > snapshot_id)
            .order_by(SnapshotRecord.id)
            .tuples()
        ]
        where = Quote.snapshot > snapshot_id
        if coins is not None and len(coins) > _FEW_COINS and is_sqlite(self._db):
            # "+coin_id": these coins filter the snapshots' quotes, never choose the index. Without
            # statistics SQLite took the coin index, reading every quote ever stored of those coins
            # (a week of 100 coins: 2.9 s for a dry run's few snapshots behind the watermark). A
            # few coins (a chart's one) are read through it: at most the retention's quotes each.
            where &= NodeList((SQL("+"), Quote.coin), glue="").in_(list(coins))
        elif coins is not None:
            where &= Quote.coin.in_(list(coins))
        query = (
            Quote.select(Quote.snapshot, Quote.coin, Quote.ts, Quote.price)
            .where(where)
            .order_by(Quote.snapshot)
        )
        rows = list(query.tuples())
        # Whole numbers far below 2**53 come back exact through float64; a NULL price becomes NaN.
        table = np.array(rows, dtype=np.float64).reshape(len(rows), 4)
        owner = table[:, 0].astype(np.int64)
        result = []
        for sid in ids:
            part = table[np.searchsorted(owner, sid, "left") : np.searchsorted(owner, sid, "right")]
            result.append((sid, part[:, 1].astype(np.int64), part[:, 2].astype(np.int64), part[:, 3].copy()))
        return result


def _sharing_a_start(starts: Mapping[int, int]) -> Iterator[tuple[int, list[int]]]:
    """(start, coins) for each distinct start of ``starts`` (coin -> time its read begins at): the
    coins that share one read in one query, at most :data:`_IN_LIST` of them (SQLite's limit of
    parameters)."""
    sharing: dict[int, list[int]] = {}
    for coin, start in starts.items():
        sharing.setdefault(start, []).append(coin)
    for start, coins in sharing.items():
        for first in range(0, len(coins), _IN_LIST):
            yield start, coins[first : first + _IN_LIST]
