"""Store actor: write each snapshot in one transaction, prune old raw quotes, pass it on."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import pykka

from ubot.actors.stage import Stage, unexpected
from ubot.logtext import printable
from ubot.messages import Fetched, Stored
from ubot.models.store import SnapshotWriter
from ubot.timeutil import iso_from_ms

log = logging.getLogger(__name__)

PRUNE_EVERY_MS = 3_600_000  # of data time


class Store(Stage):
    name = "store"

    def __init__(
        self,
        writer: SnapshotWriter,
        ohlc: pykka.ActorRef,
        monitor: pykka.ActorRef,
        retention_ms: int,
    ) -> None:
        super().__init__(monitor)
        self.writer = writer
        self.ohlc = ohlc
        self.retention_ms = retention_ms
        self._next_prune_ms: int | None = None

    @functools.singledispatchmethod
    def receive(self, message: Any) -> Any:
        unexpected(self, message)

    @receive.register
    def _store(self, message: Fetched) -> None:
        started = time.perf_counter()
        snapshot = message.snapshot
        snapshot_id = self.writer.write(snapshot, message.source)
        if snapshot_id is None:
            reason = f"duplicate snapshot timestamp {iso_from_ms(snapshot.timestamp_ms)}: already stored"
            log.warning("tick %d skipped: %s", message.tick.number, printable(reason))
            self.skip(message, reason, started)
            return
        self._maybe_prune(snapshot.timestamp_ms)
        self.ohlc.tell(
            Stored.extend(message, snapshot_id=snapshot_id).timed(self.name, self.elapsed_ms(started))
        )
        self.writer.checkpoint()  # overlaps the OHLC stage

    def _maybe_prune(self, now_ms: int) -> None:
        if self._next_prune_ms is not None and now_ms < self._next_prune_ms:
            return
        self._next_prune_ms = now_ms + PRUNE_EVERY_MS
        pruned = self.writer.prune(now_ms - self.retention_ms)
        if pruned:
            log.info("pruned raw quotes of %d snapshot(s) older than the retention", pruned)
