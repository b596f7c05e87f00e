"""Each coin's indicators on one timeframe, in memory: the state the frame's indicator values come from.

One :class:`~ubot.rules.incremental.Tracker` per timeframe holds, per coin (row), the state of every
indicator call the strategies use on that timeframe, plus the close of each coin's open candle.
A closed candle advances the states once; a frame reads each value on the closed candles, or with
the open candle as the newest one (its close is the latest price), in O(1) per coin either way.

Seeded from the coin's whole stored history (:meth:`add_closed` with every stored closed candle: a
seed job reads them, blocks and rows, for the calls not tracked yet, ``scan/seeding.py``; a coin
without state takes its whole history at once, :meth:`~ubot.rules.incremental.Tracker.seed`, and
:meth:`adopt` hands the states to the live history), then advanced by the candles the OHLC stage reports closed each tick, so a value is the one
over the coin's whole history, whatever its length. A candle older than or equal to the coin's last
closed one is ignored, so the start-up load and the first ticks may overlap safely. A missing candle
(a gap) is simply not there: the coin's next candle follows its previous one.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator

import numpy as np

from ubot.market.candles import CandleRows
from ubot.rules import IndicatorCall
from ubot.rules.incremental import Tracker

#: A catch-up of coins that have state already is folded in column by column over a coins x candles
#: matrix of at most this many cells, so its memory stays bounded whatever the history's length; the
#: start-up load's chunks are joined up to this many candles (:meth:`IndicatorHistory.add_history`).
FOLD_CELLS = 1_000_000
#: Coins without state are seeded (:meth:`~ubot.rules.incremental.Tracker.seed`) from coins x candles
#: matrices of at most this many cells (each recursion keeps a few matrices of this size at once).
#: Seeding one state over such a matrix takes 2-17 ms on the development machine (``sma(20)``,
#: ``rsi(14)``): counted as one unit of work a cell, as the fold counts one per candle and state.
SEED_CELLS = 250_000


class IndicatorHistory:
    def __init__(self, timeframe: str, calls: Iterable[IndicatorCall], capacity: int = 256) -> None:
        self.timeframe = timeframe
        self.tracker = Tracker(calls)
        self.row_of: dict[int, int] = {}
        self.last_closed = np.full(0, -1, dtype=np.int64)  # open time of the last closed candle
        self.open_close = np.full(0, np.nan)
        self._ids = np.empty(0, dtype=np.int64)  # sorted coin ids, and their rows, for rows_for()
        self._rows = np.empty(0, dtype=np.int64)
        self._grow(capacity)

    @property
    def calls(self) -> frozenset[IndicatorCall]:
        return self.tracker.calls

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
        extra = capacity - len(self.last_closed)
        self.last_closed = np.concatenate([self.last_closed, np.full(extra, -1, dtype=np.int64)])
        self.open_close = np.concatenate([self.open_close, np.full(extra, np.nan)])
        self.tracker.grow(capacity)

    def add_closed(self, candles: CandleRows) -> int:
        """Fold in closed candles (any order, several per coin allowed: a start-up load is every stored
        candle); returns how many were new."""
        steps = self.folding(candles)
        while True:
            try:
                next(steps)
            except StopIteration as end:
                return end.value

    def folding(self, candles: CandleRows) -> Generator[int, None, int]:
        """:meth:`add_closed` one candle column at a time: yields the work of each step (states x
        coins advanced), returns how many candles were new. A seed (``scan/seeding.py``) runs it a
        bounded number of steps at a time."""
        if len(candles) == 0:
            return 0
        ids, times, closes = candles.coin_ids, candles.open_time, candles.close
        if not _in_order(ids, times):  # a load reads them in order already
            order = np.lexsort((times, ids))
            ids, times, closes = ids[order], times[order], closes[order]
        first = np.flatnonzero(np.append(True, ids[1:] != ids[:-1]))
        unique = ids[first]
        rows_of = np.fromiter((self._row(c) for c in unique.tolist()), dtype=np.int64, count=len(unique))
        rows = np.repeat(rows_of, np.diff(np.append(first, len(ids))))
        fresh = times > self.last_closed[rows]
        fresh[1:] &= (rows[1:] != rows[:-1]) | (times[1:] != times[:-1])  # a repeated candle once
        if not fresh.all():
            rows, times, closes = rows[fresh], times[fresh], closes[fresh]
        if len(rows) == 0:
            return 0
        starts = np.flatnonzero(np.append(True, rows[1:] != rows[:-1]))
        counts = np.diff(np.append(starts, len(rows)))
        if counts.max() == 1:  # a tick: at most one candle per coin
            self.tracker.advance(rows, closes)
            yield len(rows) * len(self.tracker.states)
        else:
            new = self.tracker.closes.count[rows[starts]] == 0  # coins without any state yet
            if new.any():
                yield from self._seed(rows, closes, starts[new], counts[new])
            if not new.all():
                yield from self._fold(rows, closes, starts[~new], counts[~new])
        self.last_closed[rows[starts + counts - 1]] = times[starts + counts - 1]
        return len(rows)

    def add_history(self, chunks: Iterable[CandleRows], cells: int = FOLD_CELLS) -> int:
        """:meth:`add_closed` over a start-up load given in chunks of whole coins: the chunks are
        joined up to about :data:`FOLD_CELLS` candles, so that each fold advances as many coins at a
        time as memory allows (a fold's cost is one step per candle of its longest coin, whatever
        the number of coins in it). Returns how many candles were new. ``cells``: the join's size."""
        added, pending, size = 0, [], 0
        for chunk in chunks:
            pending.append(chunk)
            size += len(chunk)
            if size >= cells:
                added += self.add_closed(joined(pending))
                pending, size = [], 0
        if pending:
            added += self.add_closed(joined(pending))
        return added

    def _seed(
        self, rows: np.ndarray, closes: np.ndarray, starts: np.ndarray, counts: np.ndarray
    ) -> Iterator[int]:
        """Whole histories of coins without any state: coins x candles matrices of at most about
        :data:`SEED_CELLS` (each coin's candles left-aligned), each state seeded over a whole
        matrix at once (:meth:`~ubot.rules.incremental.Tracker.seeding`); yields after each."""
        for group, matrix in _matrices(closes, starts, counts, SEED_CELLS):
            for _ in self.tracker.seeding(rows[starts[group]], matrix, counts[group]):
                yield matrix.size  # one state seeded

    def _fold(
        self, rows: np.ndarray, closes: np.ndarray, starts: np.ndarray, counts: np.ndarray
    ) -> Iterator[int]:
        """Several candles per coin: coins x candles matrices (each coin's candles left-aligned, the
        longest histories first), advanced one column at a time over the coins that have it."""
        states = max(1, len(self.tracker.states))
        for group, matrix in _matrices(closes, starts, counts, FOLD_CELLS):
            longest, lengths = matrix.shape[1], counts[group]
            group_rows = rows[starts[group]]
            active = np.searchsorted(-lengths, -np.arange(longest), side="left")  # coins with column j
            for j in range(longest):
                self.tracker.advance(group_rows[: active[j]], matrix[: active[j], j])
                yield states * int(active[j])

    def adopt(self, other: IndicatorHistory) -> int:
        """Take over the states of ``other``, a history of new calls seeded from the stored candles and
        then fed the same candles as this one since (``scan/seeding.py``): only the new series were
        seeded, the others are not touched. Returns how many coins' candle counts disagreed (logged
        by the caller; their new values are ``other``'s)."""
        coins = list(other.row_of)
        theirs = np.fromiter((other.row_of[c] for c in coins), dtype=np.int64, count=len(coins))
        mine = np.fromiter((self._row(c) for c in coins), dtype=np.int64, count=len(coins))
        differ = self.tracker.adopt(other.tracker, mine, theirs)
        alone = np.setdiff1d(np.arange(len(self.row_of)), mine)  # coins the seed never saw
        return len(differ) + int((self.tracker.closes.count[alone] > 0).sum())

    def retain(self, calls: Iterable[IndicatorCall]) -> None:
        """Drop the states no strategy reads any more (``calls``: those still used)."""
        self.tracker.retain(calls)

    def untracked(self, calls: Iterable[IndicatorCall]) -> frozenset[IndicatorCall]:
        """The calls of ``calls`` whose states are not held (the others are tracked from now on)."""
        return self.tracker.untracked(calls)

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

    def value(self, call: IndicatorCall, rows: np.ndarray, *, closed_only: bool) -> np.ndarray:
        """``call`` for each of ``rows`` (-1: NaN), on the closed candles, or with the open candle as
        the newest one unless ``closed_only``."""
        valid = rows >= 0
        safe = np.where(valid, rows, 0)
        if closed_only:
            out = self.tracker.closed(call, safe)
        else:
            out = self.tracker.opened(call, safe, self.open_close[safe])
        return np.where(valid, out, np.nan)


