"""Dry runs (``scan/dryrun.py``): hand-computed firings for designed price paths, every frequency and
the cooldown, the bounds, and the same alerts as the live Scanner's code run tick by tick over the
same replay (CandleBook -> ScanPlanner -> MarketFrame -> ScanWorker)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.scan.support import MINUTE, T0, snapshot, spec
from ubot.market.candles import CandleBook, CandleRows
from ubot.rules import compile_condition
from ubot.scan import dryrun
from ubot.scan.dryrun import DryRunSpec, NoHistory, StoredHistory
from ubot.scan.planner import ScanPlanner
from ubot.scan.spec import UserStrategies
from ubot.scan.worker import ScanWorker
from ubot.users.errors import ValidationError

COINS = ((1, "BTC"), (2, "ETH"))


def replay(prices: dict[int, list[float]], start: int = T0) -> list:
    """One snapshot a minute (at its first second), each coin's price per minute."""
    minutes = len(next(iter(prices.values())))
    coins = [c for c in COINS if c[0] in prices]
    return [
        snapshot(start + m * MINUTE + 1000, coins, price=[prices[c][m] for c, _ in coins])
        for m in range(minutes)
    ]


def stored(snapshots: list, timeframe: str) -> tuple[dict[str, list[CandleRows]], CandleBook]:
    """Every candle the OHLC stage would have stored (closed ones), per timeframe, and the book."""
    book = CandleBook()
    closed: dict[str, list[CandleRows]] = {}
    for snap in snapshots:
        update = book.apply(snap.ids, np.full(len(snap), snap.timestamp_ms), snap.column("price"))
        for tf, rows in update.closed.items():
            closed.setdefault(tf, []).append(rows)
    return closed, book


def concat(parts: list[CandleRows], timeframe: str) -> CandleRows:
    rows = [row for part in parts for row in part.rows()]
    return CandleRows.from_rows(timeframe, rows)


def history_of(snapshots: list, timeframe: str, start_ms: int) -> StoredHistory:
    closed, book = stored(snapshots, timeframe)
    minutes = concat(closed.get("1m", []) + [book.open_candles("1m")], "1m")
    warm = concat(closed.get(timeframe, []), timeframe)
    warm = warm.take(warm.open_time < int(start_ms - start_ms % dryrun.TIMEFRAMES[timeframe]))
    minutes = minutes.take(minutes.open_time >= start_ms - start_ms % MINUTE)
    ids = np.array(sorted({int(i) for s in snapshots for i in s.ids}), dtype=np.int64)
    symbols = tuple(dict(COINS)[i] for i in ids.tolist())
    return StoredHistory(
        ids, symbols, minutes, warm, (int(minutes.open_time.min()), int(minutes.last_ts.max()))
    )


def dry(snapshots: list, condition: str, start_ms: int | None = None, **rules) -> list[tuple[int, int]]:
    timeframe = rules.pop("timeframe", "1m")
    start_ms = snapshots[0].timestamp_ms if start_ms is None else start_ms
    request = DryRunSpec(
        condition=condition,
        timeframe=timeframe,
        frequency=rules.pop("frequency", "once_per_crossing"),
        cooldown_s=rules.pop("cooldown_s", 0),
        start_ms=start_ms,
        end_ms=snapshots[-1].timestamp_ms + 1,
        symbols=("BTC", "ETH"),
    )
    result = dryrun.run(request, compile_condition(condition), history_of(snapshots, timeframe, start_ms))
    return [(f.time_ms, f.coin_id) for f in result.firings]


