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

The rules have one implementation, :func:`fire`: array operations over evaluations of (strategy,
coin) pairs, one or many ticks each, from each pair's state before (:class:`Carried`) to its state
after. A worker's firing state lives in one :class:`FiringTable` (sorted numpy arrays keyed by strategy
and coin); :meth:`FiringTable.decide` reads the state of every pair of a tick from it, runs
:func:`fire` over that one tick and writes the state back: the cost per pair is a few vectorised
steps, not Python code. :func:`decide` is the same for one strategy whose state is a
:class:`FiringState` value. A dry run runs :func:`fire` over every tick of a range at once
(:func:`fire_over_time`), so it raises the alerts the live Scanner would.
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
        (a mask), and the state rows that changed, by strategy then coin. Updates the table.

        The rules are :func:`fire`'s, over this one tick, with each pair's state read from the table."""
        ids, frequency = rules.ids, rules.frequency
        owner = np.repeat(np.arange(len(ids)), counts)
        keys = _keys(ids[owner], coins)
        at_active, was_active = _find(self.active, keys)
        at_fired, has_fired = _find(self.fired, keys)
        last_at = np.where(has_fired, self.fired_at[at_fired] if len(self.fired) else NONE, NONE)
        last_bar = np.where(has_fired, self.fired_bar[at_fired] if len(self.fired) else NONE, NONE)
        armed_s = np.isin(ids, self.armed)
        spent_s = frequency == ONCE
        if spent_s.any():
            spent_s &= self._has_fired(ids)  # never again once it fired (the disable may be late)
        bar = bars_ms[owner]
        fired = fire(
            rules,
            armed_s,
            spent_s,
            owner,
            Carried(was_active, last_at, last_bar),
            matched,
            undefined,
            bar,
            now_ms,
        )
        after = fired.after
        fire_mask = np.zeros(len(keys), dtype=bool)
        fire_mask[fired.which] = True
        falls = was_active & ~after.active
        rises = after.active & ~was_active
        changed = falls | rises | fire_mask

        # The table after this tick.
        if falls.any() or rises.any():
            kept = np.delete(self.active, at_active[falls])
            self.active = _insert(kept, keys[rises])[0]
        if len(fired.which):
            again = fire_mask & has_fired
            self.fired_at[at_fired[again]] = now_ms
            self.fired_bar[at_fired[again]] = bar[again]
            first = fire_mask & ~has_fired
            self.fired, self.fired_at, self.fired_bar = _insert(
                self.fired,
                keys[first],
                (self.fired_at, np.full(int(first.sum()), now_ms, dtype=np.int64)),
                (self.fired_bar, bar[first]),
            )
        arming = np.flatnonzero((frequency == CROSSING) & ~armed_s)
        if len(arming):
            self.armed = np.union1d(self.armed, ids[arming])

        # The changed rows, by strategy then coin (the ARMED row, coin 0, first).
        which = np.flatnonzero(changed)
        strategy = np.concatenate([owner[which], arming])
        coin = np.concatenate([coins[which], np.full(len(arming), ARMED, dtype=np.int64)])
        active = np.concatenate([after.active[which], np.ones(len(arming), dtype=bool)])
        at = np.concatenate([after.fired_at[which], np.full(len(arming), NONE)])
        bar_of = np.concatenate([after.fired_bar[which], np.full(len(arming), NONE)])
        order = np.lexsort((coin, strategy))
        rows = [
            AlertState(int(ids[s]), c, a, None if t == NONE else t, None if b == NONE else b)
            for s, c, a, t, b in zip(
                strategy[order].tolist(),
                coin[order].tolist(),
                active[order].tolist(),
                at[order].tolist(),
                bar_of[order].tolist(),
            )
        ]
        return fire_mask, rows


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


@dataclass(frozen=True, eq=False)
class Carried:
    """The firing state of some (strategy, coin) pairs, one element per pair: whether the condition
    was last true for it (``once_per_crossing``; a tick without a result keeps it), and the time and
    the bar of its last alert (:data:`NONE`: never)."""

    active: np.ndarray  # bool
    fired_at: np.ndarray  # int64
    fired_bar: np.ndarray  # int64

    @classmethod
    def fresh(cls, pairs: int) -> Carried:
        """Pairs that were never evaluated."""
        return cls(np.zeros(pairs, dtype=bool), np.full(pairs, NONE), np.full(pairs, NONE))


@dataclass(frozen=True, eq=False)
class Fired:
    """What :func:`fire` decided."""

    which: np.ndarray  # the evaluations that alert, ascending
    after: Carried  # each pair's state after its evaluations
    pending: int | None  # with a limit: from this time on, alerts were not all computed (else None)


#: Bits of a time (epoch ms) in the keys of a cooldown's chains (the pair in the high bits: fewer
#: than 2**21 pairs in one call of :func:`fire` that has a cooldown and several ticks per pair).
_TIME_BITS = 42


def fire(
    rules: Rules,
    armed: np.ndarray,
    spent: np.ndarray,
    owner: np.ndarray,
    before: Carried,
    matched: np.ndarray,
    undefined: np.ndarray,
    bars_ms: np.ndarray,
    time_ms: int | np.ndarray,
    frames: np.ndarray | None = None,
    pairs: np.ndarray | None = None,
    limit: int | None = None,
) -> Fired:
    """The firing rules (this module's docstring), the one implementation of them: which of some
    evaluations alert, and each (strategy, coin) pair's state after them. The live Scanner runs it
    over one tick for every pair of its strategies (:meth:`FiringTable.decide`), a dry run over every
    tick of a range for one strategy (:func:`fire_over_time`).

    Per strategy (``rules``, ``armed``: evaluated before, ``spent``: a ``once`` strategy that alerted
    before); per pair, ``owner`` (its strategy's index, non-decreasing) and its state ``before``; per
    evaluation, its outcome (``matched``, ``undefined``), its bar and time (``time_ms``: one for all),
    its tick (``frames``, None: one tick for all) and its pair (``pairs``, non-decreasing and by time
    within a pair; None: each evaluation is a pair of its own, ``owner`` then per evaluation).

    Without a cooldown every rule is a closed form over each pair's evaluations; with one, each pair's
    next alert is the first candidate at least the cooldown after its previous one (and, per bar, in a
    later bar), found for every pair at once by one binary search per alert a pair raises. With a
    ``limit``, those chains stop once that many alerts were found (:attr:`Fired.pending`)."""
    n = len(matched)
    one_each = pairs is None
    of = _Strategies(owner, pairs)
    rule, cooldown = of.each(rules.frequency), of.each(rules.cooldown_ms)
    crossing, per_bar = rule == CROSSING, rule == PER_BAR
    any_crossing, any_per_bar = bool(crossing.any()), bool(per_bar.any())

    def of_pair(values: np.ndarray) -> np.ndarray:
        return values if one_each else values[pairs]

    candidates = np.zeros(n, dtype=bool)
    if any_crossing:
        # once_per_crossing: a rise is true where the condition was not (the pair's previous result,
        # or its state before); a strategy's first evaluation only arms it.
        known = matched | ~undefined
        if one_each:
            was_true = before.active
        else:
            firsts = np.flatnonzero(np.append(True, pairs[1:] != pairs[:-1]))  # each pair's first
            pair_start = np.repeat(firsts, np.diff(np.append(firsts, n)))
            index = np.arange(n)
            last_known = np.maximum.accumulate(np.where(known, index, -1))
            previous = np.append(-1, last_known[:-1])  # the last evaluation with a result, before this one
            within = previous >= pair_start
            was_true = matched[np.maximum(previous, 0)] & within
            if before.active.any():
                was_true |= ~within & before.active[pairs]
        candidates = crossing & matched & ~was_true
        opening = crossing & ~of.each(armed)
        if opening.any():
            if frames is not None:  # only at the strategy's first tick
                opening = opening & of.at_first(frames)
            candidates &= ~opening
    once = (rule == ONCE) & ~of.each(spent)
    if once.any():
        # once: the pairs true at the first tick any of the strategy's is, unless it alerted before.
        once = once & matched
        if frames is not None:
            once = of.at_first(frames, once)
        candidates |= once
    if any_per_bar:
        candidates |= matched & per_bar
    # Against the state before: the cooldown since the pair's last alert, and (per bar) a new bar.
    if one_each or (before.fired_at != NONE).any():
        last_at = of_pair(before.fired_at)
        candidates &= (cooldown <= 0) | (last_at == NONE) | (time_ms - last_at >= cooldown)
    if any_per_bar and (one_each or (before.fired_bar != NONE).any()):
        candidates &= ~per_bar | (bars_ms != of_pair(before.fired_bar))

    which = np.flatnonzero(candidates)
    pending = None
    if not one_each:  # else a pair's only candidate is its first
        plain, chain = _split(cooldown <= 0, which)
        bar_rule, other = _split(per_bar, plain)
        if len(bar_rule):  # the first candidate of each (pair, bar)
            p, b = pairs[bar_rule], bars_ms[bar_rule]
            bar_rule = bar_rule[np.append(True, (p[1:] != p[:-1]) | (b[1:] != b[:-1]))]
            plain = np.sort(np.concatenate([other, bar_rule])) if len(other) else bar_rule
        if len(chain):
            times = np.broadcast_to(time_ms, n)
            chain, pending = _chains(chain, pairs, times, bars_ms, cooldown, per_bar, limit)
            which = np.sort(np.concatenate([plain, chain])) if len(plain) else chain
        else:
            which = plain

    # Each pair's state after: its last result (once_per_crossing), its last alert.
    if one_each:
        active = np.where(crossing & known, matched, before.active) if any_crossing else before.active
        fired = np.zeros(n, dtype=bool)
        fired[which] = True
        fired_at = np.where(fired, time_ms, before.fired_at)
        fired_bar = np.where(fired, bars_ms, before.fired_bar)
        return Fired(which, Carried(active, fired_at, fired_bar), pending)
    active, fired_at, fired_bar = before.active.copy(), before.fired_at.copy(), before.fired_bar.copy()
    if any_crossing:
        ends = np.append(firsts[1:] - 1, n - 1)
        ends = ends[np.broadcast_to(crossing, n)[ends]]
        last = last_known[ends]
        seen = last >= pair_start[ends]
        active[pairs[ends[seen]]] = matched[last[seen]]
    p = pairs[which]
    latest = which[np.append(p[1:] != p[:-1], True)] if len(which) else which
    fired_at[pairs[latest]] = np.broadcast_to(time_ms, n)[latest]
    fired_bar[pairs[latest]] = bars_ms[latest]
    return Fired(which, Carried(active, fired_at, fired_bar), pending)


def _split(rule: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``which`` (evaluations) into those where ``rule`` (per evaluation, or one for all) holds, and
    the others."""
    if np.ndim(rule) == 0:
        return (which, which[:0]) if rule else (which[:0], which)
    holds = rule[which]
    return which[holds], which[~holds]


class _Strategies:
    """Which strategy each evaluation is of (:func:`fire`'s ``owner`` and ``pairs``), read only as
    far as needed: most calls are of one strategy (a dry run), or of strategies that share a rule."""

    def __init__(self, owner: np.ndarray, pairs: np.ndarray | None) -> None:
        self.owner, self.pairs = owner, pairs
        self.only = len(owner) > 0 and owner[0] == owner[-1]  # owner is non-decreasing
        self._group: np.ndarray | None = None

    def group(self) -> np.ndarray:
        """Each evaluation's strategy (an index)."""
        if self._group is None:
            self._group = self.owner if self.pairs is None else self.owner[self.pairs]
        return self._group

    def at_first(self, frames: np.ndarray, among: np.ndarray | None = None) -> np.ndarray:
        """Which evaluations (of those ``among``, default all) are at their strategy's first frame
        among them."""
        if self.only:
            chosen = frames if among is None else frames[among]
            if len(chosen) == 0:
                return np.zeros(len(frames), dtype=bool)
            first = frames == chosen.min()
            return first if among is None else first & among
        at = np.arange(len(frames)) if among is None else np.flatnonzero(among)
        group, chosen = self.group()[at], frames[at]
        if len(at) == 0:
            return np.zeros(len(frames), dtype=bool)
        starts = np.flatnonzero(np.append(True, group[1:] != group[:-1]))  # group is non-decreasing
        earliest = np.repeat(np.minimum.reduceat(chosen, starts), np.diff(np.append(starts, len(at))))
        first = np.zeros(len(frames), dtype=bool)
        first[at] = chosen == earliest
        return first

    def each(self, values: np.ndarray) -> np.ndarray:
        """Each evaluation's value of its strategy, or the one value all share (it broadcasts)."""
        if self.only:
            return values[self.owner[0]]
        if len(values) and (values == values[0]).all():
            return values[0]
        return values[self.group()]


def _chains(
    which: np.ndarray,
    pairs: np.ndarray,
    times_ms: np.ndarray,
    bars_ms: np.ndarray,
    cooldown: np.ndarray,
    per_bar: np.ndarray,
    limit: int | None,
) -> tuple[np.ndarray, int | None]:
    """Of the candidates ``which`` (by pair then time, each eligible against its pair's state before),
    those that alert under a cooldown: a chain per pair, all pairs advanced together, one alert each
    per round. With a ``limit``: the rounds stop once that many alerts were found, and the earliest
    time whose alerts were not followed is returned (else None)."""
    c, t, b = pairs[which].astype(np.int64), times_ms[which], bars_ms[which]
    assert len(c) == 0 or c[-1] < 1 << (63 - _TIME_BITS), "too many pairs for the chains' keys"
    wait, bar_rule = np.broadcast_to(cooldown, len(pairs))[which], np.broadcast_to(per_bar, len(pairs))[which]
    time_keys = (c << _TIME_BITS) | t
    bar_keys = (c << _TIME_BITS) | b
    current = np.flatnonzero(np.append(True, c[1:] != c[:-1]))
    fired: list[np.ndarray] = []
    total = 0
    while len(current) and (limit is None or total < limit):
        fired.append(current)
        total += len(current)
        following = np.searchsorted(time_keys, time_keys[current] + wait[current], side="left")
        later_bar = bar_rule[current]
        if later_bar.any():
            following[later_bar] = np.maximum(
                following[later_bar], np.searchsorted(bar_keys, bar_keys[current[later_bar]] + 1, side="left")
            )
        same = following < len(which)
        same[same] = c[following[same]] == c[current[same]]
        current = following[same]
    chosen = np.sort(np.concatenate(fired)) if fired else np.empty(0, dtype=np.int64)
    pending = int(t[current].min()) if len(current) else None  # alerts from then on were not followed
    return which[chosen], pending


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
    """:func:`fire` over many ticks of one strategy that starts afresh at the first frame (a dry run,
    :mod:`ubot.scan.dryrun`). Each evaluation is one (coin, tick): ``coins`` (a row number), its time,
    ``frames`` (the tick's number: evaluations of one tick share it), its bar, and its outcome.

    Returns the indices of those that alert, by time (then coin), at most ``limit`` of them, and
    whether more would have followed (then what is returned is exactly the first ``limit``)."""
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
    rules = Rules(
        np.zeros(1, dtype=np.int64),
        np.array([FREQUENCIES[frequency]], dtype=np.int8),
        np.array([cooldown_ms], dtype=np.int64),
    )
    rows = int(coin[-1]) + 1
    no = np.zeros(1, dtype=bool)
    fired = fire(
        rules,
        no,
        no,
        np.zeros(rows, dtype=np.int64),
        Carried.fresh(rows),
        true,
        unknown,
        bar,
        time,
        frames=frame,
        pairs=coin,
        limit=limit,
    )
    return _first(order[fired.which], times_ms, coins, limit, fired.pending)


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
