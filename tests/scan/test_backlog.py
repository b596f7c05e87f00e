"""What waits to be scanned, and which bars closed: the catch-up after a crash, the one live tick
that waits (a newer one replaces it), and the closed bars a frame carries."""

from __future__ import annotations

from tests.scan.support import MINUTE, T0, candles, snapshot, spec
from ubot.market.candles import TIMEFRAMES
from ubot.market.simulated import SimulatedSource
from ubot.market.snapshot import parse_listings
from ubot.messages import Candled
from ubot.models.snapshots import SnapshotReader
from ubot.models.store import SnapshotWriter
from ubot.scan.backlog import Backlog
from ubot.scan.bars import closed_bars
from ubot.scan.planner import ScanPlanner
from ubot.schedule import Tick

COINS = [(1, "BTC"), (2, "ETH")]
HOUR = TIMEFRAMES["1h"]


def live(number: int, ts: int) -> Candled:
    return Candled(Tick(number, ts, ts), snapshot(ts, COINS, price=[1.0, 2.0]), "test", snapshot_id=number)


def test_a_bar_closed_when_the_snapshots_straddle_its_end() -> None:
    assert closed_bars(None, T0) == {}  # no previous snapshot: nothing is known to have closed
    assert closed_bars(T0 + 1_000, T0 + 59_000) == {}
    assert closed_bars(T0 + 59_000, T0 + MINUTE) == {"1m": T0}
    assert closed_bars(T0 + HOUR - 1, T0 + HOUR + 5_000) == {
        "1m": T0 + HOUR - MINUTE,
        "5m": T0 + HOUR - 5 * MINUTE,
        "15m": T0 + HOUR - 15 * MINUTE,
        "1h": T0,
    }
    assert closed_bars(T0, T0 + 3 * MINUTE + 1) == {"1m": T0 + 2 * MINUTE}  # a gap: the latest bar


def test_one_live_tick_waits_and_a_newer_one_replaces_it_keeping_its_closed_bars() -> None:
    planner = ScanPlanner(1)
    planner.set_user(7, [spec()])
    backlog = Backlog(planner)
    assert backlog.wait(live(1, T0 + 4 * MINUTE + 30_000)) is None
    first = backlog.next()
    assert first is not None and first.live and first.frame.closed_bar == {} and not backlog
    assert backlog.wait(live(2, T0 + 5 * MINUTE + 10_000)) is None  # while 1 is scanned
    replaced = backlog.wait(live(3, T0 + 5 * MINUTE + 40_000))
    assert replaced is not None and replaced.tick.number == 2
    third = backlog.next()
    assert third is not None and (third.frame.tick, third.snapshot_id) == (3, 3)
    # Tick 2 closed the 4th minute and the first 5 minutes; tick 3 closed nothing more: both count.
    assert third.frame.closed_bar == {"1m": T0 + 4 * MINUTE, "5m": T0}
    assert backlog.next() is None


def stored(db, count: int) -> list[tuple[int, int]]:
    """``count`` simulated snapshots a minute apart: (snapshot id, timestamp)."""
    writer, out = SnapshotWriter(db), []
    for k in range(count):
        raw = SimulatedSource(limit=5, seed=3).documents(T0 + k * MINUTE)
        snap = parse_listings(raw.listings, "USD", raw.global_metrics)
        out.append((writer.write(snap, "simulated"), snap.timestamp_ms))
    return out


def test_the_snapshots_stored_but_never_scanned_are_scanned_first_in_order(db) -> None:
    asked = []

    def load(timeframe, after_ms, before_ms):
        asked.append((after_ms, before_ms))
        return [candles(timeframe, [(1, before_ms - MINUTE, 5.0)])]

    planner = ScanPlanner(1, load)
    planner.set_user(7, [spec(condition="ema(3) > 1")])
    backlog = Backlog(planner)
    (a, ta), (b, tb), (c, tc), (d, td) = stored(db, 4)
    assert backlog.catch_up_from(SnapshotReader(db), watermark=a, live_id=d) == 2
    first, second = backlog.next(), backlog.next()
    assert (first.frame.tick, first.snapshot_id, second.frame.tick, second.snapshot_id) == (-b, b, -c, c)
    assert not first.live and first.frame.closed_bar == closed_bars(ta, tb)
    assert second.frame.closed_bar == closed_bars(tb, tc)
    # Each as it was then: read whole for the first, then only the candles closed since.
    assert asked == [(None, tb), (tb, tc)] and planner.histories["1m"].last_closed.max() == tb
    backlog.wait(live(d, td))
    assert backlog.next().frame.closed_bar == closed_bars(tc, td)


def test_without_a_watermark_nothing_is_owed_but_the_previous_snapshot_is_known(db) -> None:
    planner = ScanPlanner(1)
    backlog = Backlog(planner)
    (_, ta), (b, tb) = stored(db, 2)
    assert backlog.catch_up_from(SnapshotReader(db), watermark=None, live_id=b) == 0
    backlog.wait(live(b, tb))
    assert backlog.next().frame.closed_bar == closed_bars(ta, tb) == {"1m": ta}


