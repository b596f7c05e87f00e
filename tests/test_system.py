"""The whole pipeline, started and stopped as run.py does: every tick stored, candled and served.

Results are awaited through the actors only: ``on_finished`` (the tick limit or the end of a
replay), asks, and ``stop_system``, which drains every mailbox in pipeline order.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading

from ubot.clocks import FakeClock
from ubot.market.candles import CandleBook
from ubot.market.replay import ReplaySource
from ubot.market.simulated import SimulatedSource
from ubot.market.snapshot import Snapshot, parse_listings
from ubot.market.view import etag_of
from ubot.messages import GetClockStats, GetHealth, GetSnapshot
from ubot.models.closes import closed_candles
from ubot.models.tables import Candle, GlobalMetric, Quote, SnapshotRecord
from ubot.system import Actors, start_system, stop_system
from ubot.timeutil import parse_iso_ms

WAIT = 10.0
COINS = 10
#: Six snapshots 20 s apart across midnight: 1m..1d candles close during the replay.
STAMPS = [parse_iso_ms("2024-03-09T23:59:20.000Z") + n * 20_000 for n in range(6)]
ACTOR_THREADS = ("ubot-clock", "Monitor-", "Container-", "Ohlc-", "Store-", "Fetcher-", "HistoryActor-")
ACTOR_THREADS += ("ClockActor-",)


class Finished:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.event = threading.Event()

    def __call__(self, why: str) -> None:
        self.reasons.append(why)
        self.event.set()

    def wait(self) -> list[str]:
        assert self.event.wait(WAIT), "the pipeline did not finish"
        return self.reasons


def ours(thread: threading.Thread) -> bool:
    return thread.name.startswith(ACTOR_THREADS)


def assert_no_ubot_threads(before: set[threading.Thread]) -> None:
    """Every thread the system started has ended (joined: an actor's thread ends just after its
    stop is acknowledged)."""
    started = [t for t in threading.enumerate() if t not in before and ours(t)]
    for thread in started:
        thread.join(WAIT)
    assert [t.name for t in started if t.is_alive()] == []


def record(directory, stamps: list[int], bad: dict[int, str] | None = None) -> list[Snapshot]:
    """Write simulated responses as replay files (the last one gzip'ed); return their snapshots.
    ``bad``: file index -> content of a malformed file written instead."""
    source = SimulatedSource(limit=COINS, seed=5)
    snapshots = []
    for n, ts in enumerate(stamps):
        raw = source.documents(ts)
        text = json.dumps({"listings": raw.listings, "global": raw.global_metrics})
        if bad and n in bad:
            (directory / f"{n:04d}.json").write_text(bad[n])
            continue
        if n == len(stamps) - 1:
            (directory / f"{n:04d}.json.gz").write_bytes(gzip.compress(text.encode()))
        else:
            (directory / f"{n:04d}.json").write_text(text)
        snapshots.append(parse_listings(raw.listings, "USD", raw.global_metrics))
    return snapshots


def expected_candles(snapshots: list[Snapshot]) -> list[tuple]:
    """The rows an uninterrupted run stores: the closed candles of every timeframe (open candles are
    never stored: they are rebuilt at start, the 1m ones from the quotes)."""
    book, rows = CandleBook(), []
    for snap in snapshots:
        update = book.apply(snap.ids, snap.quote_ts_ms, snap.column("price"))
        rows += [(c, tf, *rest) for tf, closed in update.closed.items() for c, *rest in closed.rows()]
    return sorted(rows)


def test_a_replay_runs_end_to_end(db, tmp_path) -> None:
    snapshots = record(tmp_path, STAMPS)
    before = set(threading.enumerate())
    finished = Finished()
    actors = start_system(db, ReplaySource(str(tmp_path)), interval_s=0, on_finished=finished)

    assert finished.wait() == ["exhausted"]

    stats = actors.monitor.ask(GetHealth(), timeout=WAIT)
    assert (stats.ticks, stats.ok, stats.skipped, stats.exhausted) == (6, 6, 0, True)
    assert [r.timestamp for r in SnapshotRecord.select().order_by(SnapshotRecord.id)] == STAMPS
    assert Quote.select().count() == 6 * COINS
    assert GlobalMetric.select().count() == 6

    body, etag = actors.container.ask(GetSnapshot(), timeout=WAIT)
    doc = json.loads(body)
    assert doc["timestamp"] == "2024-03-10T00:01:00.000Z"
    assert [coin["id"] for coin in doc["coins"]] == snapshots[-1].ids.tolist()
    assert etag == etag_of(body)

    stop_system(actors)  # the OHLC stage writes the closed candles it keeps
    assert_no_ubot_threads(before)
    assert sorted(Candle.select().tuples()) == expected_candles(snapshots)
    assert {row[1] for row in Candle.select(Candle.coin, Candle.timeframe).tuples()} == {
        "1m",
        "5m",
        "15m",
        "1h",
        "4h",
        "1d",
    }


def test_a_malformed_replay_file_skips_its_tick_and_the_replay_goes_on(db, tmp_path) -> None:
    record(tmp_path, STAMPS[:3], bad={1: "{not json"})
    finished = Finished()
    actors = start_system(db, ReplaySource(str(tmp_path)), interval_s=0, on_finished=finished)

    assert finished.wait() == ["exhausted"]

    stats = actors.monitor.ask(GetHealth(), timeout=WAIT)
    assert (stats.ticks, stats.ok, stats.skipped) == (3, 2, 1)
    assert stats.last_skip_reason.startswith("replay file 0001.json: not a recorded response")
    assert [r.timestamp for r in SnapshotRecord.select().order_by(SnapshotRecord.id)] == [
        STAMPS[0],
        STAMPS[2],
    ]
    stop_system(actors)


def test_a_simulated_market_on_a_fake_clock_stops_at_the_tick_limit(db) -> None:
    clock = FakeClock(1_700_000_030.5)
    before = set(threading.enumerate())
    finished = Finished()
    actors = start_system(
        db,
        SimulatedSource(limit=COINS, seed=3),
        interval_s=60,
        clock=clock,
        max_ticks=3,
        on_finished=finished,
    )

    # Step the clock one deadline at a time until three ticks have fired. A deadline reached while
    # a tick is still in the pipeline is missed (no tick), so the loop just goes on to the next.
    while actors.clock.ask(GetClockStats(), timeout=WAIT).ticks < 3:
        clock.set(clock.wait_for_sleeper())
    assert finished.wait() == ["ticks"]

    stamps = [r.timestamp for r in SnapshotRecord.select().order_by(SnapshotRecord.id)]
    assert len(stamps) == 3
    assert all(ts % 60_000 == 0 for ts in stamps)  # the data time is each tick's exact deadline
    assert stamps == sorted(set(stamps)) and stamps[0] == 1_700_000_040_000
    # Two 1m candles of each coin closed (the third is open): kept to be written in a batch, and
    # read back from the quotes meanwhile.
    assert sum(len(part) for part in closed_candles("1m", None, 2**62)) == 2 * COINS
    stats = actors.monitor.ask(GetHealth(), timeout=WAIT)
    assert (stats.ticks, stats.ok, stats.last_snapshot_ms) == (3, 3, stamps[-1])
    assert actors.clock.ask(GetClockStats(), timeout=WAIT).ticking is False
    body, _ = actors.container.ask(GetSnapshot(), timeout=WAIT)
    assert len(json.loads(body)["coins"]) == COINS

    stop_system(actors)
    assert_no_ubot_threads(before)
    assert Candle.select().where(Candle.timeframe == "1m").count() == 2 * COINS  # written at stop


class GatedSource(SimulatedSource):
    """Holds each fetch until the test opens the gate: the tick is then surely in flight."""

    def __init__(self) -> None:
        super().__init__(limit=COINS, seed=3)
        self.fetching = threading.Event()
        self.gate = threading.Event()

    def fetch(self, at_ms: int):
        self.fetching.set()
        assert self.gate.wait(WAIT), "the test never opened the gate"
        return super().fetch(at_ms)


def test_stopping_finishes_the_tick_in_flight_first(db, caplog) -> None:
    caplog.set_level(logging.INFO)
    clock, source = FakeClock(1_700_000_030.5), GatedSource()
    before = set(threading.enumerate())
    actors: Actors = start_system(db, source, interval_s=60, clock=clock)
    (timer,) = [t for t in threading.enumerate() if t.name == "ubot-clock" and t not in before]
    deadline = clock.wait_for_sleeper()
    clock.set(deadline)
    assert source.fetching.wait(WAIT)  # tick 1 is inside the Fetcher

    stopper = threading.Thread(target=stop_system, args=(actors,))
    stopper.start()
    timer.join(WAIT)  # the Clock is stopped: the stop is under way, the tick not yet fetched
    assert not timer.is_alive()
    source.gate.set()
    stopper.join(WAIT)
    assert not stopper.is_alive()

    assert [r.timestamp for r in SnapshotRecord.select()] == [round(deadline * 1000)]
    assert Quote.select().count() == COINS
    assert Candle.select().count() == 0  # its 1m candles are open: held in memory, not stored
    assert any(r.getMessage().startswith(f"tick 1 coins={COINS} ") for r in caplog.records)  # it ended
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert_no_ubot_threads(before)


def test_stopping_an_idle_system_leaves_no_thread(db) -> None:
    before = set(threading.enumerate())
    actors = start_system(
        db, SimulatedSource(limit=COINS, seed=3), interval_s=60, clock=FakeClock(1_700_000_030.5)
    )

    stop_system(actors)

    assert SnapshotRecord.select().count() == 0
    assert_no_ubot_threads(before)