def live(snapshots: list, condition: str, start_ms: int | None = None, **rules) -> list[tuple[int, int]]:
    """The live Scanner's code, tick by tick: candles folded, a frame per snapshot, a worker's scan. The
    strategy is there from ``start_ms`` on; before it, the ticks only store candles, which the planner
    reads back when the strategy's timeframe first appears (as a live start reads the candle table)."""
    start_ms = snapshots[0].timestamp_ms if start_ms is None else start_ms
    strategy = spec(1, condition, symbols=("BTC", "ETH"), top_n=None, **rules)
    kept: dict[str, list[CandleRows]] = {}

    def load(timeframe: str, after_ms: int | None, before_ms: int) -> list[CandleRows]:
        rows = concat(kept.get(timeframe, []), timeframe)
        low = -1 if after_ms is None else after_ms
        return [rows.take((rows.open_time >= low) & (rows.open_time < before_ms))]

    planner, worker, book = ScanPlanner(1, load), ScanWorker(), CandleBook()
    alerts, added = [], False
    for tick, snap in enumerate(snapshots):
        if snap.timestamp_ms >= start_ms and not added:
            for share in planner.set_all([UserStrategies(7, (strategy,))]).values():
                for user, specs in share.users.items():
                    worker.replace_user(user, specs, share.forget)
            added = True
        update = book.apply(snap.ids, np.full(len(snap), snap.timestamp_ms), snap.column("price"))
        for tf, rows in update.closed.items():
            kept.setdefault(tf, []).append(rows)
        planner.update_candles(snap.timestamp_ms, update.closed, update.open)
        for share in planner.take_told().values():  # its series seeded: its worker gets it
            for user, specs in share.users.items():
                worker.replace_user(user, specs, share.forget)
        if added:
            result = worker.scan(planner.frame(tick, snap))
            alerts += [(a.fired_at_ms, a.coin_id) for a in result.alerts]
        else:
            planner.framed_ms = snap.timestamp_ms
    return sorted(alerts)


def at(minute: int) -> int:
    return T0 + minute * MINUTE + 1000


# --- designed paths, hand-computed --------------------------------------------------------------

UP_DOWN = {1: [5, 11, 12, 9, 13, 14, 8, 15], 2: [20, 20, 20, 20, 20, 20, 20, 20]}


def test_once_per_crossing_arms_at_the_first_tick_and_fires_each_crossing():
    # BTC > 10 at minutes 1 (crossing), 4 (again after 3 fell), 7; ETH is true from the first tick:
    # armed, never fires.
    snaps = replay(UP_DOWN)
    assert dry(snaps, "price > 10") == [(at(1), 1), (at(4), 1), (at(7), 1)]


def test_once_fires_the_coins_true_at_the_first_tick_any_is_then_stops():
    snaps = replay({1: [5, 11, 12, 9, 13, 14, 8, 15], 2: [5, 11, 5, 5, 5, 5, 5, 5]})
    assert dry(snaps, "price > 10", frequency="once") == [(at(1), 1), (at(1), 2)]


def test_once_per_bar_fires_once_per_candle_while_true():
    snaps = replay(UP_DOWN)
    # 1m bars: every minute BTC is above 10; ETH (20) every minute.
    expected = sorted([(at(m), 1) for m in (1, 2, 4, 5, 7)] + [(at(m), 2) for m in range(8)])
    assert dry(snaps, "price > 10", frequency="once_per_bar") == expected
    # 5m bars (minutes 0-4, 5-9): once in each while true.
    expected = sorted([(at(1), 1), (at(5), 1), (at(0), 2), (at(5), 2)])
    assert dry(snaps, "price > 10", frequency="once_per_bar", timeframe="5m") == expected


def test_cooldown_holds_back_crossings_and_bars():
    snaps = replay(UP_DOWN)
    # Crossings at 1, 4, 7 with a 4-minute cooldown: 1 fires, 4 is 3 minutes later (held back and
    # not fired later), 7 is 6 minutes later.
    assert dry(snaps, "price > 10", cooldown_s=240) == [(at(1), 1), (at(7), 1)]
    # Per bar with 150 s: ETH at 0, 3 (180 s after), 6; BTC at 1, 4 (3 min), 7.
    expected = sorted([(at(m), 2) for m in (0, 3, 6)] + [(at(m), 1) for m in (1, 4, 7)])
    assert dry(snaps, "price > 10", frequency="once_per_bar", cooldown_s=150) == expected


def test_once_per_bar_close_reads_closed_candles_when_a_bar_closes():
    # 5m bars; the bar 0-4 closes at BTC 13 (> 10): evaluated at minute 5 on that close.
    snaps = replay({1: [5, 5, 5, 5, 13, 5, 5, 5, 5, 5, 5], 2: [5] * 11})
    fired = dry(snaps, "sma(1) > 10", frequency="once_per_bar_close", timeframe="5m")
    assert fired == [(at(5), 1)]


