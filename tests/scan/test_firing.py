import numpy as np

from tests.scan.support import spec
from ubot.notify.messages import AlertState
from ubot.scan.firing import ARMED, FiringState, decide

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
