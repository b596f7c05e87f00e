"""Closed candles packed in blocks, for reading long ranges in bulk (schema version 10).

A dry run reads 30 days of 1m candles of 100 coins: 4.3 million rows, and a database driver costs
about half a microsecond a row however narrow the row (``bench/dryrun.py --end-to-end``). A block is
one row of ``candle_block`` holding one coin's closed candles of one timeframe over a fixed span
(:func:`block_length`: 1,440 candles, at most 30 days; epoch-aligned, so a 1m block is a UTC day),
each column a little-endian array in a BLOB/BYTEA that ``numpy.frombuffer`` reads without a copy
per row. The candle rows stay what they are: blocks are built from them and never the other way.

**Who packs.** :class:`BlockPacker`, a background job (``system.py`` runs its :meth:`BlockPacker.step`
on a ``periodic.py`` beat of its own thread in the engine; ``run.py --backfill`` packs at its end),
never the tick: the tick's write path is untouched, and packing reads rows at its own pace. It packs
a (coin, timeframe) pair's blocks up to the block of the pair's newest stored candle, not that one:

* **Sealed blocks only.** The pipeline writes a coin's candles of a timeframe in open-time order (a
  candle is written when a quote of a later bucket closes it, and a quote older than the coin's
  open candle is late and ignored: ``market/candles.py``), so once a candle of a later block is
  stored, no candle of an earlier block of that coin will be written by a tick: the block is
  complete. A coin that stops trading mid-block leaves its candle open (unwritten) until its next
  quote, however late: its block waits for it. (A writer that buffers closed candles must write
  them in order, a batch in one transaction, for this to hold.)
* **Rows written later into a packed range** come only from ``backfill.fold_unfolded`` (a
  ``--backfill`` of recordings merges into older candles): it calls :func:`invalidate` in its
  transaction, which deletes the blocks it touches and queues them in ``candle_block_stale``; the
  packer packs the queue first. A reader takes the rows of a range with no block.

**Readers** (:class:`BlockReader`): the whole blocks inside the range from ``candle_block``, the rest
(the partial blocks at either end, blocks not packed yet or stale) from the candle rows, one range
read per range and up to 500 coins (the coins of a read mostly share their ranges: blocks are
aligned on the epoch), concatenated by coin in time order: the same candles as reading the rows
alone. The dry run (``models/dryrun.py``) and the Scanner's seeds (``models/closes.py``) read
through it. On PostgreSQL the blocks come through ``COPY ... TO STDOUT`` in the binary format
(a query's BYTEA would come as hex text).
"""

from __future__ import annotations

import io
import itertools
import logging
import struct
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np
from peewee import Database, fn

from ubot.clocks import Clock
from ubot.market.candles import TIMEFRAMES
from ubot.models.candle_store import CANDLE_FIELDS
from ubot.models.db import close_connection, is_sqlite, writing
from ubot.models.tables import Candle, CandleBlock, CandleBlockStale, Coin, SnapshotRecord
from ubot.periodic import Periodic

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
#: Candles a block holds at most, and the longest span of one (1m: a day; 5m: 5 days; 15m: 15 days;
#: 1h, 4h, 1d: 30 days).
BLOCK_CANDLES = 1_440
MAX_BLOCK_MS = 30 * DAY_MS
#: A block's columns and their packed types, in the table's order.
COLUMNS = {
    "close": "<f8",
    "last_ts": "<i8",
    "open_time": "<i8",
    "open": "<f8",
    "high": "<f8",
    "low": "<f8",
    "first_ts": "<i8",
    "count": "<i8",
}
#: Blocks one :meth:`BlockPacker.step` writes at most (about 90 KB each for 1m), and how long after a
#: day's end (of data time) the packer looks for new blocks: by then every coin quoted in the
#: meantime has a candle of the new day stored, so its blocks of the day before are sealed.
STEP_BLOCKS = 64
SETTLE_MS = 3_600_000
#: How often the engine's packer beats (seconds of its clock).
PERIOD_S = 2.0


