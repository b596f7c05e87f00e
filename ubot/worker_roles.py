"""``--role scanner`` and ``--role notifier``: the processes that scan and deliver beside the engine.

* **scanner** (any number): a Scanner (with its workers) scanning only this process's share of the
  strategies (``scan/assign.py``), a UserManager that reads the strategies from PostgreSQL, and a
  Notifier that writes the alerts to the outbox and publishes their events but sends nothing
  (``deliver=False``). Ticks come from the bus's ``ticks`` topic (:class:`TickFeed`: each
  ``TickReady`` becomes a :class:`~ubot.scan.messages.ScanStored`), strategy changes from
  ``strategies`` (``engine_role.follow_strategies``), the snapshot and its candles from PostgreSQL.
  Before a tick whose view of the scanners changed, the feed waits (at most an interval) until the
  scanners that keep running have written their scan of the previous snapshot (their scan
  watermarks, ``meta`` ``scanned:<member>``), so a strategy handed over continues from the state its
  previous owner wrote for the tick before.
* **notifier** (any number): a Notifier in claims mode (``actors/notifier.py``): deliveries claimed
  from the outbox with ``FOR UPDATE SKIP LOCKED`` and a lease (``[notify] lease_s``), pacing shared.

Both heartbeat into their group on the bus (``heartbeat.py``), for the split and for ``/health``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka
from peewee import Database

from ubot.bus import (
    STRATEGIES,
    TICKS,
    Batch,
    Bus,
    BusUnavailable,
    EntryId,
    Relay,
    StrategiesChanged,
    TickReady,
)
from ubot.clocks import Clock, SystemClock
from ubot.config import Settings, resolved_source
from ubot.heartbeat import Heartbeat, member_name, ttl_s
from ubot.metrics import ScanRecorder
from ubot.models.alerts import AlertStore, member_watermark, prune_member_watermarks
from ubot.models.db import close_connection, open_database
from ubot.models.snapshots import SnapshotReader
from ubot.models.tables import Meta
from ubot.scan.assign import handed_over
from ubot.scan.messages import DisableStrategy, ScannerStats, ScanStored
from ubot.stopping import StopToken

log = logging.getLogger(__name__)

#: A scanner gone (not in the tick's view) whose last scan is older than this (data time) has its
#: watermark (``meta`` ``scanned:<member>``) deleted: a day.
WATERMARK_KEPT_MS = 86_400_000


@dataclass
class RoleProcess:
    """What a scanner or notifier process started, stopped in reverse order by :meth:`stop`.
    ``token``: set first, so that long work in progress ends between its chunks and the actors
    drop what waits in their mailboxes (``ubot/stopping.py``): each stop then waits for no work."""

    member: str
    stops: list[Callable[[], object]] = field(default_factory=list)
    token: StopToken = field(default_factory=StopToken)

    def stop(self) -> None:
        self.token.set()
        for stop in reversed(self.stops):
            try:
                stop()
            except Exception:
                log.exception("%s: stopping a part failed", self.member)


def _stop_actor(ref: pykka.ActorRef) -> Callable[[], object]:
    return lambda: ref.stop(block=True, timeout=30)


class TickFeed:
    """The ``ticks`` relay's side of a scanner process: each ``TickReady`` (the latest of a batch:
    older ones would be replaced by it before their scan) to the Scanner as ``ScanStored``, after
    waiting for the handed-over state when the view of the scanners changed."""

    def __init__(
        self,
        member: str,
        scanner: pykka.ActorRef,
        wait_s: float,
        previous_snapshot: Callable[[int], int | None],
        clock: Clock | None = None,
        watermark: Callable[[str], int | None] | None = None,
        prune: Callable[[tuple[str, ...], int], object] | None = None,
        stopping: threading.Event | None = None,
    ) -> None:
        """``previous_snapshot(id)``: the id stored just before (``SnapshotReader.previous_id``);
        ``watermark(member)``: a scanner's scan watermark (default: read from ``meta``);
        ``prune(live, before_ms)``: delete the watermarks of the scanners gone since before
        ``before_ms`` (``models.alerts.prune_member_watermarks``), done at the first tick and when
        the view of the scanners changes; ``stopping``: set when the process stops (no tick is
        passed on after it, and a wait for the handed-over state ends)."""
        self.member = member
        self.scanner = scanner
        self.wait_s = wait_s
        self.clock = clock or SystemClock()
        self.watermark = watermark or _watermark
        self.previous_snapshot = previous_snapshot
        self.prune = prune
        self.last: TickReady | None = None
        self.cursor: EntryId | None = None
        self.stopping = stopping or threading.Event()

    def deliver(self, batch: Batch) -> None:
        if self.stopping.is_set():
            return
        if batch.missed:
            log.warning("scanner: ticks were missed on the bus (Redis restarted?); scanning the next one")
        ticks = [(e.id, e.message) for e in batch.entries if isinstance(e.message, TickReady)]
        if not ticks:
            return
        entry_id, tick = ticks[-1]
        if not tick.scanners and (self.last is None or self.last.scanners):
            log.warning(
                "scanner: the engine names no scanner in its ticks ([cluster] scanners = internal: it "
                "scans itself, or none is live yet); this scanner scans nothing meanwhile"
            )
        previous = self.last.scanners if self.last is not None else tick.scanners
        if self.prune is not None and (self.last is None or previous != tick.scanners):
            try:
                self.prune(tuple(tick.scanners), tick.snapshot_ms - WATERMARK_KEPT_MS)
            except Exception:  # the next change tries again
                log.exception("scanner: deleting the watermarks of scanners gone for long failed")
        self.wait_for(handed_over(previous, tick.scanners, self.member), tick.snapshot_id)
        self.scanner.tell(ScanStored(tick.number, tick.snapshot_id, tuple(tick.scanners)))
        self.last, self.cursor = tick, entry_id

    def wait_for(self, members: tuple[str, ...], snapshot_id: int) -> bool:
        """Wait until each of ``members`` has written its scan of the snapshot before
        ``snapshot_id`` (at most ``wait_s``); False when it gave up."""
        if not members:
            return True
        before = self.previous_snapshot(snapshot_id)
        if before is None:
            return True
        deadline = self.clock.now() + self.wait_s
        waiting = list(members)
        while True:
            waiting = [m for m in waiting if (self.watermark(m) or 0) < before]
            if not waiting:
                return True
            if self.clock.now() >= deadline:
                log.warning(
                    "scanner: %s did not write snapshot %d's scan within %g s; scanning on",
                    ", ".join(waiting),
                    before,
                    self.wait_s,
                )
                return False
            if not self.clock.sleep_until(min(deadline, self.clock.now() + 0.05), self.stopping):
                return False


def _watermark(member: str) -> int | None:
    row = Meta.get_or_none(Meta.key == member_watermark(member))
    return None if row is None else int(row.value)


def _last_id(bus: Bus, topic: str) -> EntryId | None:
    try:
        return bus.last_id(topic)
    except BusUnavailable:  # from the newest entry once Redis is back
        return None


def _process(settings: Settings, role: str) -> tuple[RoleProcess, Bus, Database]:
    """This process's name in its group, its bus and its database (closed last at stop)."""
    from ubot.cluster import make_bus

    running = RoleProcess(member_name(role))
    bus = make_bus(settings)
    running.stops.append(bus.close)
    db = open_database(settings.database.url)
    running.stops.append(db.close)
    return running, bus, db


