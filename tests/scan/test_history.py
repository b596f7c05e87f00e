"""A timeframe's indicator history: folding closed candles, the open candle's view, and a restart
(the state rebuilt from every stored candle at once) equal to the state advanced candle by candle."""

import numpy as np
import talib

from tests.scan.support import MINUTE, T0, candles, snapshot, spec
from tests.support.trackers import assert_same_state
from ubot.market.candles import CandleRows
from ubot.rules import IndicatorCall
from ubot.scan.frame import Plan
from ubot.scan.history import IndicatorHistory
from ubot.scan.planner import ScanPlanner

RSI = IndicatorCall("rsi", (3,))
CALLS = [
    RSI,
    IndicatorCall("ema", (5,)),
    IndicatorCall("macd"),
    IndicatorCall("macd_signal"),
    IndicatorCall("bb_upper", (10, 2.0)),
    IndicatorCall("lowest", (4,)),
    IndicatorCall("change", (6,)),
]


def market(seed: int, coins: int = 6, minutes: int = 120) -> list[tuple[int, int, float]]:
    """(coin, open time, close): random walks with flat runs; coins listed late, delisted early, and
    missing minutes (gaps)."""
    rng = np.random.default_rng(seed)
    rows = []
    for coin in range(1, coins + 1):
        start, end = sorted(rng.integers(0, minutes, 2))
        price = 10.0 ** rng.uniform(-8, 4)
        for minute in range(start, end + 1):
            if rng.random() < 0.15:
                continue  # a gap
            if rng.random() > 0.3:
                price *= 1 + rng.normal(0, 0.02)
            rows.append((coin, T0 + minute * MINUTE, price))
    return rows


def values(history: IndicatorHistory, ids: np.ndarray, closed_only: bool) -> dict:
    rows = history.rows_for(ids)
    return {call: history.value(call, rows, closed_only=closed_only) for call in CALLS}


def test_a_restart_rebuilds_the_state_advanced_live():
    rows = market(1)
    ids = np.arange(1, 8)
    live = IndicatorHistory("1m", CALLS, capacity=2)
    for minute in sorted({t for _, t, _ in rows}):
        live.add_closed(candles("1m", [r for r in rows if r[1] == minute]))
    rebuilt = IndicatorHistory("1m", CALLS)
    assert rebuilt.add_closed(candles("1m", rows[::-1])) == len(rows)
    for closed_only in (True, False):
        if not closed_only:
            for history in (live, rebuilt):
                history.set_open(candles("1m", [(c, T0 + 200 * MINUTE, 1.5) for c in range(1, 7)]))
        a, b = values(live, ids, closed_only), values(rebuilt, ids, closed_only)
        for call in CALLS:
            np.testing.assert_allclose(a[call], b[call], rtol=1e-12, equal_nan=True, err_msg=str(call))
            assert np.isnan(a[call][-1])  # coin 7 has no history


def test_each_coin_equals_ta_lib_over_its_whole_history():
    rows = market(2)
    history = IndicatorHistory("1m", CALLS)
    history.add_closed(candles("1m", rows))
    for coin in range(1, 7):
        closes = np.array([p for c, _, p in rows if c == coin])
        got = history.value(RSI, history.rows_for(np.array([coin])), closed_only=True)[0]
        expected = talib.RSI(closes, 3)[-1] if len(closes) > 3 else np.nan
        if len(closes) > 3 and np.ptp(closes[-40:]) == 0 and np.ptp(closes) == 0:
            expected = 50.0
        np.testing.assert_allclose(got, expected, rtol=1e-9, equal_nan=True)


def test_old_and_repeated_candles_are_ignored_so_loads_may_overlap():
    history = IndicatorHistory("1m", [IndicatorCall("change", (1,))])
    assert history.add_closed(candles("1m", [(1, T0, 1.0), (1, T0 + MINUTE, 2.0)])) == 2
    overlap = [(1, T0 + MINUTE, 2.0), (1, T0, 1.0), (1, T0 + 2 * MINUTE, 3.0), (1, T0 + 2 * MINUTE, 3.0)]
    assert history.add_closed(candles("1m", overlap)) == 1
    rows = history.rows_for(np.array([1]))
    assert history.value(IndicatorCall("change", (1,)), rows, closed_only=True)[0] == 50.0


