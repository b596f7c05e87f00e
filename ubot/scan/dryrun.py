"""A dry run: the alerts a strategy would have raised over stored history, computed at once.

The live Scanner evaluates each strategy at every tick, on the tick's prices and on indicators over
the strategy's timeframe with the open candle as the newest one, and decides what fires with
:class:`~ubot.scan.firing.FiringTable`. A dry run gives the same answers over a range of stored
history without replaying ticks one by one:

* the ticks are the stored 1m candles of the coins in scope: one evaluation per coin per minute, at
  the candle's last quote, with its close as the price (the live Scanner at the default interval of
  60 s ticks once a minute, on the same prices);
* every indicator is computed for every tick of the range in one vectorised pass over time
  (:mod:`ubot.rules.series`: the live state's maths over whole series), seeded from the timeframe's
  stored candles before the range (at most :data:`WARMUP_CANDLES`);
* the condition is evaluated once over every (tick, coin) of the range by the live evaluator
  (:class:`~ubot.rules.compiler.Evaluator`, the shape and literals of the compiled condition);
* what fires is :func:`~ubot.scan.firing.fire_over_time`: :func:`~ubot.scan.firing.fire`, the one
  implementation of the firing rules that the live table runs over one tick, here over every tick of
  the range at once (every frequency, the cooldown), for a strategy that starts afresh at its first tick.

A condition may read ``price`` and indicators: the other fields (volume, market cap, changes,
global metrics) are kept only as raw quotes for the retention period, not in the candles, and are
refused with a message naming the field. This module is plain: the data comes in as
:class:`StoredHistory` (read by ``models/dryrun.py``), nothing here touches a database or a thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ubot.jsonsafe import json_number
from ubot.market.candles import TIMEFRAMES, CandleRows, bucket_start
from ubot.rules import CompiledCondition, ConditionError, compile_condition
from ubot.rules.compiler import Evaluator
from ubot.rules.indicators import lfilter
from ubot.rules.series import Series
from ubot.scan.firing import fire_over_time
from ubot.timeutil import iso_from_ms
from ubot.users.errors import InProgress, ValidationError

MINUTE_MS = TIMEFRAMES["1m"]
#: The longest range of one dry run, in days (its 1m candles are read and evaluated at once).
MAX_DAYS = 31
#: The most coins one dry run looks at (a strategy's ``top_n`` or ``symbols``).
MAX_COINS = 100
#: Firings answered at most (the earliest ones; ``truncated`` says when more followed).
MAX_FIRINGS = 5_000
#: Closed candles of the timeframe read before the range to seed its indicators (periods are at
#: most 500; a recursive indicator, EMA, RSI or MACD, then differs from one over the whole history
#: by less than a billionth).
WARMUP_CANDLES = 5_000
#: Dry runs of one user at once (a further one is refused), and of the whole process (each runs in
#: one of this many threads: ``actors/dryrun.py``).
PER_USER = 1
WORKERS = 2
#: The fields a dry run can read at every tick (the candles keep the price only).
FIELDS = frozenset({"price"})


@dataclass(frozen=True)
class DryRunSpec:
    """What to run: a strategy's rules (a saved strategy's, or given), and the range."""

    condition: str
    timeframe: str
    frequency: str
    cooldown_s: int
    start_ms: int
    end_ms: int
    symbols: tuple[str, ...] | None = None
    top_n: int | None = None


@dataclass(frozen=True)
class StoredHistory:
    """What the database holds for a dry run: the coins in scope (``ids``, ``symbols``), their 1m
    candles in the range, their closed candles of the timeframe before the range (the warm-up), and
    the span of stored 1m candles of any coin (None: none at all)."""

    ids: np.ndarray
    symbols: tuple[str, ...]
    minutes: CandleRows
    warmup: CandleRows
    stored: tuple[int, int] | None


@dataclass(frozen=True)
class Firing:
    time_ms: int
    coin_id: int
    symbol: str
    values: dict[str, float | None]


@dataclass(frozen=True)
class DryRunResult:
    firings: tuple[Firing, ...]
    coins: int  # coins with candles in the range
    candles: int  # 1m candles evaluated
    from_ms: int  # the first and last tick evaluated
    to_ms: int
    truncated: bool  # more than MAX_FIRINGS would have fired: these are the first ones


def dry_run(spec: DryRunSpec, read: Callable[[DryRunSpec], StoredHistory]) -> DryRunResult:
    """Check ``spec`` (the condition, then the bounds), read its history with ``read``, run it."""
    try:
        condition = compile_condition(spec.condition)
    except ConditionError as error:
        raise ValidationError("condition", error.message, error.column) from None
    check(spec, condition)
    return run(spec, condition, read(spec))


def warm_up() -> None:
    """Import now what a process's first dry run would otherwise import while its user waits:
    ``scipy.signal`` (EMA, RSI and MACD: :func:`ubot.rules.indicators.lfilter`; 0.8-1.6 s), left
    out of start-up so that a start stays cheap. ``run.py`` calls it in a thread of its own once a
    gateway worker serves. A dry run that needs it meanwhile waits on the module's import lock for
    that same import, then goes on with the module complete."""
    lfilter()


class Admission:
    """Who is running a dry run: at most ``per_user`` of one user at once (thread-safe)."""

    def __init__(self, per_user: int = PER_USER) -> None:
        self.per_user = per_user
        self.running: dict[int, int] = {}
        self._lock = threading.Lock()

    def enter(self, user_id: int) -> None:
        with self._lock:
            if self.running.get(user_id, 0) >= self.per_user:
                raise InProgress(
                    f"you have {self.per_user} dry run{'s' if self.per_user > 1 else ''} in progress, the "
                    "most at once; wait for it to finish"
                )
            self.running[user_id] = self.running.get(user_id, 0) + 1

    def leave(self, user_id: int) -> None:
        with self._lock:
            left = self.running.get(user_id, 0) - 1
            if left > 0:
                self.running[user_id] = left
            else:
                self.running.pop(user_id, None)


def check(spec: DryRunSpec, condition: CompiledCondition) -> None:
    """Refuse what a dry run cannot do, naming the field and the bound (:class:`ValidationError`)."""
    if spec.end_ms <= spec.start_ms:
        raise ValidationError("end", "must be after start")
    if spec.end_ms - spec.start_ms > MAX_DAYS * 86_400_000:
        raise ValidationError("end", f"a dry run covers at most {MAX_DAYS} days; make the range shorter")
    if spec.top_n is not None and spec.top_n > MAX_COINS:
        raise ValidationError(
            "top_n", f"a dry run looks at most at {MAX_COINS} coins; got top_n {spec.top_n}"
        )
    if spec.symbols is not None and len(spec.symbols) > MAX_COINS:
        raise ValidationError("symbols", f"a dry run looks at most at {MAX_COINS} coins")
    unread = sorted(key for _, key, _ in condition.inputs if key not in condition.calls and key not in FIELDS)
    if unread:
        raise ValidationError(
            "condition",
            f"a dry run reads the price and indicators from the stored candles; {', '.join(unread)} "
            f"{'is' if len(unread) == 1 else 'are'} not kept in them",
        )


def run(
    spec: DryRunSpec, condition: CompiledCondition, history: StoredHistory, limit: int = MAX_FIRINGS
) -> DryRunResult:
    """The alerts ``spec`` would have raised over ``history`` (see the module docstring)."""
    check(spec, condition)
    order = np.argsort(history.ids, kind="stable")
    ids, symbols = history.ids[order], tuple(history.symbols[i] for i in order.tolist())
    minutes = _sorted(history.minutes)
    inside = (minutes.last_ts >= spec.start_ms) & (minutes.last_ts < spec.end_ms)
    if not inside.any():
        raise NoHistory(spec, history.stored)
    if not inside.all():
        minutes = minutes.take(inside)
    on_bar_close = spec.frequency == "once_per_bar_close"
    ticks = _Ticks(spec.timeframe, minutes, _sorted(history.warmup), ids)
    evaluated = ticks.evaluated(on_bar_close)
    every = evaluated is None
    row = ticks.row if every else ticks.row[evaluated]
    time = ticks.time if every else ticks.time[evaluated]
    values = ticks.values(condition, evaluated, closed_only=on_bar_close)
    outcome = Evaluator().evaluate(condition, values, len(row))
    bar = ticks.bar(on_bar_close)
    fired, truncated = fire_over_time(
        spec.frequency,
        spec.cooldown_s * 1000,
        row,
        time,
        ticks.frame if every else ticks.frame[evaluated],
        bar if every else bar[evaluated],
        np.asarray(outcome.matched, dtype=bool),
        np.asarray(outcome.undefined, dtype=bool),
        limit,
    )
    columns = {key: values.get(key) for _, key, _ in condition.inputs}
    firings = tuple(
        Firing(
            int(time[k]),
            int(ids[row[k]]),
            symbols[row[k]],
            {key: json_number(_at(column, k)) for key, column in columns.items()},
        )
        for k in fired.tolist()
    )
    return DryRunResult(
        firings,
        coins=int((np.bincount(ticks.row, minlength=len(ids)) > 0).sum()),
        candles=len(ticks.row),
        from_ms=int(ticks.time.min()),
        to_ms=int(ticks.time.max()),
        truncated=truncated,
    )


class NoHistory(ValidationError):
    """No stored 1m candle of the coins in scope falls in the range: says what history exists."""

    def __init__(self, spec: DryRunSpec, stored: tuple[int, int] | None) -> None:
        asked = f"no stored candles of these coins between {iso_from_ms(spec.start_ms)} and {iso_from_ms(spec.end_ms)}"
        if stored is None:
            told = "no history is stored yet (run.py --backfill DAYS makes some)"
        else:
            told = f"the stored history runs from {iso_from_ms(stored[0])} to {iso_from_ms(stored[1])}"
        super().__init__("start", f"{asked}; {told}")
        self.stored = stored


def _at(value: np.ndarray | float | None, k: int) -> float | None:
    if value is None:
        return None
    return float(value) if np.ndim(value) == 0 else float(value[k])


def _sorted(candles: CandleRows) -> CandleRows:
    """``candles`` by coin then open time (as the database reads them: then as they are)."""
    if len(candles) < 2:
        return candles
    coins, times = candles.coin_ids, candles.open_time
    if np.all((coins[1:] > coins[:-1]) | ((coins[1:] == coins[:-1]) & (times[1:] > times[:-1]))):
        return candles
    return candles.take(np.lexsort((times, coins)))


class _Ticks:
    """The range's ticks (one per stored 1m candle, sorted by coin then time) and, per coin (row of
    ``ids``), its closed candles of the timeframe: the warm-up, then those the range's minutes make
    (a candle's close is its last minute's close, as the OHLC stage merges them)."""

    def __init__(self, timeframe: str, minutes: CandleRows, warmup: CandleRows, ids: np.ndarray) -> None:
        self.timeframe = timeframe
        coins = len(ids)
        self.row = _rows_of(ids, minutes.coin_ids)  # ids ascending, minutes by coin then time
        self.time = minutes.last_ts.astype(np.int64, copy=False)
        self.price = minutes.close.astype(np.float64, copy=False)
        self.minute = minutes.open_time.astype(np.int64, copy=False)
        self.first_minute = int(self.minute.min())
        #: The tick (frame) number: minutes since the first (ticks of one minute share it).
        self.frame = (self.minute - self.first_minute) // MINUTE_MS
        # A 1m candle's quotes are all in its minute, so its bar is its minute's.
        self.open_bar = self.minute if timeframe == "1m" else bucket_start(self.minute, timeframe)
        n = len(self.row)
        # Per row: the newest warm-up closes, then one close per bar of the range (its last minute).
        warm_row = np.searchsorted(ids, warmup.coin_ids) if len(warmup) else np.empty(0, np.int64)
        keep = _last_per_group(warm_row, WARMUP_CANDLES)
        warm_row, warm_close = warm_row[keep], warmup.close[keep]
        warm_count = np.bincount(warm_row, minlength=coins)
        first_of_row = np.ones(n, dtype=bool)
        first_of_row[1:] = self.row[1:] != self.row[:-1]
        if timeframe == "1m":  # every tick is a bar of its own
            new_bar = np.ones(n, dtype=bool)
            ordinal = np.arange(n)
        else:
            new_bar = first_of_row.copy()
            new_bar[1:] |= self.open_bar[1:] != self.open_bar[:-1]
            ordinal = np.cumsum(new_bar) - 1
        starts = np.flatnonzero(first_of_row)
        row_base = np.repeat(ordinal[starts], np.diff(np.append(starts, n)))
        #: Each tick's open bar: the number of closed candles of its row before it.
        self.at = warm_count[self.row] + ordinal - row_base
        last_in_bar = np.ones(n, dtype=bool)
        last_in_bar[:-1] = new_bar[1:]
        width = int((warm_count + np.bincount(self.row[last_in_bar], minlength=coins)).max(initial=0))
        self.closes = np.full((coins, width), np.nan)
        warm_starts = np.concatenate([[0], np.cumsum(warm_count)[:-1]])
        self.closes[warm_row, np.arange(len(warm_row)) - warm_starts[warm_row]] = warm_close
        flat = self.closes.reshape(-1)  # a view: one flat index per close, faster than two
        if timeframe == "1m":  # every tick closes its bar
            flat[self.row * width + self.at] = self.price
        else:
            flat[self.row[last_in_bar] * width + self.at[last_in_bar]] = self.price[last_in_bar]

    def evaluated(self, on_bar_close: bool) -> np.ndarray | None:
        """Which ticks are evaluated: all (None), or (``once_per_bar_close``) those of the first minute
        of a new bar, when the frame before was in an earlier bar (the live ``closed_bars``)."""
        if not on_bar_close:
            return None
        minutes = self.first_minute + MINUTE_MS * np.arange(int(self.frame.max()) + 1)
        present = np.zeros(len(minutes), dtype=bool)
        present[self.frame] = True
        minutes = minutes[present]
        previous = np.append(minutes[0] - MINUTE_MS, minutes[:-1])
        closing = np.zeros(len(present), dtype=bool)
        closing[present] = bucket_start(previous, self.timeframe) < bucket_start(minutes, self.timeframe)
        return closing[self.frame]

    def bar(self, on_bar_close: bool) -> np.ndarray:
        """Each tick's bar for the firing rules: its open bar, or the bar that just closed."""
        if on_bar_close:
            return bucket_start(self.minute, self.timeframe) - TIMEFRAMES[self.timeframe]
        return self.open_bar

    def values(
        self, condition: CompiledCondition, evaluated: np.ndarray | None, *, closed_only: bool
    ) -> dict[str, np.ndarray]:
        """The condition's inputs at every evaluated tick (the price, each indicator)."""
        if evaluated is None:
            row, at, price = self.row, self.at, self.price
        else:
            row, at, price = self.row[evaluated], self.at[evaluated], self.price[evaluated]
        series = Series(self.closes, row, at, price)
        out: dict[str, np.ndarray] = {"price": price}
        for key, call in condition.calls.items():
            out[key] = series.value(call, closed_only=closed_only)
        return out


def _rows_of(ids: np.ndarray, coin_ids: np.ndarray) -> np.ndarray:
    """The row of ``ids`` (ascending) of each of ``coin_ids`` (grouped by coin, in the order of
    ``ids``, every one of them in ``ids``): from the groups' lengths, not a search per candle."""
    if len(coin_ids) == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.append(True, coin_ids[1:] != coin_ids[:-1]))
    groups = coin_ids[starts]
    rows = np.searchsorted(ids, groups)
    if (
        len(ids)
        and np.all(np.diff(groups) > 0)
        and np.array_equal(ids[np.minimum(rows, len(ids) - 1)], groups)
    ):
        return np.repeat(rows, np.diff(np.append(starts, len(coin_ids))))
    return np.searchsorted(ids, coin_ids)


def _last_per_group(groups: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the newest ``keep`` rows of each group (``groups`` sorted; rows oldest first)."""
    if len(groups) == 0:
        return np.empty(0, dtype=np.int64)
    counts = np.bincount(groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    from_end = counts[groups] - (np.arange(len(groups)) - starts[groups])
    return np.flatnonzero(from_end <= keep)