def start_scanner(settings: Settings) -> RoleProcess:
    from ubot.actors.notifier import Notifier
    from ubot.actors.scanner import Scanner
    from ubot.actors.user_manager import UserManagerActor
    from ubot.engine_role import follow_strategies
    from ubot.models.closes import closed_candles
    from ubot.notify.registry import build_channels
    from ubot.scan.assign import Shares
    from ubot.stream.publisher import EventPublisher
    from ubot.system import DAY_MS, AlertOptions, user_manager

    running, bus, db = _process(settings, "scanner")
    member = running.member
    scans = LatestScan()
    clock = SystemClock()
    interval = settings.market.interval
    try:
        notifier = Notifier.start(
            AlertStore(db, scan_key=member_watermark(member), marks=True),
            {},
            clock,
            publish=EventPublisher(bus).publish,
            public_url=settings.http.public_url,
            simulated=resolved_source(settings) == "simulated",
            deliver=False,
            # The alerts it writes move its pruning on, as in the engine: old alerts go.
            retention_ms=settings.notify.retention_days * DAY_MS,
            # The caps and the pause, as in the engine; the caps counted from the database, where
            # every scanner process writes its share of a user's alerts (notify/caps.py).
            messages_per_user_hour=settings.notify.messages_per_user_hour or None,
            messages_per_destination_hour=settings.notify.messages_per_destination_hour or None,
            pause_after_alerts=settings.notify.pause_after_alerts or None,
            pause_window_s=settings.notify.pause_window_s,
            pause=lambda strategy_id, reason: users.tell(DisableStrategy(strategy_id, reason)),
            shared_caps=True,
            stop_token=running.token,
        )
        running.stops.append(_stop_actor(notifier))
        options = AlertOptions(
            channels=build_channels(settings), allow_local_webhooks=settings.notify.webhook_allow_private
        )
        users = UserManagerActor.start(
            user_manager(db, clock, settings.market.convert, options),
            # A ``once`` strategy this process disables: every scanner is told, as after a gateway's change.
            on_changed=lambda user_id: bus.publish(STRATEGIES, StrategiesChanged(user_id)),
        )
        running.stops.append(_stop_actor(users))
        ticks_from, strategies_from = _last_id(bus, TICKS), _last_id(bus, STRATEGIES)
        snapshots = SnapshotReader(db)
        scanner = Scanner.start(
            settings.scanner.workers,
            users=users,
            notifier=notifier,
            load=closed_candles,
            snapshots=snapshots,
            shares=Shares(member),
            on_scan=scans.record,
            stop=running.token,
        )
        running.stops.append(_stop_actor(scanner))
        feed = TickFeed(
            member,
            scanner,
            max(1.0, interval),
            snapshots.previous_id,
            prune=lambda live, before_ms: prune_member_watermarks(db, live, before_ms),
            stopping=running.token,
        )
        ticks = Relay(bus, TICKS, _in_thread(feed.deliver), after=ticks_from).start()
        running.stops.append(ticks.stop)
        strategies = follow_strategies(bus, users, scanner, strategies_from)
        running.stops.append(strategies.stop)

        def figures() -> dict[str, Any]:
            if not scanner.is_alive():  # no heartbeat then: its share moves to the live scanners
                raise RuntimeError("the Scanner has stopped")
            stats = scans.latest  # never asked of the Scanner: a long scan would hold the beat
            newest = _last_id(bus, TICKS)
            lag = None if newest is None or feed.cursor is None else max(0, newest.ms - feed.cursor.ms)
            last = feed.last
            return {
                "last_tick": last.number if last else None,
                "snapshot_id": last.snapshot_id if last else None,
                "strategies": stats.strategies if stats else None,
                "lag_ms": lag,
                "scans": stats.scans if stats else None,
                "scan_ms": stats.last_scan_ms if stats else None,
            }

        beat = Heartbeat(bus, "scanner", member, ttl_s(interval), figures).start()
        running.stops.append(beat.stop)
    except BaseException:
        running.stop()
        raise
    log.info("scanner: running as %s (strategies split with the other live scanners)", member)
    return running


