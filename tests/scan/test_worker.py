"""A worker's strategies evaluated over a frame: shared indicators, scopes, alerts, errors."""

import numpy as np
import pytest

from tests.scan.support import MINUTE, T0, candles, snapshot, spec
from ubot.notify.messages import AlertState, DeliveryTarget
from ubot.rules import IndicatorCall
from ubot.scan.firing import ARMED, FiringState
from ubot.scan.planner import ScanPlanner
from ubot.scan.spec import UserStrategies
from ubot.scan.worker import ScanWorker

COINS = [(1, "BTC"), (2, "ETH"), (3, "SOL"), (4, "ETH")]  # a second "ETH" ranks lower


def setup(*specs, workers=1, armed=True):
    planner = ScanPlanner(workers)
    planner.set_user(7, specs)
    worker = ScanWorker()
    worker.replace_user(7, specs)
    if armed:  # as if evaluated before, with every coin false (a fresh strategy's first tick only arms it)
        worker.restore([AlertState(s.id, ARMED, True) for s in specs])
    return planner, worker


def tick(planner, worker, ts, prices, *, closed=(), number=1, **columns):
    snap = snapshot(ts, COINS, price=prices, **columns)
    open_rows = candles("1m", [(cid, ts - ts % MINUTE, p) for (cid, _), p in zip(COINS, prices)])
    planner.update_candles(ts, {"1m": candles("1m", closed)} if closed else {}, {"1m": open_rows})
    frame = planner.frame(number, snap)
    return worker.scan(frame), frame


def test_an_alert_carries_the_values_the_text_and_the_targets():
    s = spec(
        condition="price > 100 and percent_change_24h < -5",
        deliveries=(DeliveryTarget("webhook", "http://x"),),
        template="{symbol} {value:percent_change_24h}",
        quiet_hours="22:00-07:00",
        timezone="Europe/Berlin",
        muted_until_ms=T0 + 3_600_000,
    )
    planner, worker = setup(s)
    result, _ = tick(planner, worker, T0, [150, 50, 200, 300], percent_change_24h=[-10, -10, 1, -10])
    assert [a.symbol for a in result.alerts] == ["BTC", "ETH"]
    alert = result.alerts[0]
    assert alert.values == {"price": 150.0, "percent_change_24h": -10.0}
    assert alert.coin_id == 1 and alert.fired_at_ms == T0 and alert.bar_open_ms == T0
    assert alert.deliveries == s.deliveries
    # What its delivery is held by (notify/outbox.py: hold_until): quiet hours and the /mute.
    assert (alert.quiet_hours, alert.timezone, alert.muted_until_ms) == (
        "22:00-07:00",
        "Europe/Berlin",
        T0 + 3_600_000,
    )
    # What the Notifier words the alert with (ubot/notify/words.py): the snapshot's name and price.
    assert (alert.name, alert.price, alert.currency) == ("Btc", 150.0, "USD")
    assert alert.template == "{symbol} {value:percent_change_24h}"  # the strategy's own words
    assert result.states == [AlertState(1, 1, True, T0, T0), AlertState(1, 4, True, T0, T0)]


def test_symbols_scope_takes_the_best_ranked_coin_of_a_symbol():
    planner, worker = setup(spec(symbols=("ETH", "DOGE"), top_n=None))
    result, frame = tick(planner, worker, T0, [1000, 1000, 1000, 1000])
    assert [a.coin_id for a in result.alerts] == [2]
    assert frame.ids.tolist() == [2]  # the frame holds only coins some strategy looks at


def test_top_n_scope():
    planner, worker = setup(spec(top_n=2))
    result, _ = tick(planner, worker, T0, [1000, 1000, 1000, 1000])
    assert [a.coin_id for a in result.alerts] == [1, 2]


def test_indicators_come_from_the_candle_history_and_the_open_candle():
    planner, worker = setup(spec(condition="price > sma(3)"))
    history = [(cid, T0 + k * MINUTE, 10.0) for k in range(2) for cid, _ in COINS]
    result, frame = tick(planner, worker, T0 + 2 * MINUTE, [12, 9, 10, 11], closed=history)
    # sma(3) = mean(10, 10, latest price) -> price > sma when price > 10
    assert [a.coin_id for a in result.alerts] == [1, 4]
    assert result.alerts[0].values["sma(3)"] == pytest.approx(32 / 3)


def test_missing_history_is_an_error_for_the_owner_not_an_exception():
    planner, worker = setup(spec(condition="rsi(14) < 30"))
    result, _ = tick(planner, worker, T0, [1, 2, 3, 4])
    assert result.alerts == [] and result.errors == {1: "rsi(14) needs 15 candles of history"}
    again, _ = tick(planner, worker, T0 + 1000, [1, 2, 3, 4], number=2)
    assert again.errors == {}  # reported once, until it changes


def test_same_condition_and_scope_is_evaluated_once_per_tick():
    a, b = spec(1, "price > 10"), spec(2, "price > 10")
    planner, worker = setup(a, b)
    result, frame = tick(planner, worker, T0, [20, 20, 20, 20])
    assert result.evaluated == 2 and len(frame.results) == 1 and len(result.alerts) == 8


def test_once_strategy_disables_itself_after_firing():
    planner, worker = setup(spec(frequency="once"))
    result, _ = tick(planner, worker, T0, [20, 1, 1, 1])
    assert result.disable == [1] and len(result.alerts) == 1 and len(worker) == 0