def test_the_open_candle_is_the_newest_candle_of_the_open_view():
    call = IndicatorCall("sma", (3,))
    history = IndicatorHistory("1m", [call])
    history.add_closed(candles("1m", [(1, T0, 1.0), (1, T0 + MINUTE, 2.0)]))
    rows = history.rows_for(np.array([1, 99]))
    assert np.isnan(history.value(call, rows, closed_only=True)).all()  # 2 closed candles of 3
    history.set_open(candles("1m", [(1, T0 + 2 * MINUTE, 6.0)]))
    opened = history.value(call, rows, closed_only=False)
    assert opened[0] == 3.0 and np.isnan(opened[1])


def loader(rows: list[tuple[int, int, float]], reads: list):
    def load(timeframe: str, after_ms: int | None, before_ms: int) -> list[CandleRows]:
        reads.append((timeframe, before_ms))
        start = -1 if after_ms is None else after_ms
        return [
            candles(timeframe, [r for r in rows if start <= r[1] < before_ms and r[0] == c])
            for c in (1, 2, 3)
        ]

    return load


def test_a_new_call_is_seeded_from_every_stored_candle():
    rows = market(3, coins=3, minutes=300)
    reads: list = []
    planner = ScanPlanner(1, loader(rows, reads))
    planner.plan = Plan(calls={"1m": frozenset([RSI])})
    now = T0 + 300 * MINUTE + 5_000
    planner.update_candles(now, {}, {})
    assert len(reads) == 1
    planner.update_candles(now + 1_000, {}, {})
    assert len(reads) == 1  # nothing new: no read
    ema = IndicatorCall("ema", (50,))
    planner.plan = Plan(calls={"1m": frozenset([RSI, ema])})
    planner.update_candles(now + 2_000, {}, {})
    assert reads[-1] == ("1m", T0 + 300 * MINUTE) and len(reads) == 2
    history = planner.histories["1m"]
    for coin in range(1, 4):
        closes = np.array([p for c, _, p in rows if c == coin])
        got = history.value(ema, history.rows_for(np.array([coin])), closed_only=True)[0]
        expected = talib.EMA(closes, 50)[-1] if len(closes) >= 50 else np.nan
        np.testing.assert_allclose(got, expected, rtol=1e-9, equal_nan=True)


def test_a_coin_entering_the_watched_coins_has_its_whole_history():
    """The state covers every coin with candles, watched or not: a coin that enters a strategy's
    top 1 later has the value over its whole history at once."""
    planner = ScanPlanner(1)
    planner.set_user(7, [spec(condition="rsi(3) > 0", top_n=1)])
    rng = np.random.default_rng(8)
    prices = {coin: 10.0 * coin * np.cumprod(1 + rng.normal(0, 0.03, 40)) for coin in (1, 2, 3)}
    for k in range(40):
        ts = T0 + k * MINUTE + 30_000
        closed = [(c, T0 + (k - 1) * MINUTE, float(p[k - 1])) for c, p in prices.items()] if k else []
        opened = [(c, T0 + k * MINUTE, float(p[k])) for c, p in prices.items()]
        planner.update_candles(
            ts, {"1m": candles("1m", closed)} if closed else {}, {"1m": candles("1m", opened)}
        )
        order = [(1, "A"), (2, "B"), (3, "C")] if k < 30 else [(3, "C"), (1, "A"), (2, "B")]
        frame = planner.frame(k + 1, snapshot(ts, order, price=[float(prices[c][k]) for c, _ in order]))
        assert frame.ids.tolist() == [order[0][0]]
    value = frame.indicators[("1m", False, IndicatorCall("rsi", (3,)))]
    np.testing.assert_allclose(value, talib.RSI(prices[3], 3)[-1:], rtol=1e-9)


def test_the_start_up_load_seeds_what_folding_candle_by_candle_leaves():
    """Every stored candle at once (coins without state: seeded, ``Tracker.seed``) against the same
    candles a minute at a time (the live fold): the same state (tests/support/trackers.py), on random
    walks with flat runs, gaps, coins listed late and prices from 1e-8 to 1e4."""
    rows = market(2, coins=20, minutes=400)
    live = IndicatorHistory("1m", CALLS)
    for minute in sorted({t for _, t, _ in rows}):
        live.add_closed(candles("1m", [r for r in rows if r[1] == minute]))
    rebuilt = IndicatorHistory("1m", CALLS)
    assert rebuilt.add_history([candles("1m", rows[: len(rows) // 2]), candles("1m", rows[len(rows) // 2 :])])
    ids = np.unique([c for c, _, _ in rows])
    assert_same_state(rebuilt.tracker, rebuilt.rows_for(ids), live.tracker, live.rows_for(ids))
    np.testing.assert_array_equal(
        rebuilt.last_closed[rebuilt.rows_for(ids)], live.last_closed[live.rows_for(ids)]
    )
