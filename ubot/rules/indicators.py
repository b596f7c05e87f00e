"""Indicator maths over many coins at once: the latest value of each indicator, per coin.

Every function takes ``closes``, a 2-D float array (coins x candles, oldest candle first). A coin with
a short history is padded with ``NaN`` on the left, so column ``-1`` is always the latest close of
every coin. Each function returns a 1-D float64 array (one value per coin) that is ``NaN`` where the
coin has too little history (:func:`lookback` candles) or a ``NaN`` inside the window used.

* ``sma(n)``: mean of the last ``n`` closes.
* ``ema(n)``: exponential moving average, ``alpha = 2 / (n + 1)``, seeded with the SMA of the coin's
  first ``n`` closes, then recursive over the rest of the history given.
* ``rsi(n)``: Wilder's RSI: average gain and loss seeded with the mean of the first ``n`` changes,
  then smoothed with ``alpha = 1 / n``; ``100 * gain / (gain + loss)``, 50 when prices did not move.
* ``macd()``: ``ema(12) - ema(26)`` as TA-Lib computes it: both EMAs start at the 26th candle, the fast
  one from the mean of the 12 closes that end there; ``macd_signal()``: the 9-period EMA of that line
  (seeded the same way).
* ``bb_upper(n, k)`` / ``bb_lower(n, k)``: ``sma(n) +/- k`` population standard deviations (ddof 0).
* ``highest(n)`` / ``lowest(n)``: the largest / smallest of the last ``n`` closes.
* ``change(n)``: percent change from the close ``n`` candles ago to the latest one.

EMA, RSI and MACD are recursive: their value depends (less and less) on every close since the seed, so
two callers agree only if they pass the same history. :func:`lookback` is the *minimum* for a value.
Given a coin's whole history these equal TA-Lib's values. The Scanner does not recompute them per tick:
it keeps each indicator's state and advances it once per closed candle (:mod:`ubot.rules.incremental`),
with the same values; these windowed functions are the reference it is tested against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9


def _closes(closes: np.ndarray) -> np.ndarray:
    array = np.asarray(closes, dtype=np.float64)
    if array.ndim == 1:
        array = array[np.newaxis, :]
    if array.ndim != 2:
        raise ValueError(f"closes must be a 2-D array (coins x candles), got {array.ndim} dimensions")
    return array


def _window(closes: np.ndarray, n: int) -> np.ndarray | None:
    """The last ``n`` closes of every coin, or None when fewer candles than that were given."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return closes[:, -n:] if closes.shape[1] >= n else None


def _nans(coins: int) -> np.ndarray:
    return np.full(coins, np.nan)


def lfilter() -> Callable[..., np.ndarray]:
    """``scipy.signal.lfilter``, imported at the first EMA rather than with this module:
    ``scipy.signal`` brings ``scipy.stats`` along, 0.8 s of the 1.2 s of CPU a ``run.py`` start
    took, which a ``run.py check``, a refused setting or a process that evaluates no EMA, RSI or
    MACD need not pay. A gateway imports it once it serves, off the request path
    (``scan/dryrun.py: warm_up``), so that the first dry run does not pay it either."""
    from scipy.signal import lfilter

    return lfilter