def test_bar_close_strategies_wait_for_a_closed_candle():
    s = spec(condition="change(1) > 5", frequency="once_per_bar_close")
    planner, worker = setup(s)
    first = [(cid, T0, 100.0) for cid, _ in COINS]
    result, _ = tick(planner, worker, T0 + 30_000, [200, 200, 200, 200], closed=first)
    assert result.evaluated == 0  # the first frame: no bar has closed since a previous one
    second = [(cid, T0 + MINUTE, p) for (cid, _), p in zip(COINS, [110, 100, 104, 120])]
    result, _ = tick(planner, worker, T0 + 2 * MINUTE, [1, 1, 1, 1], closed=second, number=2)
    assert [a.coin_id for a in result.alerts] == [1, 4] and result.alerts[0].bar_open_ms == T0 + MINUTE


def test_expired_strategies_are_not_evaluated():
    planner, worker = setup(spec(expires_at_ms=T0))
    result, _ = tick(planner, worker, T0, [20, 20, 20, 20])
    assert result.evaluated == 0


def test_the_planner_alone_decides_when_the_firing_state_starts_afresh():
    """New rules, or leaving the scan (disabled, deleted, a ``once`` that fired) forget the state;
    coming back after leaving finds none; other edits keep it."""
    planner = ScanPlanner(2)
    planner.set_all([UserStrategies(7, (spec(1), spec(2), spec(3, frequency="once")))])

    def forgets(*specs):
        return {w: m.forget for w, m in planner.set_user(7, specs).items() if m.forget}

    assert forgets(spec(1, name="renamed", cooldown_s=60), spec(2), spec(3, frequency="once")) == {}
    assert forgets(spec(1, "price > 15"), spec(2), spec(3, frequency="once")) == {1: (1,)}  # new rules
    assert forgets(spec(1, "price > 15"), spec(3, frequency="once")) == {0: (2,)}  # 2 disabled
    assert forgets(spec(1, "price > 15"), spec(2), spec(3, frequency="once")) == {}  # back: nothing saved
    planner.retire(3)  # the once strategy fired; its owner disables it
    assert 3 not in planner.specs
    assert forgets(spec(1, "price > 15"), spec(2)) == {1: (3,)}

    worker = ScanWorker()
    worker.replace_user(7, [spec(1)])
    worker.restore([AlertState(1, ARMED, True), AlertState(1, 5, True, T0, T0)])
    worker.replace_user(7, [spec(1, "price > 15")], forget=(1,))
    assert worker.entries[1].state == FiringState() and worker.entries[1].condition.text == "price > 15"


def test_restored_state_prevents_a_second_alert_after_a_restart():
    planner, worker = setup(spec())
    first, _ = tick(planner, worker, T0, [20, 1, 1, 1])
    fresh = ScanWorker()
    fresh.replace_user(7, [spec()])
    fresh.restore([AlertState(1, ARMED, True), *first.states])
    again, _ = tick(planner, fresh, T0 + MINUTE, [20, 1, 1, 1], number=2)
    assert again.alerts == []


def test_dropping_a_users_strategies():
    planner, worker = setup(spec(1), spec(2))
    worker.replace_user(7, [spec(2)])
    assert list(worker.entries) == [2]


def test_routing_is_stable_by_id():
    planner = ScanPlanner(10)
    shares = {w: m.users[7] for w, m in planner.set_user(7, [spec(3), spec(13), spec(4)]).items()}
    assert [s.id for s in shares[3]] == [3, 13] and [s.id for s in shares[4]] == [4] and shares[0] == ()
    assert planner.restart(3).users == {7: (spec(3), spec(13))}


def test_history_is_loaded_for_a_timeframe_when_a_strategy_needs_it():
    asked = []

    def load(timeframe, after, before):
        asked.append((timeframe, after, before))
        return [candles(timeframe, [(1, before - k * 3_600_000, 5.0 + k) for k in (1, 2, 3)])]

    planner = ScanPlanner(1, load)
    planner.set_user(7, [spec(condition="ema(3) > 1", timeframe="1h")])
    planner.update_candles(T0 + 10, {}, {})
    assert asked == [("1h", None, T0)]  # every stored candle
    history = planner.histories["1h"]
    assert history.value(IndicatorCall("ema", (3,)), history.rows_for(np.array([1])), closed_only=True) == [
        7.0
    ]


def test_a_fresh_crossing_strategy_only_arms_on_its_first_tick():
    planner, worker = setup(spec(), armed=False)
    first, _ = tick(planner, worker, T0, [20, 1, 20, 1])
    assert first.alerts == [] and AlertState(1, ARMED, True) in first.states
    second, _ = tick(planner, worker, T0 + 1000, [20, 20, 20, 1], number=2)
    assert [a.coin_id for a in second.alerts] == [2]


def test_a_restarted_worker_is_told_again_the_forgets_no_finished_scan_confirmed():
    planner = ScanPlanner(1)
    planner.set_user(7, [spec(1), spec(2)])
    planner.set_user(7, [spec(1, "price > 15"), spec(2)])
    assert planner.restart(0).forget == (1,)  # its predecessor may have died before handling it
    planner.scan_started()  # the frame goes behind the forget of 1...
    planner.set_user(7, [spec(1, "price > 15"), spec(2, "price > 15")])  # ...and before that of 2
    planner.scan_done(0)
    assert planner.restart(0).forget == (2,)
    planner.scan_started()
    planner.scan_done(0)
    assert planner.restart(0).forget == ()