def block_length(timeframe: str) -> int:
    """The span of a block of ``timeframe`` in ms (a whole number of days)."""
    return min(BLOCK_CANDLES * TIMEFRAMES[timeframe], MAX_BLOCK_MS)


def block_start(ts_ms: int | np.ndarray, timeframe: str) -> int | np.ndarray:
    length = block_length(timeframe)
    return ts_ms - ts_ms % length


def pack(rows: np.ndarray) -> dict[str, bytes]:
    """A block's columns from candle rows ``(open_time, open, high, low, close, first_ts, last_ts,
    count)`` (one float64 matrix, rows in open-time order)."""
    index = {
        "open_time": 0,
        "open": 1,
        "high": 2,
        "low": 3,
        "close": 4,
        "first_ts": 5,
        "last_ts": 6,
        "count": 7,
    }
    return {
        name: np.ascontiguousarray(rows[:, index[name]]).astype(kind).tobytes()
        for name, kind in COLUMNS.items()
    }


def unpack(blob: bytes | memoryview, name: str) -> np.ndarray:
    """A block's column as numbers (no copy: read-only, backed by ``blob``)."""
    return np.frombuffer(blob, dtype=COLUMNS[name])


#: A candle row's columns after its key (coin, timeframe), as packed: open time, open, high, low,
#: close, first and last quote time, count.
_ROW_FIELDS = CANDLE_FIELDS[2:]


def _matrix(cursor: Iterable[tuple], width: int) -> np.ndarray:
    """A query's rows as one float64 matrix, built in C from the driver's tuples (times, counts and
    prices: whole numbers far below 2**53 stay exact)."""
    return np.fromiter(itertools.chain.from_iterable(cursor), dtype=np.float64).reshape(-1, width)


