"""Issue 14: a flat run longer than any window must not change a recursive indicator.

Closes 100, 101 ... 119, then 32 candles at 119, then 119.5. Wilder's RSI(2) stays at 100 through the
flat run (the average loss is 0, the average gain only decays), so ``rsi(2) > 90`` is true from its
third candle on and crosses exactly once. Computed over a window of the last closes instead, the
window becomes flat, the RSI 50, and the +0.5 move fires a second, spurious crossing.
"""

from __future__ import annotations

import queue

import numpy as np
import pykka
import talib

from tests.actors.test_scanner import Stand, _next
from tests.scan.support import MINUTE, T0, candles, snapshot, spec
from ubot.actors.scanner import Scanner
from ubot.messages import Candled
from ubot.notify.messages import AlertState, ScanOutcome
from ubot.rules import IndicatorCall
from ubot.scan.firing import ARMED
from ubot.scan.messages import ScannerStats
from ubot.scan.planner import ScanPlanner
from ubot.scan.worker import ScanWorker
from ubot.schedule import Tick

COINS = [(1, "BTC")]
FLAT_RUN = [*np.arange(100.0, 120.0), *[119.0] * 32, 119.5]


def run(prices: list[float]) -> tuple[list[int], list[float]]:
    """One tick per minute, 30 s into it: the previous minute's candle closed, this one open at
    ``prices[k]``. Returns the ticks that alerted and rsi(2) on the open candle at each tick."""
    s = spec(condition="rsi(2) > 90")
    planner, worker = ScanPlanner(1), ScanWorker()
    planner.set_user(7, [s])
    worker.replace_user(7, [s])
    worker.restore([AlertState(s.id, ARMED, True)])
    fired, rsi = [], []
    for k, price in enumerate(prices):
        ts = T0 + k * MINUTE + 30_000
        closed = {"1m": candles("1m", [(1, T0 + (k - 1) * MINUTE, prices[k - 1])])} if k else {}
        opened = {"1m": candles("1m", [(1, T0 + k * MINUTE, price)])}
        planner.update_candles(ts, closed, opened)
        frame = planner.frame(k + 1, snapshot(ts, COINS, price=[price]))
        if worker.scan(frame).alerts:
            fired.append(k)
        rsi.append(float(frame.indicators[("1m", False, IndicatorCall("rsi", (2,)))][0]))
    return fired, rsi


def test_a_flat_run_does_not_fire_a_second_crossing():
    fired, _ = run(FLAT_RUN)
    assert fired == [2]


def test_rsi_after_a_flat_run_equals_ta_lib_over_the_whole_history():
    _, rsi = run(FLAT_RUN)
    expected = talib.RSI(np.array(FLAT_RUN), 2)
    np.testing.assert_allclose(rsi[2:], expected[2:], rtol=1e-9)
    assert np.isnan(rsi[:2]).all()  # rsi(2) needs 3 candles, the open one included


def test_through_the_scanner_actor_the_flat_run_alerts_once():
    """The real Scanner and its workers, one ``Candled`` per minute; every wait is for a message."""
    users_q, notes_q, monitor_q = queue.Queue(), queue.Queue(), queue.Queue()
    users = Stand.start(users_q, [spec(condition="rsi(2) > 90")])
    notifier = Stand.start(notes_q, states=[AlertState(1, ARMED, True)])
    monitor = Stand.start(monitor_q)
    scanner = Scanner.start(2, users=users, notifier=notifier, monitor=monitor, now_ms=lambda: T0)
    try:
        for k, price in enumerate(FLAT_RUN):
            ts = T0 + k * MINUTE + 30_000
            closed = {"1m": candles("1m", [(1, T0 + (k - 1) * MINUTE, FLAT_RUN[k - 1])])} if k else {}
            opened = {"1m": candles("1m", [(1, T0 + k * MINUTE, price)])}
            snap = snapshot(ts, COINS, price=[price])
            scanner.tell(
                Candled(Tick(k + 1, ts, ts), snap, "test", k + 1, open_candles=opened, closed_candles=closed)
            )
            _next(monitor_q, ScannerStats)  # that tick's scan finished
        notifier.ask("flush-marker", timeout=10)
        alerts = []
        while not notes_q.empty():
            item = notes_q.get_nowait()
            if isinstance(item, ScanOutcome):
                alerts += [(a.fired_at_ms - T0) // MINUTE for a in item.alerts]
        assert alerts == [2]
    finally:
        for ref in (scanner, users, notifier, monitor):
            ref.stop()
        assert not pykka.ActorRegistry.get_all()
