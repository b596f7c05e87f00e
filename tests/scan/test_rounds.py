"""The supervisor's bookkeeping of a scan: who still owes its part, what they reported, and the
figures for /health."""

from __future__ import annotations

from tests.scan.support import T0, snapshot
from ubot.scan.frame import MarketFrame, Plan
from ubot.scan.messages import ScanDone
from ubot.scan.rounds import Round, ScanFigures


def scan(tick: int = 5, workers: int = 2) -> Round:
    frame = MarketFrame(tick, snapshot(T0, [(1, "BTC")], price=[1.0]), Plan(), {}, {})
    return Round(frame, snapshot_id=9, outstanding=set(range(workers)), started=0.0)


def test_each_worker_counts_once_and_only_for_this_scan() -> None:
    r = scan()
    assert not r.done(ScanDone(worker=0, tick=4, evaluated=1, coins=1, alerts=1))  # an older scan's
    assert r.done(ScanDone(worker=0, tick=5, evaluated=2, coins=20, alerts=1, errors={3: "x"}, disable=(4,)))
    assert not r.done(ScanDone(worker=0, tick=5, evaluated=2, coins=20, alerts=1))  # counted already
    assert not r.finished
    assert r.done(ScanDone(worker=1, tick=5, evaluated=1, coins=10, alerts=2, errors={3: None}))
    assert r.finished and (r.evaluated, r.coins, r.alerts) == (3, 30, 3)
    assert r.errors == {3: None} and r.disable == [4] and r.live


def test_a_restarted_worker_gets_the_frame_again_once_then_its_part_is_given_up() -> None:
    r = scan(tick=-9)
    assert not r.live
    assert r.resend(1) and not r.finished
    assert not r.resend(1) and r.outstanding == {0}


def test_the_figures_of_the_latest_scans() -> None:
    figures = ScanFigures()
    assert figures.stats(workers=10, strategies=0).scan_ms_p50 is None
    for ms in (10.0, 30.0, 20.0):
        r = scan()
        r.done(ScanDone(worker=0, tick=5, evaluated=4, coins=40, alerts=1))
        figures.finished(r, ms)
    stats = figures.stats(workers=10, strategies=4)
    assert (stats.scans, stats.alerts, stats.last_scan_ms, stats.scan_ms_p50, stats.scan_ms_p99) == (
        3,
        3,
        20.0,
        20.0,
        30.0,
    )
    assert (stats.last_evaluated, stats.last_coins, stats.workers, stats.strategies) == (4, 40, 10, 4)
