"""Indicator values over time: for many ticks at once, the value the live Scanner reads at each.

A dry run (:mod:`ubot.scan.dryrun`) replays a strategy over stored history. At each tick the live
Scanner reads an indicator from its timeframe's state (:mod:`ubot.rules.incremental`): over the coin's
closed candles, or with the still-open candle as the newest one, whose close is the tick's price.
Here the same values are computed for every tick of a range in one vectorised pass per indicator,
not one step per tick:

* ``closes``: each coin's closed candles of the timeframe, one row per coin, oldest first, left-aligned
  (a row shorter than the matrix is NaN-padded on the right; a gap in a coin's candles is simply not
  there, as in the live state);
* a tick is (``row``, ``at``, ``price``): ``at`` closed candles of that row come before it (columns
  ``0 .. at - 1``), and ``price`` is the close of its open candle.

The maths is that of the live state, written over whole series: the recursive indicators (EMA, RSI,
MACD) run :func:`ubot.rules.indicators.seeded_ema` over the closed candles (the reference the live
state is tested against: the recursion in C over time, for all coins at once) and take one step
with the open candle, exactly as
:meth:`~ubot.rules.incremental.State.opened` does; the windowed ones (SMA, Bollinger bands, highest,
lowest, change) are prefix sums and block maxima over time. Values agree with the live state's to
rounding (``tests/rules/test_series.py``: relative 1e-9).
"""

from __future__ import annotations

import functools

import numpy as np

from ubot.rules.indicators import MACD_FAST, MACD_SIGNAL, MACD_SLOW, macd_lines, seeded_ema
from ubot.rules.language import IndicatorCall


class Series:
    """One timeframe's closed candles of some coins, and the ticks to read indicators at."""

    def __init__(self, closes: np.ndarray, rows: np.ndarray, at: np.ndarray, price: np.ndarray) -> None:
        self.closes = np.asarray(closes, dtype=np.float64)  # coins x candles, left-aligned
        self.rows = np.asarray(rows, dtype=np.int64)
        self.at = np.asarray(at, dtype=np.int64)
        self.price = np.asarray(price, dtype=np.float64)
        width = self.closes.shape[1]
        #: Each row's first close: the windowed sums are of deviations from it (against cancellation).
        self.base = np.nan_to_num(self.closes[:, 0]) if width else np.zeros(len(self.closes))
        self._ema: dict[tuple, np.ndarray] = {}
        self._indices: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._parts: dict[bool, tuple[np.ndarray, np.ndarray]] = {}  # MACD and signal at the ticks

    # Per row, prefix sums: column j + 1 holds the sum of columns 0 .. j (a window's sum: two reads).

    @functools.cached_property
    def _deviation(self) -> np.ndarray:
        return np.nan_to_num(self.closes - self.base[:, np.newaxis])

    @functools.cached_property
    def _sums(self) -> np.ndarray:
        return _prefix(self._deviation)

    @functools.cached_property
    def _squares(self) -> np.ndarray:
        return _prefix(self._deviation * self._deviation)

    def value(self, call: IndicatorCall, *, closed_only: bool) -> np.ndarray:
        """``call`` at every tick: over the closed candles before it, or (``closed_only`` False) with
        its open candle, whose close is the tick's price, as the newest one."""
        with np.errstate(all="ignore"):
            out = _FUNCTIONS[call.name](self, *call.args, closed_only=closed_only)
        return np.where(np.isfinite(out), out, np.nan)

    # --- helpers over the ticks ---------------------------------------------------------------

    def _close(self, back: np.ndarray) -> np.ndarray:
        """The close of column ``back`` of each tick's row (NaN where there is none)."""
        ok = (back >= 0) & (back < self.closes.shape[1])
        return np.where(
            ok, self.closes[self.rows, np.clip(back, 0, max(self.closes.shape[1] - 1, 0))], np.nan
        )

    def _head(self, first: int, last: int, table: np.ndarray | None = None) -> np.ndarray:
        """Per row, the sum of its columns ``first .. last - 1`` (of ``table``, rows x candles, or of
        the closes): a seed, read only at the few ticks that seed."""
        return np.nansum((self.closes if table is None else table)[:, first:last], axis=1)

    def _window(self, table: np.ndarray, end: np.ndarray, width: int) -> np.ndarray:
        """Sum of ``table``'s columns ``end - width .. end - 1`` (its prefix sums) of each tick's row
        (read by flat indices: one gather each, faster than a (row, column) pair)."""
        flat, first = table.reshape(-1), self.rows * table.shape[1]
        return flat[first + end] - flat[first + np.maximum(end - width, 0)]

    def _full_ema(self, key: tuple, series: np.ndarray, n: int, alpha: float) -> np.ndarray:
        """The seeded EMA of every row of ``series`` (series x candles) over time, computed once."""
        found = self._ema.get(key)
        if found is None:
            found = self._ema[key] = seeded_ema(series, n, alpha)
        return found

    def _at(self, full: np.ndarray, shift: int) -> np.ndarray:
        """``full`` (rows x candles) at column ``at + shift`` of each tick's row (NaN before the
        first). The ticks go by row then time, so the reads go through memory in order; the read's
        indices are computed once per width and shift (MACD reads three series at the same ones)."""
        candles = full.shape[1]
        if candles == 0:
            return np.full(len(self.at), np.nan)
        index = self._indices.get((candles, shift))
        if index is None:
            column = self.at + shift
            flat = self.rows * candles
            flat += np.clip(column, 0, candles - 1)
            index = self._indices[candles, shift] = (flat, np.flatnonzero(column < 0))
        flat, before = index
        out = np.ascontiguousarray(full).reshape(-1)[flat]
        out[before] = np.nan
        return out


