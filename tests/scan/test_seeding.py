"""New indicator series seeded off the scan path (``scan/seeding.py``), stepped by hand (no thread):
only the new series are seeded, from the whole stored history; a series added later has the values
it would have had from the start (TA-Lib's); its strategies wait outside the plan meanwhile, and
the series already held are never touched."""

from __future__ import annotations

import numpy as np
import talib

from tests.scan.support import MINUTE, T0, candles, snapshot, spec
from ubot.market.candles import CandleRows
from ubot.rules import IndicatorCall
from ubot.scan.planner import ScanPlanner
from ubot.scan.seeding import Seeder, SeedJob

RSI = IndicatorCall("rsi", (14,))
LATER = [
    IndicatorCall("ema", (30,)),
    IndicatorCall("rsi", (2,)),
    IndicatorCall("sma", (20,)),
    IndicatorCall("bb_upper", (20, 2.0)),
    IndicatorCall("highest", (48,)),
    IndicatorCall("change", (60,)),
    IndicatorCall("macd", ()),
    IndicatorCall("macd_signal", ()),
]
FIRST = "rsi(14) < 101"
LATE = (
    "ema(30) > 0 and rsi(2) >= 0 and sma(20) > 0 and bb_upper(20, 2) > 0 and highest(48) > 0 "
    "and change(60) > -100 and macd() > -1000 and macd_signal() > -1000"
)


def walks(minutes: int) -> dict[int, np.ndarray]:
    """Four coins' closes by minute: random walks, one with a long flat run, one listed late (NaN
    before)."""
    rng = np.random.default_rng(5)
    out = {}
    for coin in (1, 2, 3, 4):
        steps = 1 + rng.normal(0, 0.01, minutes)
        if coin == 3:
            steps[100:260] = 1.0
        closes = 30.0 * coin * np.cumprod(steps)
        if coin == 4:
            closes[:150] = np.nan
        out[coin] = closes
    return out


class Market:
    """Ticks 30 s into each minute close the previous minute's candle; closed candles are stored
    (``load`` reads them back, as ``models.closes.closed_candles`` does)."""

    def __init__(self, minutes: int) -> None:
        self.prices = walks(minutes)
        self.stored: list[tuple[int, int, float]] = []
        self.reads = 0

    def load(self, timeframe: str, after_ms: int | None, before_ms: int) -> list[CandleRows]:
        self.reads += 1
        low = -1 if after_ms is None else after_ms
        return [
            candles(timeframe, [r for r in self.stored if r[0] == coin and low <= r[1] < before_ms])
            for coin in (1, 2, 3, 4)
        ]

    def tick(self, planner: ScanPlanner, minute: int) -> None:
        closed = [
            (c, T0 + (minute - 1) * MINUTE, float(p[minute - 1]))
            for c, p in self.prices.items()
            if minute and not np.isnan(p[minute - 1])
        ]
        self.stored += closed
        opened = [
            (c, T0 + minute * MINUTE, float(p[minute]))
            for c, p in self.prices.items()
            if not np.isnan(p[minute])
        ]
        planner.update_candles(
            T0 + minute * MINUTE + 30_000,
            {"1m": candles("1m", closed)} if closed else {},
            {"1m": candles("1m", opened)},
        )

    def closes(self, coin: int, minute: int) -> np.ndarray:
        closes = self.prices[coin][:minute]
        return closes[~np.isnan(closes)]


def reference(call: IndicatorCall, closes: np.ndarray) -> float:
    n = call.args[0] if call.args else 0
    if call.name in ("macd", "macd_signal"):
        line, signal, _ = talib.MACD(closes, 12, 26, 9)
        return (line if call.name == "macd" else signal)[-1]
    if call.name == "bb_upper":
        return talib.BBANDS(closes, n, 2.0, 2.0)[0][-1]
    if call.name == "change":
        return (closes[-1] / closes[-1 - n] - 1) * 100 if len(closes) > n else np.nan
    if call.name == "rsi" and np.ptp(closes[-200:]) == 0:
        return 50.0
    function = {"ema": talib.EMA, "rsi": talib.RSI, "sma": talib.SMA, "highest": talib.MAX}[call.name]
    return function(closes, n)[-1]


def assert_same_series(
    planner: ScanPlanner, other: ScanPlanner, call: IndicatorCall, ids: np.ndarray
) -> np.ndarray:
    """``call``'s values for ``ids`` are the same in both planners' 1m histories (with the open
    candle and without); returns the closed candles' values."""
    got, held = planner.histories["1m"], other.histories["1m"]
    for closed_only in (False, True):
        a = got.value(call, got.rows_for(ids), closed_only=closed_only)
        b = held.value(call, held.rows_for(ids), closed_only=closed_only)
        np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True, err_msg=str(call))
    return a