class BlockPacker:
    """Packs sealed blocks from candle rows, a bounded step at a time (see the module's text). Plain
    and single-threaded: the engine calls :meth:`step` from one thread, on its own connection."""

    def __init__(self, db: Database, timeframes: Sequence[str] = tuple(TIMEFRAMES)) -> None:
        self._db = db
        self.timeframes = tuple(timeframes)
        #: Per (coin, timeframe): the first block start not packed yet (known after a first look).
        self._next: dict[tuple[int, str], int] = {}
        self._pairs: deque[tuple[int, str]] = deque()
        self._swept_day: int | None = None
        self.packed = 0  # blocks written since start

    def step(self, limit: int = STEP_BLOCKS) -> int:
        """Pack at most ``limit`` blocks: the stale ones first, then those sealed since the last look;
        return how many were written (0: nothing to do now)."""
        written = self._repack_stale(limit)
        if written:
            return written
        if not self._pairs and not self._start_sweep():
            return 0
        while self._pairs and written < limit:
            coin, timeframe = self._pairs[0]
            done, count = self._pack_pair(coin, timeframe, limit - written)
            written += count
            if done:
                self._pairs.popleft()
        return written

    def pack_all(self) -> int:
        """Pack every sealed block now (``--backfill``'s end; tests): steps until none is left."""
        self._swept_day = None
        self._start_sweep(force=True)
        total = 0
        while True:
            written = self.step()
            total += written
            if not written and not self._pairs:
                return total

    def _start_sweep(self, force: bool = False) -> bool:
        """Queue every (coin, timeframe) pair once a new day of data has settled (``SETTLE_MS``), or
        at once (``force``)."""
        newest = SnapshotRecord.select(fn.MAX(SnapshotRecord.timestamp)).scalar()
        if newest is None and not force:
            return False
        day = None if newest is None else (newest - SETTLE_MS) - (newest - SETTLE_MS) % DAY_MS
        if not force and self._swept_day is not None and day <= self._swept_day:
            return False
        self._swept_day = day
        coins = [c for (c,) in Coin.select(Coin.id).order_by(Coin.id).tuples()]
        self._pairs = deque((c, tf) for c in coins for tf in self.timeframes)
        return bool(self._pairs)

    def _pack_pair(self, coin: int, timeframe: str, limit: int) -> tuple[bool, int]:
        """Pack up to ``limit`` sealed blocks of one pair; (whether it is done, blocks written)."""
        length = block_length(timeframe)
        pair = (Candle.coin == coin) & (Candle.timeframe == timeframe)
        newest = Candle.select(fn.MAX(Candle.open_time)).where(pair).scalar()
        if newest is None:
            return True, 0
        sealed_until = int(block_start(newest, timeframe))  # the newest candle's block is not sealed
        first = self._next.get((coin, timeframe))
        if first is None:
            packed = (
                CandleBlock.select(fn.MAX(CandleBlock.start))
                .where((CandleBlock.coin == coin) & (CandleBlock.timeframe == timeframe))
                .scalar()
            )
            if packed is not None:
                first = packed + length
            else:
                oldest = Candle.select(fn.MIN(Candle.open_time)).where(pair).scalar()
                first = int(block_start(oldest, timeframe))
        end = min(sealed_until, first + limit * length)
        if end <= first:
            self._next[(coin, timeframe)] = first
            return True, 0
        written = self._pack_range(coin, timeframe, first, end)
        self._next[(coin, timeframe)] = end
        return end >= sealed_until, written

    def _pack_range(self, coin: int, timeframe: str, first: int, end: int) -> int:
        """Pack the blocks of one pair in ``[first, end)`` from its rows (none: no block)."""
        query = (
            Candle.select(*_ROW_FIELDS)
            .where(
                (Candle.coin == coin)
                & (Candle.timeframe == timeframe)
                & (Candle.open_time >= first)
                & (Candle.open_time < end)
            )
            .order_by(Candle.open_time)
        )
        sql, params = query.sql()
        rows = _matrix(self._db.execute_sql(sql, params), len(_ROW_FIELDS))
        if not len(rows):
            return 0
        starts = block_start(rows[:, 0].astype(np.int64), timeframe)
        cuts = np.flatnonzero(np.diff(starts)) + 1
        blocks = []
        for part in np.split(np.arange(len(rows)), cuts):
            columns = pack(rows[part])
            blocks.append(
                {
                    "coin": coin,
                    "timeframe": timeframe,
                    "start": int(starts[part[0]]),
                    "candles": len(part),
                    **columns,
                }
            )
        with writing(self._db):
            CandleBlock.insert_many(blocks).on_conflict(
                conflict_target=[CandleBlock.coin, CandleBlock.timeframe, CandleBlock.start],
                preserve=[CandleBlock.candles, *(getattr(CandleBlock, name) for name in COLUMNS)],
            ).execute()
        self.packed += len(blocks)
        return len(blocks)

    def _repack_stale(self, limit: int) -> int:
        """Pack again the blocks :func:`invalidate` queued (those still sealed), and unqueue them."""
        stale = list(
            CandleBlockStale.select(CandleBlockStale.coin, CandleBlockStale.timeframe, CandleBlockStale.start)
            .order_by(CandleBlockStale.coin, CandleBlockStale.timeframe, CandleBlockStale.start)
            .limit(limit)
            .tuples()
        )
        written = 0
        for coin, timeframe, start in stale:
            newest = (
                Candle.select(fn.MAX(Candle.open_time))
                .where((Candle.coin == coin) & (Candle.timeframe == timeframe))
                .scalar()
            )
            end = start + block_length(timeframe)
            if newest is not None and newest >= end:  # sealed: pack it now
                written += self._pack_range(coin, timeframe, start, end)
            # Not sealed (the pair's newest block): the sweeps pack it once it is.
            with writing(self._db):
                CandleBlockStale.delete().where(
                    (CandleBlockStale.coin == coin)
                    & (CandleBlockStale.timeframe == timeframe)
                    & (CandleBlockStale.start == start)
                ).execute()
        return written or len(stale)  # work done, for step()'s caller


