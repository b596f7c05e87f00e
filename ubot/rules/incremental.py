"""Incremental indicators: per-coin state advanced once per closed candle, read in O(1) per coin.

The windowed functions of :mod:`ubot.rules.indicators` recompute a value from a matrix of closes; here
each indicator keeps the state its recursion needs, one slot per row (coin) of a timeframe, so that

* a closed candle advances every state once (:meth:`Tracker.advance`, vectorised over the rows that
  closed a candle): EMA, Wilder's RSI, MACD and its signal keep their recursive values; SMA and the
  Bollinger bands keep shifted running sums of the newest ``n`` closes (re-summed exactly every ``n``
  candles, so rounding cannot drift); ``highest``/``lowest`` keep the van Herk/Gil-Werman block maxima;
* the value on the closed candles is read from the state (:meth:`Tracker.closed`), and the value
  *including the still-open candle* is one more step computed from the state without storing it
  (:meth:`Tracker.opened`): neither depends on ``n``.

Fed a coin's whole history, candle by candle, the values are those of the windowed functions over that
whole history, which are TA-Lib's (``talib.EMA``, ``RSI``, ``MACD``, ``SMA``, ``BBANDS``, ``MAX``,
``MIN``), with one documented difference: an RSI whose price never moved is 50 (TA-Lib says 0).
A value needs exactly :func:`ubot.rules.indicators.lookback` candles, the open one included.

A coin's whole stored history is not folded in one candle at a time: :meth:`Tracker.seed` sets the
state of coins that have none from their closes at once. The recursive states (EMA, RSI, MACD) run
the same recursions over the whole history in C (:func:`~ubot.rules.indicators.ema_from`, the final
state kept), equal to the candle-by-candle fold to rounding (the fold's ``(x - y) * k + y`` and the
filter's ``k * x + (1 - k) * y`` differ in the last bits); their seed sums are the fold's own
sequential sums. The windowed states (SMA, bands, highest, lowest) depend only on the closes since
the last multiple of ``n`` candles and the ``n`` before: those (under ``2n`` per coin) are folded
one at a time, so they are the fold's bit for bit.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ubot.rules.indicators import MACD_FAST, MACD_SIGNAL, MACD_SLOW, ema_from
from ubot.rules.language import IndicatorCall

#: past(k): the close k candles before the one being folded in, per row (NaN where there is none).
Past = Callable[[int], np.ndarray]


class Closes:
    """Each row's closed candles as the states need them: how many there were (``count``) and the
    newest ``capacity`` closes, in a ring (candle ``i`` of a row at column ``i % capacity``)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(2, capacity)
        self.count = np.zeros(0, dtype=np.int64)
        self.ring = np.full((0, self.capacity), np.nan)

    def grow(self, size: int) -> None:
        extra = size - len(self.count)
        self.count = np.concatenate([self.count, np.zeros(extra, dtype=np.int64)])
        self.ring = np.concatenate([self.ring, np.full((extra, self.capacity), np.nan)])

    def push(self, rows: np.ndarray, closes: np.ndarray) -> None:
        self.ring[rows, self.count[rows] % self.capacity] = closes
        self.count[rows] += 1

    def back(self, rows: np.ndarray, k: int) -> np.ndarray:
        """The close ``k`` candles before the newest (0: the newest); NaN where there is none."""
        count = self.count[rows]
        return np.where(count > k, self.ring[rows, (count - 1 - k) % self.capacity], np.nan)

    def resized(self, capacity: int) -> Closes:
        """The same closes in a ring of ``capacity`` (a larger one holds NaN for closes not kept)."""
        out = Closes(capacity)
        out.count = self.count.copy()
        out.ring = np.full((len(self.count), out.capacity), np.nan)
        rows = np.arange(len(self.count))
        for k in range(min(self.capacity, out.capacity)):
            have = self.count > k
            at = (self.count - 1 - k)[have]
            out.ring[rows[have], at % out.capacity] = self.ring[rows[have], at % self.capacity]
        return out

    def fill(self, rows: np.ndarray, closes: np.ndarray, count: np.ndarray) -> None:
        """Rows that held no close: row ``rows[i]`` has closed ``count[i]`` candles, its closes
        ``closes[i, :count[i]]`` (left-aligned), of which the ring keeps the newest, as :meth:`push`
        one at a time would."""
        self.count[rows] = count
        keep = min(self.capacity, closes.shape[1])
        index = count[:, np.newaxis] - keep + np.arange(keep)  # the newest ``keep`` candles
        have = index >= 0
        which, at = np.nonzero(have)
        self.ring[rows[which], index[have] % self.capacity] = closes[which, index[have]]

    def newest(self, rows: np.ndarray, n: int) -> np.ndarray:
        """``len(rows) x n``: each row's newest ``n`` closes, oldest first (rows with ``n`` of them)."""
        columns = (self.count[rows][:, np.newaxis] - n + np.arange(n)) % self.capacity
        return self.ring[rows[:, np.newaxis], columns]