def test_a_scanner_process_scans_the_snapshots_it_was_never_told_of_before_the_next_one(db) -> None:
    """Redis was down: the engine stored snapshots d and e but could not announce them. The next
    ``TickReady`` (f) is scanned after them; a snapshot replaced while a scan ran (b) is scanned
    before the one that replaced it (the scanner fell behind: it catches up)."""
    planner = ScanPlanner(1, lambda timeframe, after_ms, before_ms: [])
    planner.set_user(7, [spec(condition="ema(3) > 1")])
    backlog = Backlog(planner, SnapshotReader(db))
    a, b, c, d, e, f = (i for i, _ in stored(db, 6))
    assert backlog.wait_stored(1, a) is None
    assert backlog.next().snapshot_id == a
    assert backlog.wait_stored(2, b) is None  # while a is scanned
    assert backlog.wait_stored(3, c) == (2, b)  # b is replaced: scanned before c
    scans = [backlog.next() for _ in range(2)]
    assert [(s.frame.tick, s.snapshot_id, s.only) for s in scans] == [(-b, b, None), (3, c, None)]
    assert not backlog
    assert backlog.wait_stored(6, f) is None
    scans = [backlog.next() for _ in range(3)]
    assert [(s.frame.tick, s.snapshot_id) for s in scans] == [(-d, d), (-e, e), (6, f)]
    assert not scans[0].live and scans[2].live
    assert backlog.next() is None and not backlog


def test_strategies_taken_over_are_scanned_from_their_marks_rewinding_the_histories(db) -> None:
    """Strategies 5 and 6 came to this scanner at f; their previous owner wrote its scans up to b
    (5) and d (6). Before f they are scanned for the snapshots after their marks, oldest first, the
    histories read again from the database up to each (they were framed up to e already)."""
    reads: list[tuple[int | None, int]] = []

    def load(timeframe, after_ms, before_ms):
        reads.append((after_ms, before_ms))
        return []

    planner = ScanPlanner(1, load)
    planner.set_user(7, [spec(condition="ema(3) > 1")])
    backlog = Backlog(planner, SnapshotReader(db))
    ids = [i for i, _ in stored(db, 6)]
    a, b, c, d, e, f = ids
    for number, snapshot_id in enumerate(ids[:5], 1):
        backlog.wait_stored(number, snapshot_id)
        assert backlog.next().snapshot_id == snapshot_id
    backlog.marks.update({5: b, 6: d})
    backlog.wait_stored(6, f)
    reads.clear()
    scans = [backlog.next() for _ in range(4)]
    assert [(s.snapshot_id, s.only, s.skip) for s in scans] == [
        (c, frozenset({5}), frozenset()),
        (d, frozenset({5}), frozenset()),
        (e, frozenset({5, 6}), frozenset()),
        (f, None, frozenset()),
    ]
    assert [s.frame.tick for s in scans] == [-c, -d, -e, 6]
    assert reads and reads[0][0] is None  # rewound: the whole history again, up to c
    assert backlog.next() is None and not backlog


def test_nothing_is_caught_up_without_strategies_to_scan(db) -> None:
    planner = ScanPlanner(1, lambda timeframe, after_ms, before_ms: [])
    backlog = Backlog(planner, SnapshotReader(db))
    a, _, c = (i for i, _ in stored(db, 3))
    backlog.wait_stored(1, a)
    backlog.stored = None
    backlog.wait_stored(3, c)
    assert list(backlog.untold) == []


def test_a_scanner_process_seeds_off_its_ticks_but_in_a_tick_that_hands_it_strategies(db) -> None:
    """A strategy added to a scanner process's share waits for its series (the seeding thread's work:
    ``ScanPlanner.replay(wait=False)``); strategies a tick hands over are seeded in that tick's scan
    (their missed snapshots are scanned from their marks at once)."""
    planner = ScanPlanner(1, lambda timeframe, after_ms, before_ms: [], background=True)
    planner.set_user(7, [spec(1, condition="ema(3) > 1")])
    backlog = Backlog(planner, SnapshotReader(db))
    a, b, c = (i for i, _ in stored(db, 3))
    backlog.taken_over = True  # its first tick: every strategy came to it
    backlog.wait_stored(1, a)
    assert backlog.next().snapshot_id == a and not planner.waiting
    planner.set_user(8, [spec(2, condition="sma(4) > 1", user_id=8)])
    backlog.wait_stored(2, b)
    assert backlog.next().snapshot_id == b
    assert 2 in planner.waiting and planner.seeder.busy()
    planner.set_user(9, [spec(3, condition="rsi(5) > 1", user_id=9)])
    backlog.taken_over = True
    backlog.wait_stored(3, c)
    assert backlog.next().snapshot_id == c and 3 not in planner.waiting