def _in_order(ids: np.ndarray, times: np.ndarray) -> bool:
    """Whether candles are by coin, then open time."""
    same = ids[1:] == ids[:-1]
    return bool(np.all((ids[1:] > ids[:-1]) | (same & (times[1:] >= times[:-1]))))


def _matrices(
    closes: np.ndarray, starts: np.ndarray, counts: np.ndarray, cells: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Coins x candles matrices of at most about ``cells`` (more for one coin longer than that), the
    longest histories first: (which of ``starts``/``counts``, the matrix: coin ``i``'s candles
    ``closes[starts[i] : starts[i] + counts[i]]`` left-aligned, NaN after; read only)."""
    by_length = np.argsort(-counts, kind="stable")
    done = 0
    while done < len(by_length):
        longest = int(counts[by_length[done]])
        group = by_length[done : done + max(1, cells // longest)]
        done += len(group)
        lengths, begin = counts[group], starts[group]
        if (lengths == longest).all() and (begin == begin[0] + longest * np.arange(len(group))).all():
            yield group, closes[begin[0] : begin[0] + longest * len(group)].reshape(len(group), longest)
            continue  # coins of one length one after another: the matrix is a view of ``closes``
        matrix = np.full((len(group), longest), np.nan)
        mask = np.arange(longest) < lengths[:, np.newaxis]
        matrix[mask] = closes[np.concatenate([np.arange(s, s + c) for s, c in zip(begin, lengths)])]
        yield group, matrix


def joined(parts: list[CandleRows]) -> CandleRows:
    """Candles of one timeframe, several sets as one (only the columns the indicators read)."""
    if len(parts) == 1:
        return parts[0]
    ids = np.concatenate([p.coin_ids for p in parts])
    times = np.concatenate([p.open_time for p in parts])
    close = np.concatenate([p.close for p in parts])
    zeros = np.zeros(len(ids), dtype=np.int64)
    return CandleRows(parts[0].timeframe, ids, times, close, close, close, close, zeros, zeros, zeros)
