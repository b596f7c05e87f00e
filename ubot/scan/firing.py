"""When a true condition becomes an alert, per (strategy, coin). Chosen per strategy:

* ``once_per_crossing`` (default): fires when the condition becomes true for a coin; not again until it
  has been false for that coin (a coin without a result, e.g. missing data, keeps its previous state).
  A new (or edited) strategy starts *armed*: the coins already true at its first evaluation are
  recorded as true without an alert, so a strategy over the top 1,000 does not open with hundreds
  of alerts; each fires at its next crossing. (The other rules fire at once for coins already true.)
  A coin that enters the scope later, already true, counts as a crossing;
* ``once``: fires for the coins true at the first tick any is, then the strategy disables itself;
* ``once_per_bar``: at most once per candle of the strategy's timeframe, while true;
* ``once_per_bar_close``: evaluated only when a candle closes, on closed candles; fires for each bar
  that closes true.

``cooldown_s`` then holds back any alert for a coin until that long after its previous one (a crossing
during the cooldown is not fired later: the condition has to become true again). Expiry is checked by
the caller. The state is small (the coins currently true, and the last alert time and bar per coin);
every change is returned as :class:`AlertState` so the Notifier writes it with the alerts, and a
restarted worker continues from it.

A worker's firing state lives in one :class:`FiringTable` (sorted numpy arrays keyed by strategy and
coin) and :meth:`FiringTable.decide` applies these rules to every (strategy, coin) pair of a tick at
once, with array operations: the cost per pair is a few vectorised steps, not Python code.
:func:`decide` is the same for one strategy whose state is a :class:`FiringState` value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ubot.notify.messages import AlertState
from ubot.scan.spec import StrategySpec

#: The coin id of the row that says "this strategy has been evaluated" (CoinMarketCap ids start at 1).
ARMED = 0
#: A (strategy, coin) pair's key in a :class:`FiringTable`: the strategy id in the high bits.
_SHIFT = 32
#: "never" in the table's time columns.
NONE = np.iinfo(np.int64).min
#: The firing rules as codes (``FREQUENCIES[spec.frequency]``).
CROSSING, PER_BAR, ONCE = 0, 1, 2
FREQUENCIES = {
    "once_per_crossing": CROSSING,
    "once_per_bar": PER_BAR,
    "once_per_bar_close": PER_BAR,
    "once": ONCE,
}


@dataclass
class FiringState:
    """One strategy's firing state as a value (what :class:`FiringTable` holds for each strategy)."""

    armed: bool = False  # evaluated at least once (once_per_crossing)
    active: set[int] = field(default_factory=set)  # coins whose condition was true (crossing)
    fired_at: dict[int, int] = field(default_factory=dict)  # coin -> time of its last alert (ms)
    fired_bar: dict[int, int] = field(default_factory=dict)  # coin -> bar of its last alert (ms)

    @classmethod
    def restore(cls, rows: Iterable[AlertState]) -> FiringState:
        state = cls()
        for row in rows:
            if row.coin_id == ARMED:
                state.armed = row.active
                continue
            if row.active:
                state.active.add(row.coin_id)
            if row.last_fired_ms is not None:
                state.fired_at[row.coin_id] = row.last_fired_ms
            if row.last_bar_ms is not None:
                state.fired_bar[row.coin_id] = row.last_bar_ms
        return state

    def row(self, strategy_id: int, coin: int) -> AlertState:
        return AlertState(
            strategy_id, coin, coin in self.active, self.fired_at.get(coin), self.fired_bar.get(coin)
        )

    def rows(self, strategy_id: int) -> list[AlertState]:
        """The state as the rows the Notifier keeps (what :meth:`restore` reads back)."""
        coins = sorted(self.active | set(self.fired_at) | set(self.fired_bar))
        armed = [AlertState(strategy_id, ARMED, True)] if self.armed else []
        return armed + [self.row(strategy_id, coin) for coin in coins]