def test_a_series_added_later_equals_the_series_held_from_the_start_and_ta_lib():
    market = Market(400)
    planner = ScanPlanner(2, market.load, background=True)
    always = ScanPlanner(2, market.load, background=True)  # every series from the start
    planner.set_user(7, [spec(1, FIRST)])
    always.set_user(7, [spec(1, FIRST), spec(2, LATE, user_id=8)])
    always.update_candles(T0 - MINUTE, {}, {})
    while always.seeder.step():
        pass
    for minute in range(300):
        for p in (planner, always):
            market.tick(p, minute)
        while planner.seeder.step():  # the first series' seed, in its own steps
            pass
    rsi_state = planner.histories["1m"].tracker.states[("rsi", 14)]
    planner.set_user(8, [spec(2, LATE, user_id=8)])
    market.tick(planner, 300)
    market.tick(always, 300)
    assert 2 in planner.waiting and 2 not in {i for g in planner.plan.groups for i in g.ids.tolist()}
    (job,) = planner.jobs["1m"]
    assert job.calls == frozenset(LATER) and job.owner == 8  # only the new series are seeded
    planner.seeder.units = 500
    waited = []
    for minute in range(301, 320):  # ticks go on while it seeds, a few steps at a time
        planner.seeder.step()
        for p in (planner, always):
            market.tick(p, minute)
        if 2 in planner.waiting:
            waited.append(minute)
    assert waited[:2] == [301, 302]
    while planner.seeder.step():
        pass
    market.tick(planner, 320)
    market.tick(always, 320)
    assert not planner.waiting and 2 in {i for g in planner.plan.groups for i in g.ids.tolist()}
    assert planner.histories["1m"].tracker.states[("rsi", 14)] is rsi_state  # never reseeded
    ids = np.array([1, 2, 3, 4])
    for call in [RSI, *LATER]:
        a = assert_same_series(planner, always, call, ids)
        for coin in ids.tolist():  # the closed candles' value: TA-Lib's over the whole history
            expected = reference(call, market.closes(coin, 320))
            np.testing.assert_allclose(a[coin - 1], expected, rtol=1e-9, err_msg=f"{call} coin {coin}")


def test_a_waiting_strategy_is_held_back_from_its_worker_and_its_owner_is_told():
    market = Market(60)
    planner = ScanPlanner(3, market.load, background=True)
    told = planner.set_user(7, [spec(1, "rsi(14) < 30"), spec(2, "price > 10")])
    assert [s.id for m in told.values() for specs in m.users.values() for s in specs] == [2]
    for minute in range(40):
        market.tick(planner, minute)
    notes = planner.take_notes()
    assert list(notes) == [1] and "not evaluated yet" in notes[1] and "rsi(14)" in notes[1]
    assert planner.take_told() == {}
    while planner.seeder.step():
        pass
    assert planner.merge()  # between ticks (the Scanner does it when the seeding thread says so)
    told = planner.take_told()
    assert list(told) == [1] and [s.id for s in told[1].users[7]] == [1] and told[1].forget == ()
    assert planner.take_notes() == {1: None}
    assert [s.id for s in planner.restart(1).users[7]] == [1]


def test_an_account_cannot_make_another_wait_by_seeding_more():
    """Jobs of different owners take turns step by step: a small seed ends long before a large one
    started earlier."""
    market = Market(200)
    for minute in range(200):
        market.stored += [
            (c, T0 + minute * MINUTE, float(p[minute]))
            for c, p in market.prices.items()
            if not np.isnan(p[minute])
        ]
    seeder = Seeder(units=5_000)
    large = SeedJob(
        "1m", [IndicatorCall("rsi", (n,)) for n in range(2, 40)], T0 + 200 * MINUTE, market.load, 8
    )
    small = SeedJob("1m", [IndicatorCall("ema", (9,))], T0 + 200 * MINUTE, market.load, 7)
    seeder.submit(large)
    seeder.submit(small)
    while not small.done:
        seeder.step()
    assert not large.done
    while seeder.step():
        pass
    assert seeder.take_done() == [small, large]


def test_a_strategy_deleted_while_seeding_cancels_its_seed():
    market = Market(30)
    planner = ScanPlanner(1, market.load, background=True)
    planner.set_user(8, [spec(1, "ema(12) > 0", user_id=8)])
    market.tick(planner, 10)
    (job,) = planner.jobs["1m"]
    planner.set_user(8, [])
    market.tick(planner, 11)
    assert job.cancelled and not planner.jobs["1m"] and not planner.seeder.busy()


def test_a_scanner_process_seeds_a_new_series_off_its_ticks_like_one_seeded_in_the_tick():
    """``--role scanner`` reads its ticks from the database (``ScanPlanner.replay``): a strategy
    added later waits for its series, seeded by the seeder's steps between the ticks (not in them),
    with the candles read meanwhile given to the seed; merged, the series equal those of a planner
    that seeded them in its tick."""
    market = Market(400)
    feeder = ScanPlanner(1)
    for minute in range(340):
        market.tick(feeder, minute)  # the stored candles, up to minute 339

    def stored(minute: int):
        prices = [float(market.prices[c][minute]) for c in (1, 2, 3, 4)]
        return snapshot(T0 + minute * MINUTE + 30_000, [(c, f"C{c}") for c in (1, 2, 3, 4)], price=prices)

    planner = ScanPlanner(2, market.load, background=True)
    planner.set_user(7, [spec(1, FIRST)])
    planner.replay(1, stored(300))  # the first tick of a share: seeded in it
    assert not planner.waiting
    planner.set_user(8, [spec(2, LATE, user_id=8)])
    planner.seeder.units = 500
    planner.replay(2, stored(301), wait=False)
    assert 2 in planner.waiting and planner.seeder.busy()  # asked, not seeded in the tick
    waited = []
    for number, minute in enumerate(range(302, 320), 3):
        planner.seeder.step()
        planner.replay(number, stored(minute), wait=False)
        if 2 in planner.waiting:
            waited.append(minute)
    assert waited[:2] == [302, 303]
    while planner.seeder.step():
        pass
    planner.replay(30, stored(320), wait=False)
    assert not planner.waiting and 2 in {i for g in planner.plan.groups for i in g.ids.tolist()}

    at_once = ScanPlanner(2, market.load, background=True)
    at_once.set_user(7, [spec(1, FIRST)])
    at_once.set_user(8, [spec(2, LATE, user_id=8)])
    at_once.replay(1, stored(320))
    for call in [RSI, *LATER]:
        assert_same_series(planner, at_once, call, np.array([1, 2, 3, 4]))
