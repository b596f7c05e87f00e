import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.scan.support import spec
from ubot.notify.messages import AlertState
from ubot.scan.firing import (
    ARMED,
    CROSSING,
    NONE,
    ONCE,
    Carried,
    FiringState,
    FiringTable,
    Rules,
    decide,
    fire,
)

COINS = np.array([1, 2, 3])


def step(s, state, matched, undefined=(False, False, False), now=1000, bar=0):
    return decide(s, state, COINS, np.array(matched), np.array(undefined), now, bar)


def test_a_new_crossing_strategy_is_armed_by_its_first_evaluation():
    s, state = spec(id=4), FiringState()
    fire, changed = step(s, state, [True, False, False], now=5)
    assert fire == [] and state.armed and state.active == {1}
    assert changed == [AlertState(4, ARMED, True), AlertState(4, 1, True)]
    assert step(s, state, [True, True, False])[0] == [2]
    assert FiringState.restore(changed).armed


def test_once_per_crossing_fires_when_it_becomes_true_only():
    s, state = spec(), FiringState(armed=True)
    assert step(s, state, [True, False, False])[0] == [1]
    assert step(s, state, [True, True, False])[0] == [2]
    assert step(s, state, [True, True, False])[0] == []
    assert step(s, state, [False, True, False])[0] == []
    assert step(s, state, [True, True, False])[0] == [1]


def test_undefined_keeps_the_previous_state():
    s, state = spec(), FiringState(armed=True)
    step(s, state, [True, False, False])
    assert step(s, state, [False, False, False], undefined=[True, False, False])[0] == []
    assert step(s, state, [True, False, False])[0] == []  # never seen false: no new crossing


def test_state_changes_are_reported_for_the_notifier_to_write():
    s, state = spec(id=9), FiringState(armed=True)
    fire, changed = step(s, state, [True, False, False], now=5000, bar=4000)
    assert changed == [AlertState(9, 1, True, 5000, 4000)]
    fire, changed = step(s, state, [False, False, False], now=6000)
    assert changed == [AlertState(9, 1, False, 5000, 4000)]
    assert step(s, state, [False, False, False])[1] == []


def test_once_per_bar_fires_again_in_the_next_bar_only():
    s, state = spec(frequency="once_per_bar"), FiringState()
    assert step(s, state, [True, False, False], bar=0)[0] == [1]
    assert step(s, state, [True, False, False], bar=0)[0] == []
    assert step(s, state, [True, False, False], bar=60_000)[0] == [1]


def test_once_fires_for_every_coin_true_at_that_tick():
    s, state = spec(frequency="once"), FiringState()
    assert step(s, state, [True, False, True])[0] == [1, 3]


def test_cooldown_holds_back_a_new_crossing():
    s, state = spec(cooldown_s=60), FiringState(armed=True)
    assert step(s, state, [True, False, False], now=0)[0] == [1]
    step(s, state, [False, False, False], now=10_000)
    assert step(s, state, [True, False, False], now=20_000)[0] == []  # crossed inside the cooldown
    step(s, state, [False, False, False], now=61_000)
    assert step(s, state, [True, False, False], now=70_000)[0] == [1]


def test_restore_from_rows():
    state = FiringState.restore([AlertState(1, 5, True, 100, 60), AlertState(1, 6, False, 50, None)])
    assert state.active == {5} and state.fired_at == {5: 100, 6: 50} and state.fired_bar == {5: 60}


def test_once_never_fires_again_after_its_state_says_it_fired():
    s = spec(frequency="once")
    restored = FiringState.restore([AlertState(1, 3, False, 500, 0)])
    assert step(s, restored, [True, True, True])[0] == []


# --- one implementation: the live table tick by tick is fire() over all the ticks at once ---------


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 3))
def test_the_rules_over_many_ticks_at_once_fire_as_tick_by_tick(seed: int, warmup: int) -> None:
    """Several strategies (every frequency, with and without a cooldown) over the same coins: the
    table run tick by tick (what the live Scanner does) and :func:`fire` over every tick at once (what
    a dry run does), from the same state (after ``warmup`` ticks of the table, so some strategies are
    armed, some pairs active, some fired), raise the same alerts and end in the same state."""
    rng = np.random.default_rng(seed)
    strategies, coins, ticks = 6, 4, 12
    ids = np.arange(1, strategies + 1, dtype=np.int64)
    rules = Rules(
        ids,
        rng.integers(0, 3, strategies).astype(np.int8),  # CROSSING, PER_BAR, ONCE
        rng.choice([0, 60_000, 150_000], strategies).astype(np.int64),
    )
    coin_ids = np.arange(1, coins + 1, dtype=np.int64)
    counts = np.full(strategies, coins)

    def tick(k: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        time_ms = 1_700_000_040_000 + 60_000 * k
        matched = rng.random(strategies * coins) < 0.5
        undefined = ~matched & (rng.random(strategies * coins) < 0.2)
        return time_ms, np.full(strategies, time_ms - time_ms % 120_000, dtype=np.int64), matched, undefined

    table = FiringTable()
    for k in range(warmup):
        time_ms, bars, matched, undefined = tick(k)
        table.decide(rules, bars, counts, np.tile(coin_ids, strategies), matched, undefined, time_ms)
    before = [table.state_of(int(i)) for i in ids]
    pair_state = [(state, c) for state in before for c in coin_ids.tolist()]
    carried = Carried(
        np.array([c in s.active for s, c in pair_state]),
        np.array([s.fired_at.get(c, NONE) for s, c in pair_state], dtype=np.int64),
        np.array([s.fired_bar.get(c, NONE) for s, c in pair_state], dtype=np.int64),
    )
    armed = np.array([s.armed for s in before])
    spent = (rules.frequency == ONCE) & np.array([bool(s.fired_at) for s in before])

    expected, outcomes = set(), []
    for k in range(warmup, warmup + ticks):
        time_ms, bars, matched, undefined = tick(k)
        outcomes.append((time_ms, bars, matched, undefined))
        fire_mask, _ = table.decide(
            rules, bars, counts, np.tile(coin_ids, strategies), matched, undefined, time_ms
        )
        expected |= {(k - warmup, int(p)) for p in np.flatnonzero(fire_mask)}

    # every evaluation by pair (strategy, then coin), then tick
    pairs = np.repeat(np.arange(strategies * coins), ticks)
    frames = np.tile(np.arange(ticks), strategies * coins)
    pick = frames * strategies * coins + pairs  # where each evaluation is in the ticks' arrays
    matched = np.concatenate([o[2] for o in outcomes])[pick]
    undefined = np.concatenate([o[3] for o in outcomes])[pick]
    times = np.array([o[0] for o in outcomes], dtype=np.int64)[frames]
    bars = np.array([o[1][0] for o in outcomes], dtype=np.int64)[frames]
    owner = np.repeat(np.arange(strategies), coins)
    fired = fire(
        rules, armed, spent, owner, carried, matched, undefined, bars, times, frames=frames, pairs=pairs
    )

    assert {(int(frames[i]), int(pairs[i])) for i in fired.which} == expected
    after = [table.state_of(int(i)) for i in ids]
    for p, (state, c) in enumerate((s, c) for s in after for c in coin_ids.tolist()):
        if rules.frequency[p // coins] == CROSSING:
            assert fired.after.active[p] == (c in state.active)
        assert fired.after.fired_at[p] == state.fired_at.get(c, NONE)
        assert fired.after.fired_bar[p] == state.fired_bar.get(c, NONE)
