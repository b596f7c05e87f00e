"""A scanner process's tick feed (ubot/worker_roles.py: TickFeed), without threads or a bus: each
TickReady to the Scanner as ScanStored (the latest of a batch), after waiting, when the view of the
scanners changed, for the survivors' scans of the previous snapshot. Time is a fake clock on which a
sleep returns at once, the clock set to its deadline (one thread: nothing else could move it)."""

from __future__ import annotations

import logging

import pytest

from ubot.bus import Batch, EntryId, TickReady
from ubot.bus.base import Entry
from ubot.clocks import FakeClock
from ubot.models.alerts import member_watermark, prune_member_watermarks
from ubot.models.tables import Meta, SnapshotRecord
from ubot.scan.messages import ScanStored
from ubot.worker_roles import WATERMARK_KEPT_MS, TickFeed

DAY = 86_400_000


class Told(list):
    def tell(self, message: object) -> None:
        self.append(message)


def tick(number: int, *scanners: str) -> Entry:
    return Entry(EntryId(1000 + number, 0), TickReady(number, 100 + number, 0, 0, 0, tuple(scanners)))


def batch(*entries: Entry) -> Batch:
    return Batch(tuple(entries), entries[-1].id if entries else EntryId(0, 0))


class SkippingClock(FakeClock):
    def sleep_until(self, deadline: float, stop) -> bool:
        self.set(max(self.now(), deadline))
        return not stop.is_set()


class Watermarks:
    """Each member's scan watermark, moving to ``after`` once it has been read ``reads`` times."""

    def __init__(self, clock: FakeClock, marks: dict[str, int], reads: int, after: int) -> None:
        self.clock, self.marks, self.reads, self.after = clock, marks, reads, after
        self.calls = 0

    def __call__(self, member: str) -> int | None:
        self.calls += 1
        if self.calls >= self.reads:
            self.marks[member] = self.after
        return self.marks.get(member)


def feed(clock: FakeClock, watermarks: Watermarks) -> tuple[TickFeed, Told]:
    told = Told()
    made = TickFeed("b", told, 2.0, lambda snapshot_id: snapshot_id - 1, clock=clock, watermark=watermarks)
    return made, told


def test_each_tick_goes_to_the_scanner_with_its_view_the_latest_of_a_batch() -> None:
    clock = SkippingClock()
    made, told = feed(clock, Watermarks(clock, {}, 1, 0))
    made.deliver(batch(tick(1, "a", "b"), tick(2, "a", "b")))
    made.deliver(batch())
    assert told == [ScanStored(2, 102, ("a", "b"))]
    assert made.cursor == EntryId(1002, 0) and made.last.number == 2


def test_a_changed_view_waits_for_the_survivors_previous_scan() -> None:
    clock = SkippingClock()
    watermarks = Watermarks(clock, {"a": 100}, reads=3, after=102)
    made, told = feed(clock, watermarks)
    made.deliver(batch(tick(1, "a", "b")))
    assert watermarks.calls == 0  # the first tick: nothing handed over
    made.deliver(batch(tick(3, "a", "b", "c")))  # c joined: a and b hand strategies over
    assert watermarks.calls == 3 and told[-1] == ScanStored(3, 103, ("a", "b", "c"))


def test_a_dead_scanner_is_not_waited_for() -> None:
    clock = SkippingClock()
    watermarks = Watermarks(clock, {}, reads=1, after=0)
    made, told = feed(clock, watermarks)
    made.deliver(batch(tick(1, "a", "b")))
    made.deliver(batch(tick(2, "b")))  # a died: its share comes to b at once
    assert watermarks.calls == 0 and told[-1] == ScanStored(2, 102, ("b",))


def test_a_survivor_that_does_not_write_in_time_is_given_up_on(caplog) -> None:
    clock = SkippingClock()
    watermarks = Watermarks(clock, {"a": 50}, reads=10_000, after=50)
    made, told = feed(clock, watermarks)
    made.deliver(batch(tick(1, "a")))
    start = clock.now()
    with caplog.at_level(logging.WARNING):
        made.deliver(batch(tick(2, "a", "b")))
    assert clock.now() - start == pytest.approx(2.0)  # wait_s, then on
    assert "did not write snapshot 101's scan within 2 s" in caplog.text
    assert told[-1] == ScanStored(2, 102, ("a", "b"))


def test_watermarks_of_scanners_gone_for_long_are_pruned_at_start_and_when_the_view_changes() -> None:
    clock = SkippingClock()
    pruned: list[tuple[tuple[str, ...], int]] = []
    told = Told()
    made = TickFeed(
        "b", told, 2.0, lambda i: i - 1, clock=clock, watermark=Watermarks(clock, {}, 1, 0),
        prune=lambda live, before_ms: pruned.append((live, before_ms)),
    )  # fmt: skip
    made.deliver(batch(tick(1, "a", "b")))
    made.deliver(batch(tick(2, "a", "b")))  # same view: nothing to look at
    made.deliver(batch(tick(3, "b")))
    assert pruned == [(("a", "b"), -WATERMARK_KEPT_MS), (("b",), -WATERMARK_KEPT_MS)]


def test_prune_member_watermarks_deletes_only_the_gone_and_old(db) -> None:
    old = SnapshotRecord.create(timestamp=1_000, source="simulated", convert="USD", coin_count=0)
    new = SnapshotRecord.create(timestamp=DAY + 5_000, source="simulated", convert="USD", coin_count=0)
    marks = {"dead-old": old.id, "dead-recent": new.id, "live-old": old.id, "dead-vanished": 999_999}
    for member, snapshot_id in marks.items():
        Meta.create(key=member_watermark(member), value=str(snapshot_id))
    Meta.create(key="scan_watermark", value=str(old.id))  # role all's: never touched
    gone = prune_member_watermarks(db, ["live-old"], before_ms=DAY)
    assert sorted(gone) == [member_watermark("dead-old"), member_watermark("dead-vanished")]
    left = {m.key for m in Meta.select()}
    assert {member_watermark("dead-recent"), member_watermark("live-old"), "scan_watermark"} <= left
    assert not set(gone) & left