class State:
    """One indicator's state over every row. Subclasses name their per-row arrays in ``FILL``."""

    FILL: dict[str, float] = {}
    need = 1  # closes the ring must hold

    def __init__(self) -> None:
        self.arrays = {name: np.full(0, fill) for name, fill in self.FILL.items()}

    def grow(self, size: int) -> None:
        for name, fill in self.FILL.items():
            old = self.arrays[name]
            new = np.full((size, *old.shape[1:]), fill)
            new[: len(old)] = old
            self.arrays[name] = new

    def moved(self, to_rows: np.ndarray, from_rows: np.ndarray, size: int) -> State:
        """This state with row ``from_rows[i]`` at ``to_rows[i]`` of ``size`` rows (others fresh)."""
        out = copy.copy(self)
        out.arrays = {}
        for name, fill in self.FILL.items():
            old = self.arrays[name]
            new = np.full((size, *old.shape[1:]), fill)
            new[to_rows] = old[from_rows]
            out.arrays[name] = new
        return out

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {name: array[rows] for name, array in self.arrays.items()}

    def take_over(self, rows: np.ndarray, other: State) -> None:
        """Row ``i`` of ``other`` (a state of ``len(rows)`` rows) becomes row ``rows[i]`` here."""
        self.put(rows, other.arrays)

    def seed(self, rows: np.ndarray, closes: np.ndarray, count: np.ndarray) -> None:
        """Rows that closed no candle yet (:meth:`Tracker.seed`): row ``rows[i]`` closes ``count[i]``
        candles, ``closes[i, :count[i]]``. Here (a windowed state of period ``n``): the state after
        the last multiple of ``n`` candles is a function of the ``n`` closes before it alone (re-summed,
        or a complete block), so only each row's newest ``n + count % n`` candles are folded, one at
        a time: the same state, bit for bit, as folding them all."""
        n = self.n
        tail = np.minimum(count, n + count % n)
        skip = count - tail
        part = self.moved(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), len(rows))
        ring = Closes(self.need)
        ring.grow(len(rows))
        local = np.arange(len(rows))
        for j in range(int(tail.max(initial=0))):
            on = local[tail > j]
            ring.push(on, closes[on, skip[on] + j])
            part.advance(on, ring)
        self.take_over(rows, part)

    def put(self, rows: np.ndarray, values: dict[str, np.ndarray]) -> None:
        for name, value in values.items():
            self.arrays[name][rows] = value

    def step(self, count: np.ndarray, x: np.ndarray, past: Past, s: dict[str, np.ndarray]) -> dict:
        """The state after folding in close ``x``, the ``count``-th candle of each row (pure)."""
        raise NotImplementedError

    def advance(self, rows: np.ndarray, closes: Closes) -> None:
        """Fold in each row's newest close (already pushed into ``closes``)."""
        self.put(
            rows, self.step(closes.count[rows], closes.back(rows, 0), _past(closes, rows, 0), self.take(rows))
        )

    def closed(self, call: IndicatorCall, rows: np.ndarray, closes: Closes) -> np.ndarray:
        return self.read(call, self.take(rows), closes.count[rows])

    def opened(self, call: IndicatorCall, rows: np.ndarray, closes: Closes, price: np.ndarray) -> np.ndarray:
        """The value with the open candle (close ``price``) as the newest candle; the state is unchanged."""
        count = closes.count[rows] + 1
        return self.read(call, self.step(count, price, _past(closes, rows, -1), self.take(rows)), count)

    def read(self, call: IndicatorCall, s: dict[str, np.ndarray], count: np.ndarray) -> np.ndarray:
        """The value of ``call`` from the state ``s`` after ``count`` candles."""
        raise NotImplementedError