class LatestScan:
    """A scanner process's figures after its last scan, for its heartbeat (``/health``) and its
    metrics: kept by the Scanner's ``on_scan`` as each scan ends."""

    def __init__(self) -> None:
        self.latest: ScannerStats | None = None
        self.metrics = ScanRecorder()

    def record(self, stats: ScannerStats) -> None:
        self.metrics(stats)
        self.latest = stats


def _in_thread(deliver: Callable[[Batch], None]) -> Callable[[Batch], None]:
    """The relay's thread reads the database (watermarks): its connection is closed when it ends."""

    def call(batch: Batch) -> None:
        try:
            deliver(batch)
        finally:
            if batch.closed:
                close_connection()

    return call


def start_notifier(settings: Settings) -> RoleProcess:
    from ubot.actors.notifier import Claims, Notifier
    from ubot.notify.registry import build_channels

    running, bus, db = _process(settings, "notifier")
    member = running.member
    clock = SystemClock()
    notify = settings.notify
    store = AlertStore(db)
    try:
        notifier = Notifier.start(
            store,
            build_channels(settings),
            clock,
            max_attempts=notify.max_attempts,
            backoff_s=notify.backoff_s,
            backoff_max_s=notify.backoff_max_s,
            sends_per_user=notify.sends_per_user,
            public_url=settings.http.public_url,
            simulated=resolved_source(settings) == "simulated",
            claims=Claims(member, lease_s=notify.lease_s),
        )
        running.stops.append(_stop_actor(notifier))

        def figures() -> dict[str, Any]:
            return {"claims": store.claims(member, round(clock.now() * 1000))}

        beat = Heartbeat(bus, "notifier", member, ttl_s(settings.market.interval), figures).start()
        running.stops.append(beat.stop)
    except BaseException:
        running.stop()
        raise
    log.info("notifier: running as %s (claims from the outbox, lease %g s)", member, notify.lease_s)
    return running
