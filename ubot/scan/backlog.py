"""What waits for the scan in progress, in the order it is scanned: first the snapshots the last run
stored but never scanned (the catch-up), then the latest live tick.

Only one live tick waits: a newer one replaces it, and the one replaced is never scanned (the
Scanner counts it). Its candles are in the histories already (they are folded in on arrival), and
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

    def __bool__(self) -> bool:
        return bool(self.catch_up) or self.live is not None or self.stored is not None

    def wait_stored(self, number: int, snapshot_id: int) -> tuple[int, int] | None:
        """A stored snapshot (a ``TickReady``) waits for its scan; returns the one it replaces."""
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
        if self.stored is not None and self.snapshots is not None:
            (number, snapshot_id), self.stored = self.stored, None
            # Histories read from the database up to this snapshot, its prices as the open candles.
            return Scan(self.planner.replay(number, self.snapshots.load(snapshot_id)), snapshot_id)
        if self.live is None:
            return None
        tick, self.live = self.live, None
        return Scan(self.planner.frame(tick.tick.number, tick.snapshot), tick.snapshot_id)
