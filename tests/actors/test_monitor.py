"""Monitor: records every finished tick, paces the Clock, stops it at the tick limit or the end."""

from __future__ import annotations

import threading

import pytest

from tests.support.actors import Inbox
from ubot.actors.monitor import Monitor
from ubot.clocks import FakeClock
from ubot.messages import GetHealth, SourceExhausted, StopTicking, TickDone, TickFinished, WatchTicks
from ubot.scan.messages import ScanFinished
from ubot.schedule import Tick

WAIT = 10.0


class Finished:
    """The ``on_finished`` callback: records why, and lets the test wait for it."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.event = threading.Event()

    def __call__(self, why: str) -> None:
        self.reasons.append(why)
        self.event.set()

    def wait(self) -> list[str]:
        assert self.event.wait(WAIT), "on_finished was not called"
        return self.reasons


def done(number: int, outcome: str = "ok", reason: str = "") -> TickDone:
    tick = Tick(number, number * 60_000, number * 60_000 + 5)
    return TickDone(tick=tick, stages=(("fetch", 1.0),), outcome=outcome, reason=reason, snapshot_ms=number)


@pytest.fixture
def monitor():
    """start(max_ticks) -> (monitor ref, the clock's inbox, on_finished)."""

    def start(max_ticks: int = 0):
        finished, clock = Finished(), Inbox()
        ref = Monitor.start("simulated", FakeClock(1_700_000_000), max_ticks=max_ticks, on_finished=finished)
        ref.tell(WatchTicks(clock.ref))
        return ref, clock, finished

    return start


def test_each_finished_tick_releases_the_clock_skipped_ones_too(monitor) -> None:
    ref, clock, finished = monitor()

    ref.tell(done(1))
    ref.tell(done(2, "skipped", "fetch failed: boom"))

    assert clock.next(TickFinished) == TickFinished(1)
    assert clock.next(TickFinished) == TickFinished(2)
    stats = ref.ask(GetHealth(), timeout=WAIT)
    assert (stats.ticks, stats.ok, stats.skipped) == (2, 1, 1)
    assert stats.last_skip_reason == "fetch failed: boom" and stats.last_snapshot_ms == 1
    assert finished.reasons == []


def test_the_tick_limit_stops_the_clock_and_reports_ticks(monitor) -> None:
    ref, clock, finished = monitor(max_ticks=2)

    ref.tell(done(1))
    ref.tell(done(2))

    assert finished.wait() == ["ticks"]
    assert clock.received() == [TickFinished(1), StopTicking("tick limit reached")]
    assert ref.ask(GetHealth(), timeout=WAIT).ticks == 2


def test_an_exhausted_source_stops_the_clock_once(monitor) -> None:
    ref, clock, finished = monitor()
    ref.tell(done(1))

    ref.tell(SourceExhausted(done(2).tick))
    ref.tell(SourceExhausted(done(3).tick))

    assert finished.wait() == ["exhausted"]
    stats = ref.ask(GetHealth(), timeout=WAIT)  # queued after both: on_finished ran only once
    assert stats.exhausted and stats.ticks == 1
    assert finished.reasons == ["exhausted"]
    assert clock.received() == [TickFinished(1), StopTicking("source exhausted")]


def test_health_is_a_copy_not_the_live_figures(monitor) -> None:
    ref, _, _ = monitor()
    before = ref.ask(GetHealth(), timeout=WAIT)

    ref.tell(done(1))

    assert before.ticks == 0
    assert ref.ask(GetHealth(), timeout=WAIT).ticks == 1


def test_back_to_back_ticks_wait_for_their_scan() -> None:
    clock = Inbox()
    ref = Monitor.start("replay", FakeClock(1_700_000_000), wait_for_scans=True)
    ref.tell(WatchTicks(clock.ref))
    ref.tell(done(1))
    ref.tell(done(2, "skipped", "a duplicate"))  # nothing to scan: released at once
    assert clock.next(TickFinished) == TickFinished(2)
    assert clock.received() == []  # tick 1 is stored, not yet scanned
    ref.tell(ScanFinished(1))
    assert clock.next(TickFinished) == TickFinished(1)
    ref.tell(ScanFinished(3))  # a scan may finish before the Container's TickDone arrives
    ref.tell(done(3))
    assert clock.next(TickFinished) == TickFinished(3)


def test_a_lost_database_stops_the_clock_and_degrades_health() -> None:
    """The database watch is asked at the end of every tick, skipped ones too (a failed write ends
    its tick there); once it says the file is lost, ticking stops and /health says why."""
    finished, clock = Finished(), Inbox()
    lost: list[str] = []
    ref = Monitor.start(
        "simulated",
        FakeClock(1_700_000_000),
        on_finished=finished,
        database_watch=lambda: lost[0] if lost else None,
    )
    ref.tell(WatchTicks(clock.ref))
    ref.tell(done(1))
    assert clock.next(TickFinished) == TickFinished(1)

    lost.append("database file /x/ubot.db was deleted while uBot was running")
    ref.tell(done(2, "skipped", "store failed: disk I/O error"))
    ref.tell(done(3, "skipped", "store failed: disk I/O error"))  # in flight: ends here, no second stop

    assert finished.wait() == ["database"]
    stats = ref.ask(GetHealth(), timeout=WAIT)
    assert finished.reasons == ["database"]
    assert clock.received() == [StopTicking("database lost")]
    current, doc = stats.health(1_700_000_000, None)
    assert (current, doc["status"]) == (False, "degraded")
    assert doc["reason"] == (
        "database file /x/ubot.db was deleted while uBot was running: the pipeline is stopped and "
        "nothing more is written; restore the file from a backup, or restart uBot to begin a new database"
    )
