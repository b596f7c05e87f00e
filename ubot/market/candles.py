"""Candle maths: open/high/low/close per coin and timeframe, updated incrementally, vectorised.

Buckets are aligned on UTC boundaries and chosen by the data's own timestamp (each quote's
``last_updated``). Rules, identical for every timeframe so that a higher timeframe is always the
merge of the lower ones (which is how a restart rebuilds the open candles, see :func:`merge`):

* a quote in a later bucket than the coin's open candle closes that candle and opens a new one
  (gaps stay gaps: no synthetic candles are invented);
* a quote in the open bucket updates high and low; it becomes the open if it is the earliest seen
  in the bucket and the close if it is the latest (a repeated timestamp replaces the close);
* a quote older than the coin's open candle on the finest timeframe is *late*: ignored by every
  timeframe and counted, so that no closed candle is ever rewritten;
* a ``NaN`` price is ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

#: Supported timeframes and their length in milliseconds, finest first. Each divides the next.
TIMEFRAMES: Mapping[str, int] = {
    "1m": 60_000,
    "5m": 300_000,
    "15m": 900_000,
    "1h": 3_600_000,
    "4h": 14_400_000,
    "1d": 86_400_000,
}
NO_CANDLE = -1


def bucket_start(ts_ms: int | np.ndarray, timeframe: str) -> int | np.ndarray:
    """Open time (epoch ms, UTC) of the bucket of ``timeframe`` that contains ``ts_ms``."""
    length = TIMEFRAMES[timeframe]
    return ts_ms - ts_ms % length


@dataclass(frozen=True, eq=False)
class CandleRows:
    """Candles of one timeframe, column-wise: row ``i`` is one candle of coin ``coin_ids[i]``."""

    timeframe: str
    coin_ids: np.ndarray  # int64
    open_time: np.ndarray  # int64 epoch ms
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    first_ts: np.ndarray  # int64: timestamp of the quote that set `open`
    last_ts: np.ndarray  # int64: timestamp of the quote that set `close`
    count: np.ndarray  # int64: quotes folded in

    def __len__(self) -> int:
        return len(self.coin_ids)

    def rows(self) -> Iterable[tuple]:
        """Plain tuples ``(coin_id, open_time, open, high, low, close, first_ts, last_ts, count)``."""
        return zip(
            self.coin_ids.tolist(),
            self.open_time.tolist(),
            self.open.tolist(),
            self.high.tolist(),
            self.low.tolist(),
            self.close.tolist(),
            self.first_ts.tolist(),
            self.last_ts.tolist(),
            self.count.tolist(),
            strict=True,
        )

    @classmethod
    def from_rows(cls, timeframe: str, rows: Iterable[tuple]) -> CandleRows:
        """Inverse of :meth:`rows`."""
        columns = list(zip(*rows, strict=True)) or [()] * 9
        ints = {0, 1, 6, 7, 8}
        arrays = [np.array(col, dtype=np.int64 if i in ints else np.float64) for i, col in enumerate(columns)]
        return cls(timeframe, *arrays)

    @classmethod
    def concat(cls, timeframe: str, parts: Iterable[CandleRows]) -> CandleRows:
        """The rows of ``parts`` (all of ``timeframe``) one after the other."""
        parts = list(parts)
        if not parts:
            return cls.from_rows(timeframe, [])
        return cls(timeframe, *(np.concatenate([getattr(p, name) for p in parts]) for name in _COLUMNS))

    def candle_of(self, coin_id: int) -> tuple[int, float, float, float, float] | None:
        """``(open_time, open, high, low, close)`` of ``coin_id``'s row, or None when it has none.

        A scan of the ids in C (microseconds for thousands of coins): cheaper than building an
        index of every coin each tick for the few candles asked for between ticks."""
        found = np.flatnonzero(self.coin_ids == coin_id)
        if not len(found):
            return None
        i = int(found[0])
        return (
            int(self.open_time[i]),
            float(self.open[i]),
            float(self.high[i]),
            float(self.low[i]),
            float(self.close[i]),
        )

    def take(self, mask: np.ndarray) -> CandleRows:
        return CandleRows(
            self.timeframe,
            *(getattr(self, name)[mask] for name in _COLUMNS),
        )


_COLUMNS = ("coin_ids", "open_time", "open", "high", "low", "close", "first_ts", "last_ts", "count")


@dataclass(frozen=True, eq=False)
class CandleUpdate:
    """What one :meth:`CandleBook.apply` changed."""

    #: Candles that closed during this update, per timeframe (their final values).
    closed: Mapping[str, CandleRows]
    #: The open candle of every coin touched by this update, per timeframe.
    open: Mapping[str, CandleRows]
    late: int  # quotes ignored because older than the coin's open candle


class _Frame:
    """The open candle of every known coin on one timeframe (arrays indexed by book row)."""

    def __init__(self, timeframe: str, capacity: int) -> None:
        self.timeframe = timeframe
        self.length = TIMEFRAMES[timeframe]
        self.open_time = np.full(capacity, NO_CANDLE, dtype=np.int64)
        self.open = np.full(capacity, np.nan)
        self.high = np.full(capacity, np.nan)
        self.low = np.full(capacity, np.nan)
        self.close = np.full(capacity, np.nan)
        self.first_ts = np.zeros(capacity, dtype=np.int64)
        self.last_ts = np.zeros(capacity, dtype=np.int64)
        self.count = np.zeros(capacity, dtype=np.int64)

    _FIELDS = ("open_time", "open", "high", "low", "close", "first_ts", "last_ts", "count")

    def grow(self, capacity: int) -> None:
        for name in self._FIELDS:
            old = getattr(self, name)
            fill = NO_CANDLE if name == "open_time" else (np.nan if old.dtype.kind == "f" else 0)
            new = np.full(capacity, fill, dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def rows(self, coin_ids: np.ndarray, rows: np.ndarray) -> CandleRows:
        return CandleRows(
            self.timeframe,
            coin_ids.copy(),
            *(getattr(self, name)[rows] for name in self._FIELDS),
        )

    def apply(self, rows: np.ndarray, ids: np.ndarray, ts: np.ndarray, price: np.ndarray) -> CandleRows:
        """Fold quotes (already filtered: not late, price not NaN) in; return closed candles."""
        bucket = ts - ts % self.length
        current = self.open_time[rows]
        opening = bucket > current
        closing = opening & (current != NO_CANDLE)
        closed = self.rows(ids[closing], rows[closing])

        r, p, t = rows[opening], price[opening], ts[opening]
        self.open_time[r] = bucket[opening]
        self.open[r] = self.high[r] = self.low[r] = self.close[r] = p
        self.first_ts[r] = self.last_ts[r] = t
        self.count[r] = 1

        same = bucket == current
        r, p, t = rows[same], price[same], ts[same]
        self.high[r] = np.maximum(self.high[r], p)
        self.low[r] = np.minimum(self.low[r], p)
        earlier = t < self.first_ts[r]
        self.open[r[earlier]] = p[earlier]
        self.first_ts[r[earlier]] = t[earlier]
        later = t >= self.last_ts[r]
        self.close[r[later]] = p[later]
        self.last_ts[r[later]] = t[later]
        self.count[r] += 1
        return closed


class CandleBook:
    """The open candle of every coin on every timeframe, updated one snapshot at a time."""

    def __init__(self, timeframes: Iterable[str] = TIMEFRAMES, capacity: int = 256) -> None:
        names = list(timeframes)
        unknown = [name for name in names if name not in TIMEFRAMES]
        if unknown or not names:
            raise ValueError(f"unknown timeframes {unknown}; known: {', '.join(TIMEFRAMES)}")
        names.sort(key=TIMEFRAMES.__getitem__)
        self._index: dict[int, int] = {}
        self._frames = {name: _Frame(name, capacity) for name in names}
        self.finest = names[0]
        #: The last ids looked up and their rows (most snapshots list the same coins in the same order).
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._ids: np.ndarray | None = None  # every coin id in row order, see _all_ids()
        self._order: np.ndarray | None = None  # see _id_order()

    @property
    def timeframes(self) -> tuple[str, ...]:
        return tuple(self._frames)

    def __len__(self) -> int:
        return len(self._index)

    def _rows_for(self, ids: np.ndarray) -> np.ndarray:
        last = self._last
        if last is not None and np.array_equal(last[0], ids):
            return last[1]
        rows = self._lookup(ids)
        rows.flags.writeable = False
        self._last = (ids.copy(), rows)
        return rows

    def _lookup(self, ids: np.ndarray) -> np.ndarray:
        if len(self._index):  # known coins, in another order (ranks moved): a binary search
            known, order = self._all_ids(), self._id_order()
            rows = order[np.searchsorted(known, ids, sorter=order).clip(max=len(known) - 1)]
            if np.array_equal(known[rows], ids):
                return rows
        index = self._index
        get = index.get
        rows = [get(coin_id, -1) for coin_id in ids.tolist()]
        if -1 in rows:
            for position, coin_id in enumerate(ids.tolist()):
                if rows[position] == -1:
                    rows[position] = index.setdefault(coin_id, len(index))
            needed = len(index)
            for frame in self._frames.values():
                if needed > len(frame.open_time):
                    frame.grow(max(needed, 2 * len(frame.open_time)))
        return np.array(rows, dtype=np.int64)

    def apply(self, ids: np.ndarray, ts_ms: np.ndarray, price: np.ndarray) -> CandleUpdate:
        """Fold one quote per coin into every timeframe. ``ids`` must be unique."""
        ids = np.asarray(ids, dtype=np.int64)
        ts_ms = np.asarray(ts_ms, dtype=np.int64)
        price = np.asarray(price, dtype=np.float64)
        rows = self._rows_for(ids)
        finest = self._frames[self.finest]
        late = (ts_ms - ts_ms % finest.length) < finest.open_time[rows]
        keep = ~late & ~np.isnan(price)
        rows, k_ids, k_ts, k_price = rows[keep], ids[keep], ts_ms[keep], price[keep]
        closed = {}
        opened = {}
        for name, frame in self._frames.items():
            closed[name] = frame.apply(rows, k_ids, k_ts, k_price)
            opened[name] = frame.rows(k_ids, rows)
        return CandleUpdate(closed=closed, open=opened, late=int(late.sum()))

    def open_candles(self, timeframe: str, coin_ids: Iterable[int] | None = None) -> CandleRows:
        """The open candles of ``timeframe`` (of the given coins, or of all coins that have one)."""
        frame = self._frames[timeframe]
        if coin_ids is None:
            # Rows are handed out in insertion order (row = len(index) at insertion), so the
            # dict's own order is row order.
            ids = self._all_ids()
            rows = np.arange(len(ids), dtype=np.int64)
        else:
            ids = np.array([c for c in coin_ids if c in self._index], dtype=np.int64)
            rows = np.array([self._index[c] for c in ids.tolist()], dtype=np.int64)
        present = frame.open_time[rows] != NO_CANDLE
        return frame.rows(ids[present], rows[present])

    def _all_ids(self) -> np.ndarray:
        """Every coin id, in row order (kept while no coin is added)."""
        if self._ids is None or len(self._ids) != len(self._index):
            self._ids = np.fromiter(self._index, dtype=np.int64, count=len(self._index))
            self._order = None
        return self._ids

    def _id_order(self) -> np.ndarray:
        """The rows in coin id order (``_all_ids()[_id_order()]`` is sorted), kept like it."""
        if self._order is None:
            self._order = np.argsort(self._all_ids(), kind="stable")
        return self._order

    def restore(self, candles: CandleRows) -> None:
        """Set open candles (after a restart), replacing whatever the book held for those coins."""
        frame = self._frames[candles.timeframe]
        rows = self._rows_for(candles.coin_ids)
        for name in _Frame._FIELDS:
            getattr(frame, name)[rows] = getattr(candles, name)


def merge(timeframe: str, parts: CandleRows) -> CandleRows:
    """Merge candles of a finer timeframe into candles of ``timeframe`` (one per coin and bucket).

    This is how a higher timeframe's open candle is rebuilt after a restart from the closed
    candles of the timeframe below it plus that timeframe's own open candle.
    """
    length = TIMEFRAMES[timeframe]
    groups: dict[tuple[int, int], list] = {}
    for coin_id, open_time, o, h, low, c, first, last, n in parts.rows():
        key = (coin_id, open_time - open_time % length)
        group = groups.get(key)
        if group is None:
            groups[key] = [coin_id, key[1], o, h, low, c, first, last, n]
            continue
        if first < group[6]:
            group[2], group[6] = o, first
        group[3] = max(group[3], h)
        group[4] = min(group[4], low)
        if last >= group[7]:
            group[5], group[7] = c, last
        group[8] += n
    return CandleRows.from_rows(timeframe, sorted(groups.values()))
