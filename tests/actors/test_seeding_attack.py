"""Issue 12: one account adding strategies with many new indicator series must not delay anybody
else's alerts. The attacker's seed is held in the middle of reading the stored history (its loader
waits on an event the test sets), and another user's strategy still fires on the very next tick;
once the seed is done, the attacker's strategies are evaluated from the next tick, starting fresh
(armed, no spurious crossing). Every wait is for a message; no timing is asserted."""

from __future__ import annotations

import queue
import threading

from tests.actors.test_scanner import COINS, WAIT, Stand, _next
from tests.scan.support import MINUTE, T0, candles, snapshot, spec
from ubot.actors.scanner import Scanner
from ubot.messages import Candled
from ubot.notify.messages import ScanOutcome
from ubot.scan.messages import ScannerStats, StrategiesChanged, StrategyErrors
from ubot.schedule import Tick

VICTIM, ATTACKER = 7, 8
HISTORY = 120  # stored minutes of every coin (rsi(91) needs 92)


def test_another_users_strategy_fires_on_the_next_tick_while_an_account_seeds_many_series():
    release = threading.Event()
    asked: queue.Queue = queue.Queue()

    def load(timeframe: str, after_ms: int | None, before_ms: int):
        stored = [(c, T0 + k * MINUTE, 10.0 + (k % 7) + c) for c, _ in COINS for k in range(HISTORY)]
        first = [candles(timeframe, [r for r in stored if r[0] == 1 and r[1] < before_ms])]
        rest = [candles(timeframe, [r for r in stored if r[0] != 1 and r[1] < before_ms])]
        yield from first
        asked.put(timeframe)
        if not release.is_set():  # the victim's seed passes; the attacker's is held here
            assert release.wait(WAIT)
        yield from rest

    told: queue.Queue = queue.Queue()
    notes: queue.Queue = queue.Queue()
    monitor_q: queue.Queue = queue.Queue()
    victim = spec(1, "rsi(14) > 0 and price > 25", user_id=VICTIM)
    users = Stand.start(told, [victim])
    notifier, monitor = Stand.start(notes), Stand.start(monitor_q)
    scanner = Scanner.start(2, users=users, notifier=notifier, monitor=monitor, load=load, now_ms=lambda: T0)
    number = 0

    def tick(price: float) -> ScannerStats:
        nonlocal number
        number += 1
        ts = T0 + HISTORY * MINUTE + number * 1000
        snap = snapshot(ts, COINS, price=[price] * len(COINS))
        opened = {"1m": candles("1m", [(c, ts - ts % MINUTE, price) for c, _ in COINS])}
        scanner.tell(Candled(Tick(number, ts, ts), snap, "t", number, open_candles=opened))
        return _next(monitor_q, ScannerStats)

    def alerts() -> list[tuple[int, int]]:
        notifier.ask("flush-marker", timeout=WAIT)
        found = []
        while not notes.empty():
            item = notes.get_nowait()
            if isinstance(item, ScanOutcome):
                found += [(a.strategy_id, a.coin_id) for a in item.alerts]
        return found

    try:
        release.set()  # the victim's seed passes
        first = tick(20.0)  # the victim's rsi(14) is asked for: seeded in the background
        assert first.last_evaluated == 0
        assert asked.get(timeout=WAIT) == "1m"
        seeding = first.seeding
        while seeding:  # stats are sent when a seed is merged
            seeding = _next(monitor_q, ScannerStats).seeding
        assert tick(20.0).last_evaluated == 1  # armed (false: price 20)
        release.clear()
        attack = tuple(
            spec(100 + k, " or ".join(f"rsi({2 + 10 * k + j}) < 0" for j in range(10)), user_id=ATTACKER)
            for k in range(9)
        )
        scanner.tell(StrategiesChanged(ATTACKER, attack))
        held = tick(30.0)  # the attacker's 90 series are asked for; their seed is held mid-read
        assert asked.get(timeout=WAIT) == "1m"
        assert held.seeding == 9 and held.last_evaluated == 1
        assert alerts() == [(1, c) for c, _ in COINS]  # the victim fired on this very tick
        waiting = [m for m in _drain(told) if isinstance(m, StrategyErrors)]
        said = {i: e for m in waiting for i, e in m.errors.items()}
        assert set(said) >= {100 + k for k in range(9)}
        assert all("not evaluated yet" in said[100 + k] for k in range(9))
        assert tick(20.0).seeding == 9  # still held: the scans go on without it
        release.set()
        while _next(monitor_q, ScannerStats).seeding:
            pass
        live = tick(20.0)
        assert live.seeding == 0 and live.last_evaluated == 10  # the attacker's strategies too
        alerts()
        assert tick(30.0).last_evaluated == 10
        assert [a for a in alerts() if a[0] >= 100] == []  # fresh: no spurious crossing
        cleared = [m for m in _drain(told) if isinstance(m, StrategyErrors)]
        assert {i: e for m in cleared for i, e in m.errors.items() if i >= 100} == {
            100 + k: None for k in range(9)
        }
    finally:
        release.set()
        for ref in (scanner, users, notifier, monitor):
            ref.stop()


def _drain(q: queue.Queue) -> list:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out
