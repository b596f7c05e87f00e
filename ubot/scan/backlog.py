"""What waits for the scan in progress, in the order it is scanned: first the snapshots the last run
stored but never scanned (the catch-up), then, in a scanner process, the passes that bring its
share up to the tick it was told of, then the latest live tick.

Only one live tick waits: a newer one replaces it, and the one replaced is never scanned (the
Scanner counts it). A scanner process (``--role scanner``) reads each snapshot from the database
when its scan starts, and before the tick it was told of it scans (:meth:`Backlog.next`, the passes
of :func:`~ubot.scan.assign.passes`), oldest first:

* the snapshots stored since the last one it was told of that it was never told of (Redis was down
  or restarted: the engine could not publish their ``TickReady``, or the stream lost them), and the
  told ones replaced while a scan ran (it fell behind): for its whole share;
* for the strategies that came to it from another scanner (:attr:`Backlog.marks`, their scan
  marks), each snapshot stored after the last one scanned for them.

So nothing stored goes unscanned for any strategy, within ``MAX_CATCH_UP`` snapshots. A pass older
than the last snapshot framed rewinds the indicator histories (read again from the database up to
it). A series that no strategy read before is seeded off the scan (``scan/seeding.py``, as in a
live tick: its strategies wait), except in the passes of a tick that gave this scanner strategies
(taken over, or its first tick): those are seeded in the scan, so that no snapshot of theirs is
skipped while they would wait. Plain logic: the Scanner actor only asks it what to scan next.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from ubot.messages import Candled
from ubot.models.snapshots import SnapshotReader
from ubot.scan.assign import Pass, passes
from ubot.scan.frame import MarketFrame
from ubot.scan.planner import ScanPlanner

log = logging.getLogger(__name__)

#: At most this many stored-but-unscanned snapshots are scanned after a crash (the newest ones).
MAX_CATCH_UP = 60


@dataclass(frozen=True, eq=False)
class Scan:
    """One scan to start. ``frame.tick`` is the live tick's number, or ``-snapshot_id`` for a
    catch-up scan; ``only`` and ``skip``: the part of the strategies it is for (a pass)."""

    frame: MarketFrame
    snapshot_id: int
    only: frozenset[int] | None = None
    skip: frozenset[int] = frozenset()

    @property
    def live(self) -> bool:
        return self.frame.tick > 0


class Backlog:
    def __init__(self, planner: ScanPlanner, snapshots: SnapshotReader | None = None) -> None:
        self.planner = planner
        self.snapshots = snapshots
        self.catch_up: deque[Scan] = deque()  # framed at once, scanned before any live tick
        self.live: Candled | None = None  # framed when its scan starts
        #: A scanner process's tick (``--role scanner``): (tick number, snapshot id), framed from the
        #: database when its scan starts; like ``live``, only the latest waits.
        self.stored: tuple[int, int] | None = None
        #: A scanner process's snapshots it was never told of, and those told but replaced before
        #: their scan started: scanned before ``stored``.
        self.untold: set[int] = set()
        self.told: int | None = None  # the newest snapshot a ``TickReady`` named
        #: Strategies that came to this scanner process since ``stored`` was planned: their scan marks.
        self.marks: dict[int, int] = {}
        #: Strategies came to this scanner process since ``stored`` was planned (with marks or not).
        self.taken_over = False
        #: (tick number or -snapshot id, the pass, whether a new series is seeded in it)
        self.passes: deque[tuple[int, Pass, bool]] = deque()
        self.replayed: int | None = None  # the last snapshot framed by a replay

    def __bool__(self) -> bool:
        return bool(self.catch_up) or bool(self.passes) or self.live is not None or self.stored is not None

    def wait_stored(self, number: int, snapshot_id: int) -> tuple[int, int] | None:
        """A stored snapshot (a ``TickReady``) waits for its scan; returns the one it replaces (scanned
        before it, as a pass). The snapshots stored between the last one told and this one, never
        told, are scanned before it too."""
        if self.told is not None and self.snapshots is not None and self.planner.specs:
            try:
                untold = [i for i in self.snapshots.ids_after(self.told) if i < snapshot_id]
            except Exception:  # the database is down: this tick is scanned (if it can be) all the same
                log.exception("scanner: could not look for snapshots never announced before %d", snapshot_id)
                untold = []
            if untold:
                log.warning(
                    "scanner: %d snapshot(s) stored before %d were never announced on the bus (Redis down "
                    "or restarted?); scanning them from the database first",
                    len(untold),
                    snapshot_id,
                )
            self.untold.update(untold)
        self.told = snapshot_id if self.told is None else max(self.told, snapshot_id)
        replaced, self.stored = self.stored, (number, snapshot_id)
        if replaced is not None:
            self.untold.add(replaced[1])
        return replaced

    def catch_up_from(self, snapshots: SnapshotReader, watermark: int | None, live_id: int) -> int:
        """At the first live tick (``live_id``) of a run: frame the snapshots stored after the scan
        ``watermark`` and before ``live_id`` (the last run was killed between storing and scanning
        them), and tell the planner when the snapshot before the first frame was taken. Framed now,
        from the database, before the live tick's candles move the histories on. Returns how many."""
        missed = [] if watermark is None else [i for i in snapshots.ids_after(watermark) if i < live_id]
        if len(missed) > MAX_CATCH_UP:
            log.warning(
                "scanner: %d stored snapshots were never scanned; scanning the last %d",
                len(missed),
                MAX_CATCH_UP,
            )
            missed = missed[-MAX_CATCH_UP:]
        self.planner.resume_after(snapshots.previous_timestamp(missed[0] if missed else live_id))
        for snapshot_id in missed:
            self.catch_up.append(
                Scan(self.planner.replay(-snapshot_id, snapshots.load(snapshot_id)), snapshot_id)
            )
        return len(missed)

    def wait(self, tick: Candled) -> Candled | None:
        """``tick`` waits for its scan; returns the live tick it replaces (which is never scanned)."""
        replaced, self.live = self.live, tick
        return replaced

    def next(self) -> Scan | None:
        """The scan to start now, or None when nothing waits."""
        if self.catch_up:
            return self.catch_up.popleft()
        if not self.passes and self.stored is not None and self.snapshots is not None:
            self._plan(self.snapshots)
        if self.passes and self.snapshots is not None:
            number, part, wait = self.passes.popleft()
            if self.replayed is not None and part.snapshot_id <= self.replayed:
                self.planner.rewind(self.snapshots.previous_timestamp(part.snapshot_id))
                wait = True  # every series is read again: in this scan, or it would scan nothing
            # Histories read from the database up to this snapshot, its prices as the open candles.
            frame = self.planner.replay(number, self.snapshots.load(part.snapshot_id), wait=wait)
            self.replayed = part.snapshot_id
            return Scan(frame, part.snapshot_id, part.only, part.skip)
        if self.live is None:
            return None
        tick, self.live = self.live, None
        return Scan(self.planner.frame(tick.tick.number, tick.snapshot), tick.snapshot_id)

    def _plan(self, snapshots: SnapshotReader) -> None:
        """The passes up to the stored tick, that tick last (``scan/assign.py``)."""
        (number, snapshot_id), self.stored = self.stored or (0, 0), None
        marks, self.marks = self.marks, {}
        skipped, self.untold = self.untold, set()
        behind = [mark for mark in marks.values() if mark < snapshot_id]
        stored = [i for i in snapshots.ids_after(min(behind)) if i < snapshot_id] if behind else []
        found = passes(snapshot_id, marks, skipped, stored, MAX_CATCH_UP)
        if len(found) > 1:
            log.info(
                "scanner: catching up %d snapshot(s) before %d (%d strategy(ies) taken over, %d snapshot(s) "
                "skipped)",
                len(found) - 1,
                snapshot_id,
                len(behind),
                len(skipped),
            )
        # Strategies taken over are scanned from their marks, and so need their series now: seeded in
        # these scans (a share changes hands seldom). Otherwise a new series (a strategy added or
        # changed) is seeded by the seeding thread, its strategies waiting, as in a live tick.
        seed_now, self.taken_over = self.taken_over or bool(marks), False
        for part in found:
            number_of = number if part.snapshot_id == snapshot_id else -part.snapshot_id
            self.passes.append((number_of, part, seed_now))