def start_packing(db: Database, clock: Clock, period_s: float = PERIOD_S) -> Periodic:
    """The engine's packer: one :meth:`BlockPacker.step` every ``period_s`` of ``clock``, in a thread
    of its own on its own connection (a failed step is logged and tried again at the next beat)."""
    packer = BlockPacker(db)

    def beat() -> None:
        try:
            packer.step()
        except Exception:
            log.exception("candle blocks: a packing step failed; trying again at the next beat")

    return Periodic(clock, period_s, beat, "ubot-candle-blocks", on_exit=close_connection).start()


def invalidate(keys: Iterable[tuple[int, str, int]]) -> int:
    """In the caller's write transaction: candle rows of these ``(coin, timeframe, open time)`` were
    written after their blocks may have been packed (a backfill into older candles). Their blocks
    are deleted (readers take the rows) and queued to be packed again. Returns the blocks queued."""
    blocks = sorted({(coin, tf, int(block_start(t, tf))) for coin, tf, t in keys})
    for begin in range(0, len(blocks), 500):
        part = blocks[begin : begin + 500]
        for coin, timeframe, start in part:
            CandleBlock.delete().where(
                (CandleBlock.coin == coin)
                & (CandleBlock.timeframe == timeframe)
                & (CandleBlock.start == start)
            ).execute()
        CandleBlockStale.insert_many(
            part, fields=[CandleBlockStale.coin, CandleBlockStale.timeframe, CandleBlockStale.start]
        ).on_conflict_ignore().execute()
    return len(blocks)