def _past(closes: Closes, rows: np.ndarray, shift: int) -> Past:
    """past(k) of the candle being folded in: ``closes.back(k + shift)`` (shift -1: the open candle,
    which is not in the ring)."""
    return lambda k: closes.back(rows, k + shift)


def _ema_step(count: np.ndarray, x: np.ndarray, n: int, value: np.ndarray, total: np.ndarray, start: int = 1):
    """EMA (alpha 2/(n+1)) seeded with the mean of candles ``start .. start + n - 1`` (1-based):
    TA-Lib's ``(x - e) * k + e``. Returns (value, seed total)."""
    total = total + np.where((count >= start) & (count < start + n), x, 0.0)
    k = 2.0 / (n + 1)
    seeded = count == start + n - 1
    stepped = (x - value) * k + value
    return np.where(seeded, total / n, np.where(count >= start + n, stepped, np.nan)), total


def _recursion(
    series: np.ndarray, n: int, alpha: float, count: np.ndarray, start: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """What :func:`_ema_step` computes one element at a time, over every element of each row of
    ``series`` (rows x elements, element ``i`` (1-based) in column ``i - 1``) at once: the value after
    each element (NaN before the seed: the sum of elements ``start .. start + n - 1``, over ``n``;
    then ``alpha`` recursive steps, in C), and each row's seed total after its first ``count``
    elements (summed in order, as the state sums them)."""
    rows, length = series.shape
    first, seed_at = start - 1, start + n - 2  # 0-based columns
    sums = np.cumsum(series[:, first : first + n], axis=1)
    taken = np.clip(count - first, 0, sums.shape[1])  # elements summed so far
    total = np.zeros(rows)
    if sums.shape[1]:
        total = np.where(taken > 0, sums[np.arange(rows), np.maximum(taken - 1, 0)], 0.0)
    out = np.full((rows, length), np.nan)
    if seed_at < length:
        seed = sums[:, n - 1] / n
        out[:, seed_at] = seed
        if seed_at + 1 < length:
            out[:, seed_at + 1 :] = ema_from(seed, series[:, seed_at + 1 :], alpha)
    return out, total


def _after(values: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Each row's value after its first ``count`` elements (column ``count - 1``; NaN for none)."""
    if values.shape[1] == 0:
        return np.full(len(count), np.nan)
    at = np.clip(count - 1, 0, values.shape[1] - 1)
    return np.where(count >= 1, values[np.arange(len(count)), at], np.nan)


class Ema(State):
    FILL = {"value": np.nan, "total": 0.0}

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def step(self, count, x, past, s):
        value, total = _ema_step(count, x, self.n, s["value"], s["total"])
        return {"value": value, "total": total}

    def seed(self, rows, closes, count):
        values, total = _recursion(closes, self.n, 2.0 / (self.n + 1), count)
        self.put(rows, {"value": _after(values, count), "total": total})

    def read(self, call, s, count):
        return s["value"]


class Rsi(State):
    """Wilder's RSI as TA-Lib computes it: averages seeded with the mean of the first ``n`` moves, then
    ``(average * (n - 1) + move) / n``."""

    FILL = {"gain": np.nan, "loss": np.nan, "gains": 0.0, "losses": 0.0}
    need = 2

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def step(self, count, x, past, s):
        n, moves = self.n, count - 1
        delta = np.where(moves >= 1, x - past(1), 0.0)
        up, down = np.maximum(delta, 0.0), np.maximum(-delta, 0.0)
        seeding = moves <= n
        out = {
            "gains": s["gains"] + np.where(seeding, up, 0.0),
            "losses": s["losses"] + np.where(seeding, down, 0.0),
        }
        for name, total, move in (("gain", "gains", up), ("loss", "losses", down)):
            smoothed = (s[name] * (n - 1) + move) / n
            out[name] = np.where(moves == n, out[total] / n, np.where(moves > n, smoothed, np.nan))
        return out

    def seed(self, rows, closes, count):
        moves = np.diff(closes, axis=1)  # move m (1-based) of a row: column m - 1
        out = {}
        for name, total, move in (
            ("gain", "gains", np.maximum(moves, 0.0)),
            ("loss", "losses", np.maximum(-moves, 0.0)),
        ):
            values, out[total] = _recursion(move, self.n, 1.0 / self.n, count - 1)
            out[name] = _after(values, count - 1)
        self.put(rows, out)

    def read(self, call, s, count):
        total = s["gain"] + s["loss"]
        with np.errstate(invalid="ignore", divide="ignore"):
            value = 100.0 * s["gain"] / total
        return np.where(total == 0.0, 50.0, value)


class Macd(State):
    """MACD as TA-Lib computes it: both EMAs start at the slow one's first candle (the fast one from
    the mean of the 12 closes that end there); the signal is the 9-period EMA of the line."""

    FILL = {
        "fast": np.nan,
        "slow": np.nan,
        "signal": np.nan,
        "fast_total": 0.0,
        "slow_total": 0.0,
        "signal_total": 0.0,
    }

    def step(self, count, x, past, s):
        slow, slow_total = _ema_step(count, x, MACD_SLOW, s["slow"], s["slow_total"])
        fast, fast_total = _ema_step(
            count, x, MACD_FAST, s["fast"], s["fast_total"], MACD_SLOW - MACD_FAST + 1
        )
        lines = count - MACD_SLOW + 1  # MACD values so far, this one included
        signal, signal_total = _ema_step(lines, fast - slow, MACD_SIGNAL, s["signal"], s["signal_total"])
        return {
            "fast": fast,
            "slow": slow,
            "signal": signal,
            "fast_total": fast_total,
            "slow_total": slow_total,
            "signal_total": signal_total,
        }

    def seed(self, rows, closes, count):
        slow, slow_total = _recursion(closes, MACD_SLOW, 2.0 / (MACD_SLOW + 1), count)
        fast, fast_total = _recursion(
            closes, MACD_FAST, 2.0 / (MACD_FAST + 1), count, MACD_SLOW - MACD_FAST + 1
        )
        lines = count - MACD_SLOW + 1
        line = (fast - slow)[:, MACD_SLOW - 1 :]  # line i (1-based) is candle MACD_SLOW - 1 + i's
        signal, signal_total = _recursion(line, MACD_SIGNAL, 2.0 / (MACD_SIGNAL + 1), lines)
        self.put(
            rows,
            {
                "fast": _after(fast, count),
                "slow": _after(slow, count),
                "signal": _after(signal, lines),
                "fast_total": fast_total,
                "slow_total": slow_total,
                "signal_total": signal_total,
            },
        )

    def read(self, call, s, count):
        return s["signal"] if call.name == "macd_signal" else s["fast"] - s["slow"]


def _two_sum(total: np.ndarray, error: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``total + value`` compensated (Knuth's TwoSum): the rounding error is carried in ``error``."""
    out = total + value
    virtual = out - total
    return out, error + ((total - (out - virtual)) + (value - virtual))


class Band(State):
    """``sma(n)`` and the Bollinger bands of ``n``: compensated sums of ``x - base`` and its square over
    the newest ``n`` closes, ``base`` a recent close of the row (against cancellation), re-summed
    exactly every ``n`` candles. A window that became flat has a variance of exactly 0."""

    FILL = {"base": np.nan, "sum": 0.0, "sum_error": 0.0, "squares": 0.0, "squares_error": 0.0}

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.need = n + 1

    def step(self, count, x, past, s):
        base = np.where(count == 1, x, s["base"])
        gone = np.where(count > self.n, past(self.n) - base, 0.0)
        delta = x - base
        total, total_error = _two_sum(*_two_sum(s["sum"], s["sum_error"], delta), -gone)
        squares, squares_error = _two_sum(
            *_two_sum(s["squares"], s["squares_error"], delta * delta), -gone * gone
        )
        return {
            "base": base,
            "sum": total,
            "sum_error": total_error,
            "squares": squares,
            "squares_error": squares_error,
        }

    def advance(self, rows, closes):
        super().advance(rows, closes)
        due = rows[(closes.count[rows] % self.n == 0)]
        if len(due):
            base = closes.back(due, 0)
            deviations = closes.newest(due, self.n) - base[:, np.newaxis]
            zeros = np.zeros(len(due))
            total, total_error, squares, squares_error = zeros, zeros, zeros, zeros
            for column in deviations.T:  # compensated too: a flat window then sums to exactly 0
                total, total_error = _two_sum(total, total_error, column)
                squares, squares_error = _two_sum(squares, squares_error, column * column)
            self.put(
                due,
                {
                    "base": base,
                    "sum": total,
                    "sum_error": total_error,
                    "squares": squares,
                    "squares_error": squares_error,
                },
            )

    def read(self, call, s, count):
        n = self.n
        mean = (s["sum"] + s["sum_error"]) / n
        if call.name == "sma":
            value = s["base"] + mean
        else:
            variance = (s["squares"] + s["squares_error"]) / n - mean * mean
            spread = call.args[1] * np.sqrt(np.maximum(variance, 0.0))
            value = s["base"] + mean + (spread if call.name == "bb_upper" else -spread)
        return np.where(count >= n, value, np.nan)


class Extreme(State):
    """``highest(n)`` (sign 1) or ``lowest(n)`` (sign -1) by van Herk/Gil-Werman: the candles are cut
    in blocks of ``n``; a row keeps the running maximum of its current block (``prefix``) and the
    suffix maxima of its last complete block, so any ``n`` or ``n - 1`` newest closes are one max."""

    FILL = {"prefix": -np.inf}

    def __init__(self, n: int, sign: float) -> None:
        super().__init__()
        self.n, self.sign, self.need = n, sign, n
        self.suffix = np.full((0, n), -np.inf)

    def grow(self, size: int) -> None:
        super().grow(size)
        suffix = np.full((size, self.n), -np.inf)
        suffix[: len(self.suffix)] = self.suffix
        self.suffix = suffix

    def moved(self, to_rows, from_rows, size):
        out = super().moved(to_rows, from_rows, size)
        out.suffix = np.full((size, self.n), -np.inf)
        out.suffix[to_rows] = self.suffix[from_rows]
        return out

    def take_over(self, rows, other):
        super().take_over(rows, other)
        self.suffix[rows] = other.suffix

    def advance(self, rows, closes):
        count, y = closes.count[rows], self.sign * closes.back(rows, 0)
        prefix = self.arrays["prefix"]
        prefix[rows] = np.where((count - 1) % self.n == 0, y, np.maximum(prefix[rows], y))
        done = rows[count % self.n == 0]
        if len(done):
            block = self.sign * closes.newest(done, self.n)
            self.suffix[done] = np.maximum.accumulate(block[:, ::-1], axis=1)[:, ::-1]
            prefix[done] = -np.inf

    def _newest(self, rows: np.ndarray, closes: Closes, width: int) -> np.ndarray:
        """Max of each row's newest ``width`` closes (signed; -inf for width 0, NaN without enough)."""
        count = closes.count[rows]
        current = count % self.n  # closes in the current, incomplete block
        before = width - current  # the rest, from the end of the last complete block
        suffix = self.suffix[rows, np.clip(self.n - before, 0, self.n - 1)]
        value = np.where(
            before > 0, np.maximum(self.arrays["prefix"][rows], suffix), self.arrays["prefix"][rows]
        )
        return np.where(count >= width, value, np.nan)

    def closed(self, call, rows, closes):
        return self.sign * self._newest(rows, closes, self.n)

    def opened(self, call, rows, closes, price):
        return self.sign * np.maximum(self.sign * price, self._newest(rows, closes, self.n - 1))


class Change(State):
    """``change(n)``: no state of its own, the ring holds the close ``n`` candles back."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.need = n, n + 1

    def advance(self, rows, closes):
        pass

    def seed(self, rows, closes, count):
        pass  # the ring is the state

    def _change(self, x: np.ndarray, before: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            value = (x / before - 1.0) * 100.0
        return np.where(np.isfinite(value), value, np.nan)

    def closed(self, call, rows, closes):
        return self._change(closes.back(rows, 0), closes.back(rows, self.n))

    def opened(self, call, rows, closes, price):
        return self._change(price, closes.back(rows, self.n - 1))


def state_key(call: IndicatorCall) -> tuple:
    """The state ``call`` reads: ``sma(n)`` and both bands of ``n`` share one, as do MACD and its signal."""
    if call.name in ("macd", "macd_signal"):
        return ("macd",)
    if call.name in ("sma", "bb_upper", "bb_lower"):
        return ("band", call.args[0])
    return (call.name, call.args[0])


def _new_state(key: tuple) -> State:
    name = key[0]
    if name == "macd":
        return Macd()
    n = int(key[1])
    if name in ("highest", "lowest"):
        return Extreme(n, 1.0 if name == "highest" else -1.0)
    return {"band": Band, "ema": Ema, "rsi": Rsi, "change": Change}[name](n)


class Tracker:
    """The states of a set of indicator calls over rows (coins) of one timeframe."""

    def __init__(self, calls: Iterable[IndicatorCall]) -> None:
        self.calls = frozenset(calls)
        self.states: dict[tuple, State] = {}
        for call in self.calls:
            key = state_key(call)
            if key not in self.states:
                self.states[key] = _new_state(key)
        self.closes = Closes(max((s.need for s in self.states.values()), default=2))
        self.rows = 0

    def grow(self, size: int) -> None:
        if size > self.rows:
            self.closes.grow(size)
            for state in self.states.values():
                state.grow(size)
            self.rows = size

    def untracked(self, calls: Iterable[IndicatorCall]) -> frozenset[IndicatorCall]:
        """Track ``calls`` whose state is held already (``bb_upper(20, 3)`` beside ``sma(20)``); returns
        the others: their states must be seeded (:meth:`adopt`)."""
        calls = frozenset(calls) - self.calls
        held = frozenset(call for call in calls if state_key(call) in self.states)
        self.calls |= held
        return calls - held

    def retain(self, calls: Iterable[IndicatorCall]) -> None:
        """Keep only the states that ``calls`` read (the others are no longer used by any strategy)."""
        keep = {state_key(call) for call in calls}
        self.states = {key: state for key, state in self.states.items() if key in keep}
        self.calls = frozenset(call for call in self.calls if state_key(call) in keep)

    def adopt(self, other: Tracker, to_rows: np.ndarray, from_rows: np.ndarray) -> np.ndarray:
        """Take over ``other``'s states that this tracker lacks: ``other`` row ``from_rows[i]`` is row
        ``to_rows[i]`` here (this tracker grown to hold them). ``other`` was fed the same closed
        candles (a seed of new calls from the stored history, then the candles since), so the counts
        and the closes agree; returns the rows here where they do not (their new values are
        ``other``'s, read against this tracker's closes)."""
        agree = self.closes.count[to_rows] == other.closes.count[from_rows]
        for key, state in other.states.items():
            if key not in self.states:
                self.states[key] = state.moved(to_rows, from_rows, self.rows)
        if other.closes.capacity > self.closes.capacity:
            self.closes = self.closes.resized(other.closes.capacity)
            self.closes.ring[to_rows[agree]] = other.closes.ring[from_rows[agree]]
        self.calls |= other.calls
        return to_rows[~agree]

    def advance(self, rows: np.ndarray, closes: np.ndarray) -> None:
        """One closed candle for each of ``rows`` (distinct), with close ``closes``."""
        self.closes.push(rows, closes)
        with np.errstate(all="ignore"):
            for state in self.states.values():
                state.advance(rows, self.closes)

    def seed(self, rows: np.ndarray, closes: np.ndarray, count: np.ndarray) -> None:
        """Whole histories of rows that closed no candle yet: row ``rows[i]`` (distinct) closes
        ``count[i]`` (at least 1) candles, ``closes[i, :count[i]]`` (rows x candles, left-aligned, NaN
        after). The same state as :meth:`advance` with one candle at a time (see the module's text),
        at a cost that does not grow with the candles one at a time."""
        for _ in self.seeding(rows, closes, count):
            pass

    def seeding(self, rows: np.ndarray, closes: np.ndarray, count: np.ndarray) -> Iterator[int]:
        """:meth:`seed` one state at a time, yielding after each (a seed job's steps)."""
        self.closes.fill(rows, closes, count)
        for state in self.states.values():
            with np.errstate(all="ignore"):
                state.seed(rows, closes, count)
            yield 1

    def closed(self, call: IndicatorCall, rows: np.ndarray) -> np.ndarray:
        """``call`` over each row's closed candles."""
        with np.errstate(all="ignore"):
            return self.states[state_key(call)].closed(call, rows, self.closes)

    def opened(self, call: IndicatorCall, rows: np.ndarray, price: np.ndarray) -> np.ndarray:
        """``call`` over each row's closed candles and then its open candle, whose close is ``price``."""
        with np.errstate(all="ignore"):
            return self.states[state_key(call)].opened(call, rows, self.closes, price)