def _prefix(values: np.ndarray) -> np.ndarray:
    out = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


def _sma(s: Series, n: int, *, closed_only: bool) -> np.ndarray:
    return _band(s, n, 0.0, 0.0, closed_only=closed_only)


def _band(s: Series, n: int, k: float, sign: float, *, closed_only: bool) -> np.ndarray:
    at, base = s.at, s.base[s.rows]
    width, extra = (n, 0.0) if closed_only else (n - 1, s.price - base)
    mean = s._window(s._sums, at, width)
    mean += extra
    mean /= n
    value = base + mean
    if k:  # the bands: the spread from the sum of squares too (sma(n) needs none)
        squares = s._window(s._squares, at, width) + extra * extra
        value += sign * k * np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    value[at < (n if closed_only else n - 1)] = np.nan  # fewer candles than n
    return value


def _bb_upper(s: Series, n: int, k: float, *, closed_only: bool) -> np.ndarray:
    return _band(s, n, k, 1.0, closed_only=closed_only)


def _bb_lower(s: Series, n: int, k: float, *, closed_only: bool) -> np.ndarray:
    return _band(s, n, k, -1.0, closed_only=closed_only)


def rolling_max(values: np.ndarray, width: int) -> np.ndarray:
    """Per row, the maximum of each ``width`` consecutive columns ending at column j (-inf before
    ``width`` of them), by van Herk/Gil-Werman block maxima: O(columns) whatever ``width``."""
    rows, columns = values.shape
    if width <= 0:
        return np.full((rows, columns), -np.inf)
    blocks = -(-columns // width)
    padded = np.full((rows, blocks * width), -np.inf)
    padded[:, :columns] = values
    shaped = padded.reshape(rows, blocks, width)
    prefix = np.maximum.accumulate(shaped, axis=2).reshape(rows, -1)
    suffix = np.maximum.accumulate(shaped[:, :, ::-1], axis=2)[:, :, ::-1].reshape(rows, -1)
    out = np.full((rows, columns), -np.inf)
    j = np.arange(width - 1, columns)
    out[:, width - 1 :] = np.maximum(suffix[:, j - width + 1], prefix[:, j])
    return out


def _extreme(s: Series, n: int, sign: float, *, closed_only: bool) -> np.ndarray:
    signed = np.where(np.isnan(s.closes), -np.inf, sign * s.closes)
    width = n if closed_only else n - 1
    table = rolling_max(signed, width)
    column = s.at - 1
    before = np.where(
        width == 0, -np.inf, np.where(column >= 0, table[s.rows, np.maximum(column, 0)], -np.inf)
    )
    if closed_only:
        return np.where(s.at >= n, sign * before, np.nan)
    return np.where(s.at + 1 >= n, sign * np.maximum(before, sign * s.price), np.nan)


def _highest(s: Series, n: int, *, closed_only: bool) -> np.ndarray:
    return _extreme(s, n, 1.0, closed_only=closed_only)


def _lowest(s: Series, n: int, *, closed_only: bool) -> np.ndarray:
    return _extreme(s, n, -1.0, closed_only=closed_only)


def _change(s: Series, n: int, *, closed_only: bool) -> np.ndarray:
    if closed_only:
        latest, before = s._close(s.at - 1), s._close(s.at - 1 - n)
    else:
        latest, before = s.price, s._close(s.at - n)
    return (latest / before - 1.0) * 100.0


def _ema_open(
    value: np.ndarray, x: np.ndarray, n: int, count: np.ndarray, totals: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """One EMA step with ``x`` as the ``count``-th value (1-based) of its series: TA-Lib's step from
    ``value``; at the ``n``-th the seed instead, the mean of the first ``n`` (``totals``: per row,
    the sum of the ``n - 1`` before); NaN before."""
    k = 2.0 / (n + 1)
    out = (x - value) * k + value
    seeding = np.flatnonzero(count == n)
    out[seeding] = (totals[rows[seeding]] + x[seeding]) / n
    out[count < n] = np.nan
    return out


def _ema(s: Series, n: int, *, closed_only: bool) -> np.ndarray:
    full = s._full_ema(("ema", n), s.closes, n, 2.0 / (n + 1))
    previous = s._at(full, -1)
    if closed_only:
        return previous
    return _ema_open(previous, s.price, n, s.at + 1, s._head(0, n - 1), s.rows)


def _moves(s: Series) -> np.ndarray:
    """Each row's gains, then each row's losses, from one closed candle to the next
    (2 rows x candles - 1: the RSI's two averages run as one matrix)."""
    delta = np.diff(s.closes, axis=1)
    rows = len(s.closes)
    moves = np.empty((2 * rows, delta.shape[1]))
    np.maximum(delta, 0.0, out=moves[:rows])
    np.maximum(np.negative(delta, out=delta), 0.0, out=moves[rows:])
    return moves


def _rsi(s: Series, n: int, *, closed_only: bool) -> np.ndarray:
    moves = _moves(s)
    rows = len(s.closes)
    both = s._full_ema(("rsi", n), moves, n, 1.0 / n)
    # After the closed candles: the averages of the moves up to column at - 1 (move index at - 2).
    # (Fresh arrays from here on: the steps below are in place, one pass each over the ticks.)
    g, l_ = s._at(both[:rows], -2), s._at(both[rows:], -2)
    if not closed_only:
        counted = s.at  # with the open candle: at + 1 candles, at moves
        up = s.price - s._close(s.at - 1)
        down = np.negative(up)
        np.maximum(up, 0.0, out=up)
        np.maximum(down, 0.0, out=down)
        # The first n - 1 moves (all the closed ones, when the open candle makes the n-th).
        seed = s._head(0, n - 1, moves)
        seed_g, seed_l = seed[:rows], seed[rows:]
        seeding, early = np.flatnonzero(counted == n), counted < n  # a few ticks per coin at most
        for average, move in ((g, up), (l_, down)):  # (average * (n - 1) + move) / n
            average *= n - 1
            average += move
            average /= n
        g[seeding] = (seed_g[s.rows[seeding]] + up[seeding]) / n
        l_[seeding] = (seed_l[s.rows[seeding]] + down[seeding]) / n
        g[early], l_[early] = np.nan, np.nan
    total = l_
    total += g
    value = np.multiply(g, 100.0, out=g)
    value /= total
    value[total == 0.0] = 50.0
    return value


def _macd_parts(s: Series, *, closed_only: bool) -> tuple[np.ndarray, np.ndarray]:
    """The MACD line and its signal at every tick, computed once for both (``macd() >
    macd_signal()`` reads them both: 0.27 s each over 30 days x 100 coins of 1m)."""
    parts = s._parts.get(closed_only)
    if parts is None:
        parts = s._parts[closed_only] = _macd_ticks(s, closed_only=closed_only)
    return parts


def _macd_ticks(s: Series, *, closed_only: bool) -> tuple[np.ndarray, np.ndarray]:
    key = ("macd",)
    if key not in s._ema:
        fast, slow, signal = macd_lines(s.closes)
        s._ema[key] = fast
        s._ema[("slow",)] = slow
        s._ema[("line",)] = fast - slow
        s._ema[("signal",)] = signal
    fast, slow, line, signal = (s._ema[k] for k in (key, ("slow",), ("line",), ("signal",)))
    if closed_only:
        return s._at(line, -1), s._at(signal, -1)
    count = s.at + 1
    slow_open = _ema_open(s._at(slow, -1), s.price, MACD_SLOW, count, s._head(0, MACD_SLOW - 1), s.rows)
    hidden = MACD_SLOW - MACD_FAST  # the fast EMA starts from the 15th candle
    fast_total = s._head(hidden, MACD_SLOW - 1)
    fast_open = _ema_open(s._at(fast, -1), s.price, MACD_FAST, count - hidden, fast_total, s.rows)
    line_open = fast_open - slow_open
    lines = count - MACD_SLOW + 1  # MACD values so far, this one included
    line_total = s._head(MACD_SLOW - 1, MACD_SLOW + MACD_SIGNAL - 2, line)  # the 8 closed lines
    signal_open = _ema_open(s._at(signal, -1), line_open, MACD_SIGNAL, lines, line_total, s.rows)
    return line_open, signal_open


def _macd(s: Series, *, closed_only: bool) -> np.ndarray:
    return _macd_parts(s, closed_only=closed_only)[0]


def _macd_signal(s: Series, *, closed_only: bool) -> np.ndarray:
    return _macd_parts(s, closed_only=closed_only)[1]


_FUNCTIONS = {
    "sma": _sma,
    "ema": _ema,
    "rsi": _rsi,
    "macd": _macd,
    "macd_signal": _macd_signal,
    "bb_upper": _bb_upper,
    "bb_lower": _bb_lower,
    "highest": _highest,
    "lowest": _lowest,
    "change": _change,
}
