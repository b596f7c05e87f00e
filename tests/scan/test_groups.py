"""One evaluation per condition shape: the grouped evaluation and the firing decided over its arrays
give exactly what each strategy alone would, and a lifted literal is a number, never code."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.scan.support import MINUTE, T0, candles, snapshot, spec
from ubot.notify.messages import AlertState
from ubot.rules import compile_condition
from ubot.rules.compiler import Evaluator
from ubot.scan import groups
from ubot.scan.firing import ARMED, FREQUENCIES, FiringState
from ubot.scan.planner import ScanPlanner
from ubot.scan.worker import ScanWorker

SYMBOLS = ["BTC", "ETH", "SOL", "ETH", "ADA", "XRP", "DOT", "BTC"]  # repeated symbols rank lower
COINS = [(i + 1, s) for i, s in enumerate(SYMBOLS)]
#: Shapes with a blank for each literal; some take undefined inputs (no history, NaN fields).
SHAPES = [
    "price > {}",
    "price > {} and percent_change_24h < {}",
    "rsi(2) < {} or price / volume_24h > {}",
    "not (percent_change_24h >= {}) and btc_dominance > {}",
    "abs(percent_change_1h - {}) * 2 < {} or price ** 2 > {}",
    "sma(2) > price * {}",
    "price / (percent_change_1h - {}) > {}",
]
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

literal = st.integers(-30, 30).map(float) | st.floats(-50, 50, allow_nan=False).map(lambda x: round(x, 2))
scope = st.one_of(
    st.builds(lambda n: {"top_n": n}, st.integers(0, len(COINS))),
    st.builds(lambda s: {"symbols": tuple(s), "top_n": None}, st.lists(st.sampled_from(SYMBOLS + ["DOGE"]))),
)
strategy = st.tuples(st.integers(0, len(SHAPES) - 1), st.lists(literal, min_size=3, max_size=3), scope)
frequency = st.sampled_from(sorted(FREQUENCIES))
column = st.lists(
    st.one_of(st.none(), st.floats(-40, 40, allow_nan=False)), min_size=len(COINS), max_size=len(COINS)
)


def _specs(drawn, frequencies=None, cooldowns=None):
    specs = []
    for k, (shape, values, where) in enumerate(drawn):
        text = SHAPES[shape].format(*values[: SHAPES[shape].count("{}")])
        fields = dict(where, frequency=(frequencies or {}).get(k, "once_per_crossing"))
        specs.append(spec(k + 1, text, cooldown_s=(cooldowns or {}).get(k, 0), **fields))
    return specs


def _frame(planner, ts, columns, closed=(), number=1):
    values = {name: [np.nan if v is None else v for v in vs] for name, vs in columns.items()}
    snap = snapshot(ts, COINS, {"btc_dominance": 55.0}, **values)
    prices = values["price"]
    open_rows = candles("1m", [(cid, ts - ts % MINUTE, p) for (cid, _), p in zip(COINS, prices)])
    planner.update_candles(ts, {"1m": candles("1m", closed)} if closed else {}, {"1m": open_rows})
    return planner.frame(number, snap)


@SETTINGS
@given(st.lists(strategy, min_size=1, max_size=12), column, column, column, column)
def test_a_group_gives_each_strategy_exactly_its_own_result(drawn, price, change_1h, change_24h, volume):
    specs = _specs(drawn)
    planner = ScanPlanner(1)
    planner.set_user(7, specs)
    history = [(cid, T0 - MINUTE, 10.0 + cid) for cid, _ in COINS]
    frame = _frame(
        planner,
        T0,
        {
            "price": price,
            "percent_change_1h": change_1h,
            "percent_change_24h": change_24h,
            "volume_24h": volume,
        },
        closed=history,
    )
    assert sum(len(g) for g in frame.plan.groups) == len(specs)
    evaluator = Evaluator()
    for group in frame.plan.groups:
        result = groups.evaluate(frame, group, evaluator)
        for i, s in enumerate(group.specs):
            alone = compile_condition(s.condition)
            expected = alone.evaluate(frame.values(s, alone), coins=len(frame))
            coins = frame.scope(s)
            pairs = slice(result.offsets[i], result.offsets[i + 1])
            assert result.positions[pairs].tolist() == coins.tolist()
            assert result.matched[pairs].tolist() == expected.matched[coins].tolist()
            assert result.undefined[pairs].tolist() == expected.undefined[coins].tolist()
            assert result.errors.get(i) == expected.error_for(coins)


def test_strategies_differing_only_in_literals_share_one_evaluation():
    specs = [
        spec(1, "rsi(14) < 28"),
        spec(2, "rsi(14) < 30.5"),
        spec(3, "rsi(7) < 28"),
        spec(4, "price > 67400"),
    ]
    specs.append(spec(5, "rsi(14) < 28", timeframe="1h"))
    planner = ScanPlanner(1)
    planner.set_user(7, specs)
    planner.update_candles(T0, {}, {})  # their series seeded (nothing stored): planned
    shapes = sorted(sorted(g.ids.tolist()) for g in planner.plan.groups)
    assert shapes == [[1, 2], [3], [4], [5]]  # the period selects the series: part of the shape
    group = next(g for g in planner.plan.groups if len(g) == 2)
    assert group.literals.tolist() == [[28.0], [30.5]]


def _reference(s, state: FiringState, coins, matched, undefined, now, bar):
    """The firing rules of ``ubot/scan/firing.py``'s docstring, one strategy and one coin at a time."""
    changed, fire = set(), []
    true_now = [c for c, m in zip(coins, matched) if m]
    if s.frequency == "once_per_crossing":
        falls = {c for c, m, u in zip(coins, matched, undefined) if not m and not u} & state.active
        rises = [c for c in true_now if c not in state.active]
        state.active -= falls
        state.active |= set(rises)
        changed |= falls | set(rises)
        if not state.armed:
            state.armed = True
            return [], [AlertState(s.id, ARMED, True), *(state.row(s.id, c) for c in sorted(changed))]
        candidates = rises
    elif s.frequency in ("once_per_bar", "once_per_bar_close"):
        candidates = [c for c in true_now if state.fired_bar.get(c) != bar]
    else:
        candidates = [] if state.fired_at else true_now
    for c in candidates:
        if s.cooldown_s <= 0 or c not in state.fired_at or now - state.fired_at[c] >= s.cooldown_s * 1000:
            fire.append(c)
            state.fired_at[c], state.fired_bar[c] = now, bar
    changed |= set(fire)
    return fire, [state.row(s.id, c) for c in sorted(changed)]


