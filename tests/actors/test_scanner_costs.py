"""What ``/health`` says of the scans' cost (issue 12): the indicator state's work (the candles folded
in, a history seeded from the database) is counted in the scan time, and the costliest strategies
are named by id with their cost. Time comes from an injected timer that only the loader moves."""

from __future__ import annotations

import queue

from tests.actors.test_scanner import COINS, Stand, _next
from tests.scan.support import MINUTE, T0, candles, snapshot, spec
from ubot.actors.scanner import Scanner
from ubot.messages import Candled
from ubot.scan.messages import CostlyStrategy, ScannerStats
from ubot.schedule import Tick

SEED_S = 7.0  # what the fake timer says seeding a history from the database took


class Timer:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_seeding_in_the_tick_and_folding_the_history_count_in_the_scan_time_and_costs_are_named() -> None:
    timer = Timer()
    loads: list[str] = []

    def load(timeframe: str, after_ms: int | None, before_ms: int):
        loads.append(timeframe)
        timer.now += SEED_S  # the database read and the fold of every stored candle
        stored = [(c, before_ms - k * MINUTE, 10.0 + k) for c, _ in COINS for k in range(1, 30)]
        return [candles(timeframe, stored)]

    specs = [
        spec(1, "price > 10"),  # 100 coins x 1
        spec(2, "rsi(14) < 30 or ema(9) > price", top_n=50),  # 50 x 3
        spec(3, "sma(20) > 1 and bb_upper(20, 2) > 1", symbols=("BTC", "ETH"), top_n=None),  # 2 x 2
    ]
    told: queue.Queue = queue.Queue()
    users, notifier, monitor = Stand.start(told, specs), Stand.start(queue.Queue()), Stand.start(told)
    scanner = Scanner.start(
        3,
        users=users,
        notifier=notifier,
        monitor=monitor,
        load=load,
        now_ms=lambda: T0,
        timer=timer,
        background_seeding=False,  # seeded in the tick (tests/scan/test_seeding.py: off the scan path)
    )
    try:
        ts = T0 + 1000
        opened = {"1m": candles("1m", [(c, ts - ts % MINUTE, 20.0) for c, _ in COINS])}
        scanner.tell(Candled(Tick(1, ts, ts), snapshot(ts, COINS, price=[20, 5, 30]), "t", 1, opened))
        stats = _next(told, ScannerStats)
    finally:
        for ref in (scanner, users, notifier, monitor):
            ref.stop()
    assert loads == ["1m"]
    assert stats.last_history_ms == SEED_S * 1000
    assert stats.scan_ms_p50 >= SEED_S * 1000  # the seed is part of the scan's time
    assert stats.cost == 100 + 150 + 4
    assert stats.costliest == [CostlyStrategy(2, 150), CostlyStrategy(1, 100), CostlyStrategy(3, 4)]
    assert stats.as_dict()["costliest"] == [
        {"id": 2, "cost": 150},
        {"id": 1, "cost": 100},
        {"id": 3, "cost": 4},
    ]