class BlockReader:
    """Candles of a timeframe over a range, from the blocks where whole ones are packed and from the
    rows for the rest (see the module's text)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def columns(
        self, timeframe: str, ids: Sequence[int], after_ms: int, before_ms: int, fields: Sequence[str]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The candles of ``ids`` opened in ``[after_ms, before_ms)``, by coin (in the order of
        ``ids``) then open time: their coin ids, and each of ``fields`` (names of :data:`COLUMNS`)."""
        length = block_length(timeframe)
        first = -(-after_ms // length) * length  # the first whole block inside the range
        last = before_ms - before_ms % length  # the end of the last one
        blocks: dict[int, list[tuple[int, int, list]]] = {}
        if first < last and len(ids):
            selected = [getattr(CandleBlock, name) for name in fields]
            for begin in range(0, len(ids), 500):
                query = (
                    CandleBlock.select(CandleBlock.coin, CandleBlock.start, CandleBlock.candles, *selected)
                    .where(
                        CandleBlock.coin.in_(list(ids[begin : begin + 500]))
                        & (CandleBlock.timeframe == timeframe)
                        & (CandleBlock.start >= first)
                        & (CandleBlock.start < last)
                    )
                    .order_by(CandleBlock.coin, CandleBlock.start)
                )
                for coin, start, n, *blobs in self._block_rows(query):
                    blocks.setdefault(coin, []).append((start, n, blobs))
        pieces: dict[int, list[tuple[int, int, list | None]]] = {}  # coin -> (lo, hi, blobs or rows)
        wanted: dict[tuple[int, int], list[int]] = {}  # a range of rows -> the coins that need it
        for coin in ids:
            cursor, mine = after_ms, []
            pieces[coin] = mine
            for start, _, blobs in blocks.get(coin, ()):
                if start > cursor:
                    mine.append((cursor, start, None))
                    wanted.setdefault((cursor, start), []).append(coin)
                mine.append((start, start + length, blobs))
                cursor = start + length
            if cursor < before_ms:
                mine.append((cursor, before_ms, None))
                wanted.setdefault((cursor, before_ms), []).append(coin)
        found = self._rows(timeframe, wanted, fields)
        coin_parts: list[np.ndarray] = []
        parts: dict[str, list[np.ndarray]] = {name: [] for name in fields}
        for coin, mine in pieces.items():
            for lo, hi, blobs in mine:
                if blobs is not None:
                    columns = [unpack(blob, name) for blob, name in zip(blobs, fields, strict=True)]
                else:
                    matrix = found.get((coin, lo, hi))
                    if matrix is None:
                        continue
                    columns = [matrix[:, i].astype(COLUMNS[name]) for i, name in enumerate(fields)]
                if len(columns[0]):
                    coin_parts.append(np.full(len(columns[0]), coin, dtype=np.int64))
                    for name, column in zip(fields, columns, strict=True):
                        parts[name].append(column)
        if not coin_parts:
            return np.empty(0, dtype=np.int64), {n: np.empty(0, dtype=COLUMNS[n]) for n in fields}
        out = {name: np.concatenate(parts[name]).astype(COLUMNS[name][1:], copy=False) for name in fields}
        return np.concatenate(coin_parts), out

    def _block_rows(self, query) -> Iterable[tuple]:
        """The rows of a query of ``candle_block`` (coin, start, candles, then blobs). On PostgreSQL
        through ``COPY ... TO STDOUT`` in the binary format: a query's BYTEA comes back as hex text
        otherwise, twice its size to encode, send and decode (3,600 blocks of two columns: 0.9 s
        against 0.2 s; their storage, compressed or not, made no difference: ``bench/dryrun.py
        --end-to-end --db ... --block-storage``)."""
        sql, params = query.sql()
        if is_sqlite(self._db):
            return self._db.execute_sql(sql, params)
        cursor = self._db.cursor()
        body = io.BytesIO()
        cursor.copy_expert(
            f"COPY ({cursor.mogrify(sql, params).decode()}) TO STDOUT WITH (FORMAT binary)", body
        )
        return _binary_copy_rows(body.getbuffer(), 3)

    def _rows(
        self, timeframe: str, wanted: dict[tuple[int, int], list[int]], fields: Sequence[str]
    ) -> dict[tuple[int, int, int], np.ndarray]:
        """The rows of ``fields`` of each range ``[lo, hi)`` for the coins that need it, by (coin, lo,
        hi), each a float64 matrix: one range read of the candle table's keys (its covering index,
        for ``close`` and ``last_ts``) per range and up to 500 coins, whatever the number of coins
        (blocks are aligned on the epoch, so the coins of a read mostly share their ranges)."""
        out: dict[tuple[int, int, int], np.ndarray] = {}
        for (lo, hi), coins in wanted.items():
            for begin in range(0, len(coins), 500):
                query = (
                    Candle.select(Candle.coin, *(getattr(Candle, name) for name in fields))
                    .where(
                        Candle.coin.in_(coins[begin : begin + 500])
                        & (Candle.timeframe == timeframe)
                        & (Candle.open_time >= lo)
                        & (Candle.open_time < hi)
                    )
                    .order_by(Candle.coin, Candle.open_time)
                )
                sql, params = query.sql()
                matrix = _matrix(self._db.execute_sql(sql, params), 1 + len(fields))
                if not len(matrix):
                    continue
                coin_of = matrix[:, 0].astype(np.int64)
                cuts = np.flatnonzero(np.diff(coin_of)) + 1
                for first, part in zip(
                    np.append(0, cuts).tolist(), np.split(matrix[:, 1:], cuts), strict=True
                ):
                    out[(int(coin_of[first]), lo, hi)] = part
        return out


_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_INT = {4: struct.Struct(">i"), 8: struct.Struct(">q")}


def _binary_copy_rows(data: memoryview, numbers: int) -> Iterable[tuple]:
    """The rows of a PostgreSQL binary ``COPY ... TO STDOUT``: each row's first ``numbers`` fields as
    Python ints (int4 or int8, by their length), the others as memoryviews of ``data`` (no copy)."""
    if bytes(data[:11]) != _COPY_SIGNATURE:
        raise ValueError("not a PostgreSQL binary COPY stream")
    at = 19 + struct.unpack_from(">i", data, 15)[0]  # the header, then its extension area
    while True:
        (fields,) = struct.unpack_from(">h", data, at)
        at += 2
        if fields == -1:  # the trailer
            return
        row = []
        for k in range(fields):
            (length,) = struct.unpack_from(">i", data, at)
            at += 4
            if length == -1:
                row.append(None)
                continue
            value = data[at : at + length]
            row.append(_INT[length].unpack(value)[0] if k < numbers else value)
            at += length
        yield tuple(row)
