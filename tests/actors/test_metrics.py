"""The engine's metrics move where the figures arise: the Clock counts missed deadlines, the Monitor
records every finished tick and the Scanner's figures after every scan (deltas of its sums)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.scan.support import T0, snapshot
from tests.support.actors import Inbox
from tests.support.metrics import sample
from ubot.actors.clock import ClockActor
from ubot.actors.monitor import Monitor
from ubot.clocks import FakeClock
from ubot.messages import GetClockStats, GetHealth, TickDone
from ubot.scan.frame import MarketFrame, Plan
from ubot.scan.messages import ScanDone, ScannerStats
from ubot.scan.rounds import Round, ScanFigures
from ubot.schedule import Tick

WAIT = 10.0
START = 1_700_000_030.5


def test_the_clock_counts_the_deadlines_it_missed() -> None:
    clock = FakeClock(START)
    target = Inbox()
    ref = ClockActor.start(60, clock, target.ref)
    ref.ask(GetClockStats(), timeout=WAIT)  # started
    before = sample("ubot_ticks_total", outcome="missed")

    clock.set(clock.wait_for_sleeper() + 3 * 60 + 5)  # woke three intervals late

    assert target.next(Tick).number == 1
    assert sample("ubot_ticks_total", outcome="missed") - before == 3


def test_each_finished_tick_moves_the_tick_metrics() -> None:
    ref = Monitor.start("simulated", FakeClock(START))
    names = [
        ("ubot_ticks_total", {"outcome": "ok"}),
        ("ubot_ticks_total", {"outcome": "skipped"}),
        ("ubot_tick_stage_seconds_count", {"stage": "fetch"}),
        ("ubot_tick_stage_seconds_sum", {"stage": "fetch"}),
        ("ubot_tick_stage_seconds_count", {"stage": "store"}),
        ("ubot_tick_lateness_seconds_count", {}),
        ("ubot_tick_lateness_seconds_sum", {}),
    ]
    before = [sample(name, **labels) for name, labels in names]

    ref.tell(TickDone(Tick(1, 60_000, 60_250), (("fetch", 12.0), ("store", 3.0)), snapshot_ms=61_000))
    ref.tell(TickDone(Tick(2, 120_000, 120_750), (("fetch", 8.0),), outcome="skipped", reason="boom"))
    ref.ask(GetHealth(), timeout=WAIT)  # both handled

    moved = [sample(name, **labels) - was for (name, labels), was in zip(names, before, strict=True)]
    assert moved == pytest.approx([1, 1, 2, 0.020, 1, 2, 1.0])
    assert sample("ubot_snapshot_timestamp_seconds") == 61.0  # the ok tick's snapshot


def stats(**changed: object) -> ScannerStats:
    first = ScannerStats(
        workers=10,
        strategies=3,
        scans=1,
        scans_skipped=0,
        worker_restarts=0,
        alerts=0,
        last_scan_ms=40.0,
        scan_ms_p50=40.0,
        scan_ms_p99=40.0,
        last_evaluated=3,
        last_coins=30,
        last_errors=1,
    )
    return replace(first, **changed)


def test_the_scanner_figures_are_counted_once_each() -> None:
    ref = Monitor.start("simulated", FakeClock(START))
    names = [
        ("ubot_scans_total", {"outcome": "scanned"}),
        ("ubot_scans_total", {"outcome": "skipped"}),
        ("ubot_scan_seconds_count", {}),
        ("ubot_scan_seconds_sum", {}),
        ("ubot_scan_strategies_evaluated_total", {}),
        ("ubot_scan_strategy_errors_total", {}),
        ("ubot_scan_worker_restarts_total", {}),
    ]
    before = [sample(name, **labels) for name, labels in names]

    ref.tell(stats())
    ref.tell(stats(scans=2, scans_skipped=2, worker_restarts=1, last_scan_ms=60.0, last_errors=0))
    ref.ask(GetHealth(), timeout=WAIT)

    moved = [sample(name, **labels) - was for (name, labels), was in zip(names, before, strict=True)]
    assert moved == pytest.approx([2, 2, 2, 0.100, 6, 1, 1])


def test_a_scan_reports_the_strategies_whose_error_began() -> None:
    frame = MarketFrame(5, snapshot(T0, [(1, "BTC")], price=[1.0]), Plan(), {}, {})
    scan = Round(frame, snapshot_id=9, outstanding={0, 1}, started=0.0)
    scan.done(ScanDone(worker=0, tick=5, evaluated=2, coins=4, alerts=0, errors={7: "division by zero"}))
    scan.done(ScanDone(worker=1, tick=5, evaluated=2, coins=4, alerts=0, errors={8: None}))
    figures = ScanFigures()

    figures.finished(scan, 12.0)

    assert figures.stats(workers=2, strategies=4).last_errors == 1  # 8's error is gone, not new


def test_a_scanner_process_records_its_scans_and_serves_them_on_its_metrics_address() -> None:
    """``--role scanner`` has no Monitor: ``ScanRecorder`` counts its Scanner's figures the same way,
    and ``metrics.serve`` (``--metrics``) answers ``GET /metrics`` with them, over a real socket."""
    import requests

    from tests.support.metrics import parse, value
    from tests.support.ports import free_port
    from ubot.metrics import ScanRecorder, serve

    before = sample("ubot_scans_total", outcome="scanned")
    record = ScanRecorder()
    record(stats())
    record(stats(scans=3, last_scan_ms=60.0))
    assert sample("ubot_scans_total", outcome="scanned") - before == 3
    port = free_port()
    stop = serve("127.0.0.1", port)
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=WAIT)
    finally:
        stop()
    assert answer.status_code == 200
    served = value(parse(answer.text), "ubot_scans_total", outcome="scanned")
    assert served == sample("ubot_scans_total", outcome="scanned") >= 3
