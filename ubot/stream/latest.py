"""The snapshot a gateway serves (``GET /v1/snapshot``): the latest
:class:`~ubot.bus.SnapshotDocument` the engine set on the bus, its bytes and ETag as they are.

``?symbols=`` answers need the document's coins: its :class:`~ubot.market.view.SnapshotView` is
rebuilt from the bytes once per document (by ETag), on the first request that filters.
"""

from __future__ import annotations

import threading

from ubot.bus import SNAPSHOT, Bus, SnapshotDocument
from ubot.market.view import SnapshotView


class LatestSnapshot:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._view: SnapshotView | None = None
        self._lock = threading.Lock()

    def document(self) -> SnapshotDocument | None:
        """The latest document; None before the first tick. ``BusUnavailable`` when the bus is down."""
        doc = self.bus.get_latest(SNAPSHOT)
        return doc if isinstance(doc, SnapshotDocument) else None

    def get(self, symbols: tuple[str, ...] | None) -> tuple[bytes, str] | None:
        """(body, ETag) of the latest document, or of its ``symbols`` only; None before the first."""
        doc = self.document()
        if doc is None:
            return None
        if symbols is None:
            return doc.body, doc.etag
        return self.view(doc).filtered(symbols)

    def view(self, doc: SnapshotDocument) -> SnapshotView:
        with self._lock:
            if self._view is None or self._view.etag != doc.etag:
                self._view = SnapshotView.from_document(doc.body, doc.etag, doc.snapshot_ms)
            return self._view