@SETTINGS
@given(
    st.lists(strategy, min_size=1, max_size=10),
    st.dictionaries(st.integers(0, 9), frequency),
    st.dictionaries(st.integers(0, 9), st.sampled_from([0, 60, 150])),
    st.lists(st.tuples(column, column), min_size=2, max_size=5),
)
def test_firing_state_per_strategy_is_what_it_would_be_alone(drawn, frequencies, cooldowns, ticks):
    specs = _specs(drawn, frequencies, cooldowns)
    planner = ScanPlanner(2)
    planner.set_user(7, specs)
    workers = [ScanWorker(w, 2) for w in range(2)]
    for w, worker in enumerate(workers):
        worker.replace_user(7, [s for s in specs if planner.owner(s.id) == w])
    states = {s.id: FiringState() for s in specs}
    for number, (price, change_24h) in enumerate(ticks, start=1):
        ts = T0 + number * MINUTE  # a new bar each tick
        closed = [(cid, ts - 2 * MINUTE, 10.0 + cid) for cid, _ in COINS]
        frame = _frame(planner, ts, {"price": price, "percent_change_24h": change_24h}, closed, number)
        got = [worker.scan(frame) for worker in workers]
        alerts = sorted((a.strategy_id, a.coin_id) for r in got for a in r.alerts)
        rows = sorted((r for g in got for r in g.states), key=lambda r: (r.strategy_id, r.coin_id))
        expected_alerts, expected_rows = [], []
        for s in specs:
            if s.id not in states:  # a ``once`` strategy that fired is gone
                continue
            if s.on_bar_close and "1m" not in frame.closed_bar:  # waits for a closed candle
                continue
            condition = compile_condition(s.condition)
            outcome = condition.evaluate(frame.values(s, condition), coins=len(frame))
            coins = frame.scope(s)
            bar = frame.closed_bar["1m"] if s.on_bar_close else frame.bar_open["1m"]
            fire, changed = _reference(
                s,
                states[s.id],
                frame.ids[coins].tolist(),
                outcome.matched[coins],
                outcome.undefined[coins],
                ts,
                bar,
            )
            expected_alerts += [(s.id, c) for c in fire]
            expected_rows += changed
            if fire and s.frequency == "once":
                del states[s.id]
        assert alerts == sorted(expected_alerts)
        assert rows == expected_rows
        for worker in workers:
            for strategy_id, entry in worker.entries.items():
                assert entry.state == states[strategy_id]