@dataclass(frozen=True, eq=False)
class Rules:
    """The firing rules of some strategies, as arrays (one element per strategy)."""

    ids: np.ndarray  # int64
    frequency: np.ndarray  # CROSSING, PER_BAR or ONCE
    cooldown_ms: np.ndarray  # int64

    @classmethod
    def of(cls, specs: Sequence[StrategySpec]) -> Rules:
        n = len(specs)
        return cls(
            np.fromiter((s.id for s in specs), dtype=np.int64, count=n),
            np.fromiter((FREQUENCIES[s.frequency] for s in specs), dtype=np.int8, count=n),
            np.fromiter((s.cooldown_s * 1000 for s in specs), dtype=np.int64, count=n),
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Rules]) -> Rules:
        return cls(
            *(
                np.concatenate([getattr(p, name) for p in parts])
                for name in ("ids", "frequency", "cooldown_ms")
            )
        )

    def take(self, which: np.ndarray) -> Rules:
        return Rules(self.ids[which], self.frequency[which], self.cooldown_ms[which])


def _keys(strategy_ids: np.ndarray, coins: np.ndarray) -> np.ndarray:
    return (np.asarray(strategy_ids, dtype=np.int64) << _SHIFT) | np.asarray(coins, dtype=np.int64)


def _find(table: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``keys`` is in the sorted ``table`` (clipped), and whether it is there."""
    if len(table) == 0:
        return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    at = np.minimum(np.searchsorted(table, keys), len(table) - 1)
    return at, table[at] == keys


def _insert(table: np.ndarray, keys: np.ndarray, *columns: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
    """``table`` with the new ``keys`` inserted in order; each (column, values) likewise."""
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    at = np.searchsorted(table, keys)
    return [np.insert(table, at, keys), *(np.insert(column, at, values[order]) for column, values in columns)]


def _never(ms: int | None) -> int:
    return NONE if ms is None else ms


class FiringTable:
    """Every strategy's firing state of one worker, as sorted arrays keyed by (strategy, coin):
    the strategies that are armed, the pairs that are active, and the pairs that fired (when, in
    which bar). Sparse: a pair that was never true and never fired takes no room."""

    def __init__(self) -> None:
        self.armed = np.empty(0, dtype=np.int64)  # strategy ids
        self.active = np.empty(0, dtype=np.int64)  # keys
        self.fired = np.empty(0, dtype=np.int64)  # keys, with:
        self.fired_at = np.empty(0, dtype=np.int64)  # NONE: never
        self.fired_bar = np.empty(0, dtype=np.int64)  # NONE: never

    def forget(self, strategy_ids: Iterable[int]) -> None:
        """These strategies start afresh (or are gone)."""
        ids = np.unique(np.fromiter(strategy_ids, dtype=np.int64))
        if len(ids) == 0:
            return
        self.armed = self.armed[~np.isin(self.armed, ids)]
        self.active = self.active[~np.isin(self.active >> _SHIFT, ids)]
        keep = ~np.isin(self.fired >> _SHIFT, ids)
        self.fired, self.fired_at, self.fired_bar = (
            self.fired[keep],
            self.fired_at[keep],
            self.fired_bar[keep],
        )

    def restore(self, rows: Iterable[AlertState]) -> None:
        """The state rows the Notifier kept (:meth:`FiringState.rows`): each strategy they name gets
        exactly the state they say (what the table had of it is replaced)."""
        rows = list(rows)
        if not rows:
            return
        self.forget({row.strategy_id for row in rows})
        armed = [r.strategy_id for r in rows if r.coin_id == ARMED and r.active]
        pairs = [r for r in rows if r.coin_id != ARMED]
        active = [(r.strategy_id, r.coin_id) for r in pairs if r.active]
        fired = sorted(
            (r.strategy_id, r.coin_id, _never(r.last_fired_ms), _never(r.last_bar_ms))
            for r in pairs
            if r.last_fired_ms is not None or r.last_bar_ms is not None
        )
        self.armed = np.union1d(self.armed, np.array(armed, dtype=np.int64))
        keys = np.unique(_keys(*np.array(active, dtype=np.int64).reshape(-1, 2).T))
        self.active = _insert(self.active, keys)[0]
        table = np.array(fired, dtype=np.int64).reshape(-1, 4)
        keys, first = np.unique(_keys(table[:, 0], table[:, 1]), return_index=True)
        self.fired, self.fired_at, self.fired_bar = _insert(
            self.fired, keys, (self.fired_at, table[first, 2]), (self.fired_bar, table[first, 3])
        )

    def load(self, strategy_id: int, state: FiringState) -> None:
        """Make ``state`` the state of ``strategy_id`` (replacing what the table had)."""
        self.forget([strategy_id])
        self.restore(state.rows(strategy_id))

    def state_of(self, strategy_id: int) -> FiringState:
        low, high = strategy_id << _SHIFT, (strategy_id + 1) << _SHIFT
        a, b = np.searchsorted(self.active, [low, high])
        f, g = np.searchsorted(self.fired, [low, high])
        coins = (self.fired[f:g] & ((1 << _SHIFT) - 1)).tolist()
        return FiringState(
            armed=bool(np.isin(strategy_id, self.armed)),
            active=set((self.active[a:b] & ((1 << _SHIFT) - 1)).tolist()),
            fired_at={c: t for c, t in zip(coins, self.fired_at[f:g].tolist()) if t != NONE},
            fired_bar={c: t for c, t in zip(coins, self.fired_bar[f:g].tolist()) if t != NONE},
        )

    def _has_fired(self, strategy_ids: np.ndarray) -> np.ndarray:
        """Per strategy: has it ever alerted (a ``once`` strategy never does again)."""
        if len(self.fired) == 0:
            return np.zeros(len(strategy_ids), dtype=bool)
        counts = np.concatenate([[0], np.cumsum(self.fired_at != NONE)])
        low = np.searchsorted(self.fired, strategy_ids << _SHIFT)
        high = np.searchsorted(self.fired, (strategy_ids + 1) << _SHIFT)
        return counts[high] > counts[low]

    def decide(
        self,
        rules: Rules,
        bars_ms: np.ndarray,
        counts: np.ndarray,
        coins: np.ndarray,
        matched: np.ndarray,
        undefined: np.ndarray,
        now_ms: int,
    ) -> tuple[np.ndarray, list[AlertState]]:
        """One tick of the strategies of ``rules`` (each evaluated, over ``counts[i]`` consecutive
        pairs of ``coins``/``matched``/``undefined``; its bar ``bars_ms[i]``): which pairs alert now
        (a mask), and the state rows that changed, by strategy then coin. Updates the table."""
        ids, frequency, cooldown = rules.ids, rules.frequency, rules.cooldown_ms
        owner = np.repeat(np.arange(len(ids)), counts)
        keys = _keys(ids[owner], coins)
        at_active, was_active = _find(self.active, keys)
        at_fired, has_fired = _find(self.fired, keys)
        last_at = np.where(has_fired, self.fired_at[at_fired] if len(self.fired) else NONE, NONE)
        last_bar = np.where(has_fired, self.fired_bar[at_fired] if len(self.fired) else NONE, NONE)

        crossing_s = frequency == CROSSING
        armed_s = np.isin(ids, self.armed)
        once_s = frequency == ONCE
        if once_s.any():
            once_s &= ~self._has_fired(ids)  # never again once it fired (the disable may be late)
        crossing = crossing_s[owner]
        falls = crossing & ~matched & ~undefined & was_active
        rises = crossing & matched & ~was_active
        # A strategy's first evaluation only arms it (once_per_crossing): nothing fires then.
        candidates = (rises & armed_s[owner]) | (matched & once_s[owner])
        candidates |= matched & (frequency == PER_BAR)[owner] & (last_bar != bars_ms[owner])
        wait = cooldown[owner]
        fire = candidates & ((wait <= 0) | (last_at == NONE) | (now_ms - last_at >= wait))
        changed = falls | rises | fire

        # The table after this tick.
        if falls.any() or rises.any():
            kept = np.delete(self.active, at_active[falls])
            self.active = _insert(kept, keys[rises])[0]
        if fire.any():
            again = fire & has_fired
            self.fired_at[at_fired[again]] = now_ms
            self.fired_bar[at_fired[again]] = bars_ms[owner[again]]
            first = fire & ~has_fired
            self.fired, self.fired_at, self.fired_bar = _insert(
                self.fired,
                keys[first],
                (self.fired_at, np.full(int(first.sum()), now_ms, dtype=np.int64)),
                (self.fired_bar, bars_ms[owner[first]]),
            )
        arming = np.flatnonzero(crossing_s & ~armed_s)
        if len(arming):
            self.armed = np.union1d(self.armed, ids[arming])

        # The changed rows, by strategy then coin (the ARMED row, coin 0, first).
        which = np.flatnonzero(changed)
        strategy = np.concatenate([owner[which], arming])
        coin = np.concatenate([coins[which], np.full(len(arming), ARMED, dtype=np.int64)])
        active = np.concatenate([((was_active & ~falls) | rises)[which], np.ones(len(arming), dtype=bool)])
        at = np.concatenate([np.where(fire, now_ms, last_at)[which], np.full(len(arming), NONE)])
        bar = np.concatenate([np.where(fire, bars_ms[owner], last_bar)[which], np.full(len(arming), NONE)])
        order = np.lexsort((coin, strategy))
        rows = [
            AlertState(int(ids[s]), c, a, None if t == NONE else t, None if b == NONE else b)
            for s, c, a, t, b in zip(
                strategy[order].tolist(),
                coin[order].tolist(),
                active[order].tolist(),
                at[order].tolist(),
                bar[order].tolist(),
            )
        ]
        return fire, rows


def decide(
    spec: StrategySpec,
    state: FiringState,
    coin_ids: np.ndarray,
    matched: np.ndarray,
    undefined: np.ndarray,
    now_ms: int,
    bar_ms: int,
) -> tuple[list[int], list[AlertState]]:
    """:meth:`FiringTable.decide` for one strategy: the coins to alert now, and the state rows that
    changed. Updates ``state``."""
    table = FiringTable()
    table.load(spec.id, state)
    coin_ids = np.asarray(coin_ids, dtype=np.int64)
    fire, rows = table.decide(
        Rules.of([spec]),
        np.array([bar_ms], dtype=np.int64),
        np.array([len(coin_ids)]),
        coin_ids,
        np.asarray(matched, dtype=bool),
        np.asarray(undefined, dtype=bool),
        now_ms,
    )
    after = table.state_of(spec.id)
    state.armed, state.active, state.fired_at, state.fired_bar = (
        after.armed,
        after.active,
        after.fired_at,
        after.fired_bar,
    )
    return coin_ids[fire].tolist(), rows


#: Bits of a time (epoch ms) in the keys of :func:`fire_over_time` (coin row in the high bits).
_TIME_BITS = 42


def fire_over_time(
    frequency: str,
    cooldown_ms: int,
    coins: np.ndarray,
    times_ms: np.ndarray,
    frames: np.ndarray,
    bars_ms: np.ndarray,
    matched: np.ndarray,
    undefined: np.ndarray,
    limit: int,
) -> tuple[np.ndarray, bool]:
    """The rules of :meth:`FiringTable.decide` over many ticks of one strategy at once (a dry run,
    :mod:`ubot.scan.dryrun`): which of the given evaluations alert, for a strategy that starts afresh
    at the first frame. Each evaluation is one (coin, tick): ``coins`` (a row number), its time,
    ``frames`` (the tick's number: evaluations of one tick share it), its bar, and its outcome.

    Returns the indices of those that alert, by time (then coin), at most ``limit`` of them, and
    whether more would have followed (then what is returned is exactly the first ``limit``).

    The state per coin is what the table keeps: whether the condition was last true (a coin without
    a result keeps its previous state), the time and bar of its last alert. Without a cooldown every
    rule is a closed form over the coin's sequence; with one, each coin's next alert is the first
    candidate at least ``cooldown_ms`` after its previous alert (and, per bar, in a later bar), found
    for every coin at once by one binary search per alert a coin raises."""
    n = len(coins)
    if n == 0:
        return np.empty(0, dtype=np.int64), False
    later = (coins[1:] > coins[:-1]) | ((coins[1:] == coins[:-1]) & (times_ms[1:] >= times_ms[:-1]))
    if later.all():  # already by coin then time (a dry run's ticks are)
        order = np.arange(n)
        coin, time, frame, bar, true, unknown = coins, times_ms, frames, bars_ms, matched, undefined
    else:
        order = np.lexsort((times_ms, coins))
        coin, time, frame = coins[order], times_ms[order], frames[order]
        bar, true, unknown = bars_ms[order], matched[order], undefined[order]
    rule = FREQUENCIES[frequency]
    first_frame = frame.min()
    if rule == ONCE:  # the coins true at the first tick any is; then the strategy is disabled
        hits = frame[true]
        candidates = true & (frame == hits.min()) if len(hits) else np.zeros(n, dtype=bool)
    elif rule == CROSSING:
        index = np.arange(n)
        starts = np.append(True, coin[1:] != coin[:-1])
        segment = np.maximum.accumulate(np.where(starts, index, 0))
        last_known = np.maximum.accumulate(np.where(true | ~unknown, index, -1))
        previous = np.append(-1, last_known[:-1])  # the last evaluation with a result, before this one
        was_true = (previous >= segment) & true[np.maximum(previous, 0)]
        # A strategy's first evaluation only arms it: nothing fires then.
        candidates = true & ~was_true & (frame != first_frame)
    else:
        candidates = true
    which = np.flatnonzero(candidates)
    if cooldown_ms <= 0 or rule == ONCE:
        if rule == PER_BAR:  # the first true evaluation of each (coin, bar)
            c, b = coin[which], bar[which]
            which = which[np.append(True, (c[1:] != c[:-1]) | (b[1:] != b[:-1]))]
        return _first(order[which], times_ms, coins, limit, None)
    # With a cooldown: a chain per coin, all coins advanced together, one alert each per round.
    c, t, b = coin[which].astype(np.int64), time[which], bar[which]
    time_keys = (c << _TIME_BITS) | t
    bar_keys = (c << _TIME_BITS) | b
    current = np.flatnonzero(np.append(True, c[1:] != c[:-1])) if len(which) else which
    fired: list[np.ndarray] = []
    total = 0
    while len(current) and total < limit:
        fired.append(current)
        total += len(current)
        following = np.searchsorted(time_keys, time_keys[current] + cooldown_ms, side="left")
        if rule == PER_BAR:
            following = np.maximum(following, np.searchsorted(bar_keys, bar_keys[current] + 1, side="left"))
        same = following < len(which)
        same[same] = c[following[same]] == c[current[same]]
        current = following[same]
    chosen = np.concatenate(fired) if fired else np.empty(0, dtype=np.int64)
    pending = int(t[current].min()) if len(current) else None  # alerts from then on were not followed
    return _first(order[which[chosen]], times_ms, coins, limit, pending)


def _first(
    which: np.ndarray, times_ms: np.ndarray, coins: np.ndarray, limit: int, pending: int | None
) -> tuple[np.ndarray, bool]:
    """``which`` by time then coin, cut to the first ``limit`` (and before ``pending``, the time from
    which some alerts were not computed)."""
    which = which[np.lexsort((coins[which], times_ms[which]))]
    cut = pending is not None
    if cut:
        which = which[times_ms[which] < pending]
    if len(which) > limit:
        return which[:limit], True
    return which, cut