def test_indicators_on_the_open_candle_and_whole_history():
    rng = np.random.default_rng(3)
    walk = {c: list(100 * np.cumprod(1 + rng.normal(0, 0.01, 300))) for c in (1, 2)}
    snaps = replay(walk)
    for condition, rules in (
        ("rsi(14) < 40", {}),
        ("price > ema(20)", {"timeframe": "5m"}),
        ("macd() > macd_signal()", {"frequency": "once_per_bar"}),
        ("price > bb_upper(20, 2) or price < bb_lower(20, 2)", {"cooldown_s": 600}),
        ("highest(10) == price or lowest(10) == price", {"timeframe": "15m"}),
        ("change(5) > 1 and sma(30) > 0", {"frequency": "once_per_bar_close", "timeframe": "5m"}),
    ):
        start = at(120)
        expected = live(snaps, condition, start, **rules)
        assert expected, condition  # the path was designed to fire
        assert dry(snaps, condition, start, **rules) == expected, condition


def test_same_alerts_as_the_live_scanner_on_a_replay():
    rng = np.random.default_rng(11)
    walk = {c: list(50 * c * np.cumprod(1 + rng.normal(0, 0.004, 400))) for c in (1, 2)}
    snaps = replay(walk)
    condition = "rsi(14) > 60 and price > sma(20)"
    for frequency in ("once_per_crossing", "once", "once_per_bar", "once_per_bar_close"):
        for timeframe in ("1m", "5m", "15m"):
            for cooldown in (0, 300):
                rules = {"frequency": frequency, "timeframe": timeframe, "cooldown_s": cooldown}
                expected = live(snaps, condition, at(100), **rules)
                assert expected, rules  # the path was designed to fire under every rule
                assert dry(snaps, condition, at(100), **rules) == expected, rules


# --- bounds and refusals ---------------------------------------------------------------------------


def request(**changes) -> DryRunSpec:
    values = dict(
        condition="price > 1",
        timeframe="1m",
        frequency="once_per_crossing",
        cooldown_s=0,
        start_ms=T0,
        end_ms=T0 + 86_400_000,
        symbols=("BTC",),
    )
    values.update(changes)
    return DryRunSpec(**values)


def test_bounds_are_refused_naming_the_field_and_the_limit():
    condition = compile_condition("price > 1")
    with pytest.raises(ValidationError, match=f"at most {dryrun.MAX_DAYS} days") as error:
        dryrun.check(request(end_ms=T0 + (dryrun.MAX_DAYS + 1) * 86_400_000), condition)
    assert error.value.field == "end"
    with pytest.raises(ValidationError, match=f"at most at {dryrun.MAX_COINS} coins") as error:
        dryrun.check(request(symbols=None, top_n=dryrun.MAX_COINS + 1), condition)
    assert error.value.field == "top_n"
    with pytest.raises(ValidationError, match="must be after start"):
        dryrun.check(request(end_ms=T0), condition)
    with pytest.raises(ValidationError, match="volume_24h is not kept") as error:
        dryrun.check(request(), compile_condition("volume_24h > 1 and price > 2"))
    assert error.value.field == "condition"


def test_a_range_without_history_says_what_history_exists():
    snaps = replay(UP_DOWN)
    history = history_of(snaps, "1m", snaps[0].timestamp_ms)
    far = request(start_ms=T0 + 10 * 86_400_000, end_ms=T0 + 11 * 86_400_000)
    with pytest.raises(NoHistory, match="the stored history runs from 2023-11-14T00:00:00.000Z") as error:
        dryrun.run(far, compile_condition("price > 1"), history)
    assert error.value.field == "start"


def test_too_many_firings_answer_the_first_ones():
    snaps = replay(UP_DOWN)
    history = history_of(snaps, "1m", snaps[0].timestamp_ms)
    spec_ = request(frequency="once_per_bar", end_ms=snaps[-1].timestamp_ms + 1, symbols=("BTC", "ETH"))
    result = dryrun.run(spec_, compile_condition("price > 1"), history, limit=5)
    assert result.truncated and [(f.time_ms, f.coin_id) for f in result.firings] == [
        (at(0), 1),
        (at(0), 2),
        (at(1), 1),
        (at(1), 2),
        (at(2), 1),
    ]
    assert result.coins == 2 and result.candles == 16
    spec_ = request(frequency="once_per_bar", cooldown_s=60, end_ms=snaps[-1].timestamp_ms + 1)
    result = dryrun.run(spec_, compile_condition("price > 1"), history, limit=5)
    assert result.truncated and len(result.firings) == 5
    assert [f.values for f in result.firings[:1]] == [{"price": 5.0}]
