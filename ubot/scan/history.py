"""Each coin's recent closes on one timeframe, in memory: the input of the indicators.

A matrix ``coins x depth`` of closed candles (oldest first, ``NaN`` on the left for a short history)
plus the close of each coin's open candle. Strategies evaluate either on the open candle (its close is
the latest price: ``closes(..., closed_only=False)`` ends with it) or on closed candles only
(``once_per_bar_close``). Filled from the database at start (:meth:`load`), then from the candles the
OHLC stage reports closed and open each tick. A candle older than or equal to the coin's last closed one
is ignored, so the start-up load and the first ticks may overlap safely.
"""

from __future__ import annotations

import numpy as np

from ubot.market.candles import CandleRows


class CloseHistory:
    def __init__(self, timeframe: str, depth: int, capacity: int = 256) -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self.timeframe = timeframe
        self.depth = depth
        self.row_of: dict[int, int] = {}
        self.closed = np.full((capacity, depth), np.nan)
        self.last_closed = np.full(capacity, -1, dtype=np.int64)  # open time of the last closed candle
        self.open_close = np.full(capacity, np.nan)
        self._ids = np.empty(0, dtype=np.int64)  # sorted coin ids, and their rows, for rows_for()
        self._rows = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.row_of)

    def _row(self, coin_id: int) -> int:
        row = self.row_of.get(coin_id)
        if row is None:
            row = len(self.row_of)
            if row >= len(self.last_closed):
                self._grow(2 * len(self.last_closed))
            self.row_of[coin_id] = row
            self._ids = np.empty(0, dtype=np.int64)  # rebuilt on next rows_for()
        return row

    def _grow(self, capacity: int) -> None:
        closed = np.full((capacity, self.depth), np.nan)
        closed[: len(self.closed)] = self.closed
        self.closed = closed
        self.last_closed = np.concatenate([self.last_closed, np.full(capacity - len(self.last_closed), -1)])
        self.open_close = np.concatenate([self.open_close, np.full(capacity - len(self.open_close), np.nan)])

    def add_closed(self, candles: CandleRows) -> int:
        """Append closed candles (any order, several per coin allowed); returns how many were new."""
        if len(candles) == 0:
            return 0
        order = np.lexsort((candles.open_time, candles.coin_ids))
        ids, times, closes = candles.coin_ids[order], candles.open_time[order], candles.close[order]
        unique, first = np.unique(ids, return_index=True)
        rows_of = np.fromiter((self._row(c) for c in unique.tolist()), dtype=np.int64, count=len(unique))
        rows = np.repeat(rows_of, np.diff(np.append(first, len(ids))))
        fresh = times > self.last_closed[rows]
        if fresh.all() and (self.last_closed[rows_of] < 0).all():
            return self._fill(rows, times, closes, first)
        added = 0
        # One candle per coin per pass (a catch-up may close several candles of one coin at once).
        while len(rows):
            first = np.ones(len(rows), dtype=bool)
            first[1:] = rows[1:] != rows[:-1]
            take = first & (times > self.last_closed[rows])
            self._shift(rows[take], closes[take], times[take])
            added += int(take.sum())
            rows, times, closes = rows[~first], times[~first], closes[~first]
        return added

    def _fill(self, rows: np.ndarray, times: np.ndarray, closes: np.ndarray, first: np.ndarray) -> int:
        """Coins seen for the first time (the start-up load): place each one's newest ``depth`` closes
        at once, right-aligned, instead of shifting once per candle."""
        counts = np.diff(np.append(first, len(rows)))
        from_end = np.repeat(first + counts, counts) - np.arange(len(rows))  # 1 for each coin's newest
        keep = from_end <= self.depth
        self.closed[rows[keep], self.depth - from_end[keep]] = closes[keep]
        last = first + counts - 1
        self.last_closed[rows[last]] = times[last]
        return int(keep.sum())

    def _shift(self, rows: np.ndarray, closes: np.ndarray, times: np.ndarray) -> None:
        if len(rows) == 0:
            return
        self.closed[rows, :-1] = self.closed[rows, 1:]
        self.closed[rows, -1] = closes
        self.last_closed[rows] = times

    def set_open(self, candles: CandleRows) -> None:
        """The open candle of each coin given (its close is the coin's latest price)."""
        rows = np.fromiter(
            (self._row(c) for c in candles.coin_ids.tolist()), dtype=np.int64, count=len(candles)
        )
        self.open_close[rows] = candles.close

    def rows_for(self, coin_ids: np.ndarray) -> np.ndarray:
        """The row of each coin id, -1 for a coin without history."""
        if len(self._ids) != len(self.row_of):
            ids = np.fromiter(self.row_of.keys(), dtype=np.int64, count=len(self.row_of))
            rows = np.fromiter(self.row_of.values(), dtype=np.int64, count=len(self.row_of))
            order = np.argsort(ids)
            self._ids, self._rows = ids[order], rows[order]
        coin_ids = np.asarray(coin_ids, dtype=np.int64)
        if len(self._ids) == 0:
            return np.full(len(coin_ids), -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._ids, coin_ids), len(self._ids) - 1)
        return np.where(self._ids[at] == coin_ids, self._rows[at], -1)

    def closes(self, rows: np.ndarray, window: int, *, closed_only: bool) -> np.ndarray:
        """``len(rows) x window`` closes, oldest first; row -1 gives all NaN. Ends with the open candle's
        close unless ``closed_only``."""
        window = max(1, min(window, self.depth + (0 if closed_only else 1)))
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        if closed_only:
            out = self.closed[safe, -window:]
        else:
            out = np.empty((len(rows), window))
            out[:, :-1] = self.closed[safe, self.depth - window + 1 :] if window > 1 else out[:, :0]
            out[:, -1] = self.open_close[safe]
        out[~valid] = np.nan
        return out
