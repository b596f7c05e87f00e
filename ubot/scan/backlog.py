"""What waits for the scan in progress, in the order it is scanned: first the snapshots the last run
stored but never scanned (the catch-up), then the snapshots a scanner process was never told of
(the bus lost their ``TickReady``), then the latest live tick.

Only one live tick waits: a newer one replaces it, and the one replaced is never scanned (the
Scanner counts it). A scanner process (``--role scanner``) that is told of a snapshot without
having been told of the ones stored before it since the last one it was told of (Redis was down or
restarted: the engine could not publish their ``TickReady``, or the stream lost them) scans those
first, oldest first, read from the database (:meth:`Backlog.wait_stored`): nothing stored while the
bus was away goes unscanned. They are split by the new tick's view of the scanners (the only one
known), so each is still scanned by one scanner. Its candles are in the histories already (they are folded in on arrival), and
its closed bars are not lost: a frame's closed bars are those since the previous frame
(:meth:`ScanPlanner.frame`). Plain logic: the Scanner actor only asks it what to scan next.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from ubot.messages import Candled
from ubot.models.snapshots import SnapshotReader
from ubot.scan.frame import MarketFrame
from ubot.scan.planner import ScanPlanner

log = logging.getLogger(__name__)

#: At most this many stored-but-unscanned snapshots are scanned after a crash (the newest ones).
MAX_CATCH_UP = 60


@dataclass(frozen=True, eq=False)
class Scan:
    """One scan to start. ``frame.tick`` is the live tick's number, or ``-snapshot_id`` for a
    catch-up scan."""

    frame: MarketFrame
    snapshot_id: int

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
        #: A scanner process's snapshots it was never told of (ids, oldest first), framed from the
        #: database when their scan starts, before ``stored``.
        self.untold: deque[int] = deque()
        self.told: int | None = None  # the newest snapshot a ``TickReady`` named

    def __bool__(self) -> bool:
        return bool(self.catch_up) or bool(self.untold) or self.live is not None or self.stored is not None

    def wait_stored(self, number: int, snapshot_id: int) -> tuple[int, int] | None:
        """A stored snapshot (a ``TickReady``) waits for its scan; returns the one it replaces. The
        snapshots stored between the last one told and this one, never told, wait before it."""
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
            self.untold.extend(untold[-MAX_CATCH_UP:])
            while len(self.untold) > MAX_CATCH_UP:
                self.untold.popleft()
        self.told = snapshot_id if self.told is None else max(self.told, snapshot_id)
        replaced, self.stored = self.stored, (number, snapshot_id)
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
        if self.untold and self.snapshots is not None:
            snapshot_id = self.untold.popleft()
            return Scan(self.planner.replay(-snapshot_id, self.snapshots.load(snapshot_id)), snapshot_id)
        if self.stored is not None and self.snapshots is not None:
            (number, snapshot_id), self.stored = self.stored, None
            # Histories read from the database up to this snapshot, its prices as the open candles.
            return Scan(self.planner.replay(number, self.snapshots.load(snapshot_id)), snapshot_id)
        if self.live is None:
            return None
        tick, self.live = self.live, None
        return Scan(self.planner.frame(tick.tick.number, tick.snapshot), tick.snapshot_id)