def seeded_ema(values: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """EMA of each row of ``values`` (series x time, oldest first), seeded with the mean of the
    row's first ``n`` values after its NaN padding, then ``y = alpha * x + (1 - alpha) * y_prev``.

    Returns the whole history (series x time, NaN before each row's seed). The recursion runs in C
    (``scipy.signal.lfilter``, the seed as its initial condition), one call per seed position (one
    in all when every row starts together). A NaN after the seed makes the rest of that row NaN
    (a gap is not skipped). The live state (:mod:`ubot.rules.incremental`) is tested against it,
    and the dry run (:mod:`ubot.rules.series`) reads it at every tick.
    """
    values = np.asarray(values, dtype=np.float64)
    rows, length = values.shape
    if rows == 0 or length < n:
        return np.full((rows, length), np.nan)
    valid = ~np.isnan(values)
    seed_at = np.where(valid.any(axis=1), valid.argmax(axis=1), length) + n - 1
    together = seed_at.min() == seed_at.max()  # the common case: one call, only the head to fill
    out = np.empty((rows, length)) if together else np.full((rows, length), np.nan)
    out[:, : min(int(seed_at[0]), length)] = np.nan
    for at in np.unique(seed_at[seed_at < length]).tolist():
        group = slice(None) if together else np.flatnonzero(seed_at == at)
        seed = values[group, at - n + 1 : at + 1].mean(axis=1)
        out[group, at] = seed
        if at + 1 < length:
            out[group, at + 1 :] = ema_from(seed, values[group, at + 1 :], alpha)
    return out


def ema_from(start: np.ndarray, values: np.ndarray, alpha: float) -> np.ndarray:
    """``y = alpha * x + (1 - alpha) * y_prev`` over each row of ``values`` (series x time), from
    ``y_prev = start`` (one per row): every step's value, the recursion in C (``scipy.signal.lfilter``,
    ``start`` its initial condition). :func:`seeded_ema` and the live state's seeding
    (:meth:`ubot.rules.incremental.Tracker.seed`) both run it."""
    zi = (np.asarray(start, dtype=np.float64) * (1.0 - alpha))[:, np.newaxis]  # the start's share of step 1
    return lfilter()([alpha], [1.0, alpha - 1.0], values, zi=zi)[0]


def sma(closes: np.ndarray, n: int) -> np.ndarray:
    closes = _closes(closes)
    window = _window(closes, n)
    return _nans(closes.shape[0]) if window is None else window.mean(axis=1)


def ema(closes: np.ndarray, n: int) -> np.ndarray:
    closes = _closes(closes)
    if closes.shape[1] < n:
        return _nans(closes.shape[0])
    return seeded_ema(closes, n, 2.0 / (n + 1))[:, -1]


def rsi(closes: np.ndarray, n: int) -> np.ndarray:
    closes = _closes(closes)
    coins = closes.shape[0]
    if closes.shape[1] < n + 1:
        return _nans(coins)
    delta = np.diff(closes, axis=1)
    moves = np.vstack([np.maximum(delta, 0.0), np.maximum(-delta, 0.0)])  # gains, losses; NaN stays
    both = seeded_ema(moves, n, 1.0 / n)[:, -1]  # one pass for both
    gain, loss = both[:coins], both[coins:]
    total = gain + loss
    with np.errstate(invalid="ignore", divide="ignore"):
        value = 100.0 * gain / total
    return np.where(total == 0.0, 50.0, value)


def macd_lines(closes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fast and the slow EMA and the signal over time (:func:`seeded_ema`), as TA-Lib's MACD:
    both EMAs start at each row's 26th value, the fast one seeded from values 15..26 only (the first
    14 are hidden from it); the signal is the 9-period EMA of ``fast - slow``."""
    valid = ~np.isnan(closes)
    first = np.where(valid.any(axis=1), valid.argmax(axis=1), closes.shape[1])
    hidden = np.arange(closes.shape[1]) < (first + (MACD_SLOW - MACD_FAST))[:, np.newaxis]
    fast = seeded_ema(np.where(hidden, np.nan, closes), MACD_FAST, 2.0 / (MACD_FAST + 1))
    slow = seeded_ema(closes, MACD_SLOW, 2.0 / (MACD_SLOW + 1))
    return fast, slow, seeded_ema(fast - slow, MACD_SIGNAL, 2.0 / (MACD_SIGNAL + 1))


def macd(closes: np.ndarray) -> np.ndarray:
    closes = _closes(closes)
    if closes.shape[1] < MACD_SLOW:
        return _nans(closes.shape[0])
    fast, slow, _ = macd_lines(closes)
    return fast[:, -1] - slow[:, -1]


def macd_signal(closes: np.ndarray) -> np.ndarray:
    closes = _closes(closes)
    if closes.shape[1] < MACD_SLOW + MACD_SIGNAL - 1:
        return _nans(closes.shape[0])
    return macd_lines(closes)[2][:, -1]


def _band(closes: np.ndarray, n: int, k: float, sign: float) -> np.ndarray:
    closes = _closes(closes)
    window = _window(closes, n)
    if window is None:
        return _nans(closes.shape[0])
    return window.mean(axis=1) + sign * k * window.std(axis=1)


def bb_upper(closes: np.ndarray, n: int, k: float) -> np.ndarray:
    return _band(closes, n, k, 1.0)


def bb_lower(closes: np.ndarray, n: int, k: float) -> np.ndarray:
    return _band(closes, n, k, -1.0)


def highest(closes: np.ndarray, n: int) -> np.ndarray:
    closes = _closes(closes)
    window = _window(closes, n)
    return _nans(closes.shape[0]) if window is None else window.max(axis=1)  # NaN propagates


def lowest(closes: np.ndarray, n: int) -> np.ndarray:
    closes = _closes(closes)
    window = _window(closes, n)
    return _nans(closes.shape[0]) if window is None else window.min(axis=1)


def change(closes: np.ndarray, n: int) -> np.ndarray:
    closes = _closes(closes)
    window = _window(closes, n + 1)
    if window is None:
        return _nans(closes.shape[0])
    before, latest = window[:, 0], window[:, -1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        value = (latest / before - 1.0) * 100.0
    return np.where(np.isfinite(value), value, np.nan)


#: name -> function(closes, *args); the names are the condition language's indicator names.
FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "sma": sma,
    "ema": ema,
    "rsi": rsi,
    "macd": macd,
    "macd_signal": macd_signal,
    "bb_upper": bb_upper,
    "bb_lower": bb_lower,
    "highest": highest,
    "lowest": lowest,
    "change": change,
}

#: name -> candles of history needed for a value, as a function of the arguments.
LOOKBACK: dict[str, Callable[..., int]] = {
    "sma": lambda n: n,
    "ema": lambda n: n,
    "rsi": lambda n: n + 1,
    "macd": lambda: MACD_SLOW,
    "macd_signal": lambda: MACD_SLOW + MACD_SIGNAL - 1,
    "bb_upper": lambda n, k: n,
    "bb_lower": lambda n, k: n,
    "highest": lambda n: n,
    "lowest": lambda n: n,
    "change": lambda n: n + 1,
}


def lookback(name: str, *args: float) -> int:
    """Candles of history ``name(*args)`` needs before it has a value."""
    return LOOKBACK[name](*args)


def compute(calls: Iterable, closes: np.ndarray) -> dict[str, np.ndarray]:
    """The values of several indicator calls (objects with ``name`` and ``args``), keyed by ``str(call)``.

    This is the ``values`` half that :meth:`ubot.rules.CompiledCondition.evaluate` expects for indicators.
    """
    closes = _closes(closes)
    return {str(call): FUNCTIONS[call.name](closes, *call.args) for call in calls}
