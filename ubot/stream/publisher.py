"""The engine's side of what gateways serve: every tick's snapshot document, its ``snapshot`` event,
its ``TickReady``, and the Notifier's ``alert`` events, onto the bus (in-process for role ``all``,
Redis for the others).

Called after the Store and the OHLC have committed (the Container is the stage after the OHLC; the
Notifier publishes an alert after writing it), so whatever a message names is in the database.
Order per tick: the document first (``set_latest("snapshot")``), then ``TickReady`` on ``ticks``,
then the ``snapshot`` event on ``events``: a client told of a new snapshot fetches it and gets it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ubot.bus import EVENTS, SCANNERS, SNAPSHOT, TICKS, Bus, EntryId, SnapshotDocument, StreamEvent, TickReady
from ubot.market.view import SnapshotView
from ubot.messages import Candled
from ubot.stream.events import snapshot_event

_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


def event_data(data: Mapping[str, Any]) -> str:
    """An event's data as one line of strict JSON (``ValueError``/``TypeError`` when it is not JSON:
    NaN, or values JSON has no form for)."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class EventPublisher:
    def __init__(self, bus: Bus, split: bool = False) -> None:
        """``split``: scanner processes scan (``[cluster] scanners = external``): each ``TickReady``
        names the live ones; otherwise none (the engine scans itself: a scanner process then owns
        nothing, so no strategy is scanned twice)."""
        self.bus = bus
        self.split = split
        self.ticks = 0

    def publish(self, event: str, data: Mapping[str, Any], user_id: int | None = None) -> EntryId:
        """One stream event (``snapshot``, or ``alert`` with its ``user_id``); its entry id, which is
        the event's SSE id on every gateway."""
        if not _EVENT_NAME.fullmatch(event):
            raise ValueError(f"invalid event name {event!r}")
        return self.bus.publish(EVENTS, StreamEvent(event, event_data(data), user_id))

    def tick(self, message: Candled, view: SnapshotView) -> EntryId:
        """A tick's snapshot is stored and candled: its document, ``TickReady``, its event."""
        snapshot = message.snapshot
        self.bus.set_latest(
            SNAPSHOT, SnapshotDocument(view.etag, view.body, message.snapshot_id, snapshot.timestamp_ms)
        )
        self.ticks += 1
        self.bus.publish(
            TICKS,
            TickReady(
                number=self.ticks,
                snapshot_id=message.snapshot_id,
                snapshot_ms=snapshot.timestamp_ms,
                scheduled_ms=message.tick.scheduled_ms,
                fired_ms=message.tick.fired_ms,
                scanners=self.bus.members(SCANNERS) if self.split else (),  # scan/assign.py
            ),
        )
        return self.publish("snapshot", snapshot_event(snapshot, etag=view.etag))
