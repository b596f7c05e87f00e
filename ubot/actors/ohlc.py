"""OHLC actor: fold each stored snapshot into the candles, write the closed candles when a batch is
due (``models/candle_store.py``), pass the snapshot on."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping
from typing import Any

import pykka

from ubot.actors.stage import Stage, tell_if_alive, unexpected
from ubot.logtext import error_line
from ubot.market.candles import CandleBook, CandleRows
from ubot.messages import Candled, StageFault, Stored
from ubot.models.candle_store import CandleStore

log = logging.getLogger(__name__)


class Ohlc(Stage):
    name = "ohlc"

    def __init__(
        self,
        candles: CandleStore,
        container: pykka.ActorRef,
        monitor: pykka.ActorRef,
        scanner: pykka.ActorRef | None = None,
    ) -> None:
        super().__init__(monitor)
        self.scanner = scanner
        self.candles = candles
        self.container = container
        self.book = CandleBook()
        self.watermark = 0
        self.fault = ""  # why the last write of the closed candles failed; "": it did not

    def on_start(self) -> None:
        """Continue where the last run stopped: open candles, then snapshots it had not folded."""
        replay = self.candles.catch_up()
        self.book, self.watermark = replay.book, replay.last
        if len(self.book):
            log.info(
                "candles restored for %d coin(s)%s",
                len(self.book),
                f", {replay.behind} stored snapshot(s) folded in again" if replay.behind else "",
            )

    @functools.singledispatchmethod
    def receive(self, message: Any) -> Any:
        unexpected(self, message)

    @receive.register
    def _fold(self, message: Stored) -> None:
        started = time.perf_counter()
        closed: Mapping[str, CandleRows] = {}
        if message.snapshot_id <= self.watermark:
            # Already folded in by on_start's catch-up: count it once only.
            pass
        else:
            snap = message.snapshot
            update = self.book.apply(snap.ids, snap.quote_ts_ms, snap.column("price"))
            if update.late:
                log.warning(
                    "tick %d: %d quote(s) older than their coin's open candle ignored",
                    message.tick.number,
                    update.late,
                )
            if self.candles.add(update, message.snapshot_id, snap.timestamp_ms):
                # Before the tick is handed on, never after: the Scanner's Notifier and the next
                # tick's Store write right after it, and on SQLite one write lock serves them all. A
                # write after the hand-on overlaps theirs; short of CPU, this thread even lost the
                # GIL to the tick's next stages and its write came after the next snapshot's, holding
                # the lock while they waited (tests/test_graceful.py, docs/architecture.md).
                self._flush()
            self.watermark = message.snapshot_id
            closed = update.closed
        open_candles = {tf: self.book.open_candles(tf) for tf in self.book.timeframes}
        candled = Candled.extend(message, open_candles=open_candles, closed_candles=closed)
        self.container.tell(candled.timed(self.name, self.elapsed_ms(started)))
        # Straight from here, not after the Container: the scan need not wait for the snapshot's JSON
        # (bench/alerts.py, 5,000 coins: alert latency p50 177 ms before, 161 ms after).
        if self.scanner is not None and not tell_if_alive(self.scanner, candled):
            log.error("the Scanner has stopped: tick %d is not scanned", message.tick.number)

    def _flush(self) -> None:
        """Write the closed candles. A failure keeps them for the next tick's attempt, and is on
        ``/health`` until a write works again (``StageFault``)."""
        try:
            self.candles.flush()
        except Exception as exc:  # noqa: BLE001 - the candles stay kept: the next flush writes them
            log.exception("writing the closed candles failed (they are kept for the next write)")
            self._fault(
                f"writing the closed candles failed (kept for the next write): {type(exc).__name__}: {error_line(exc)}"
            )
        else:
            self._fault("")

    def _fault(self, problem: str) -> None:
        if problem != self.fault:
            self.fault = problem
            tell_if_alive(self.monitor, StageFault(self.name, problem))

    def on_stop(self) -> None:
        self._flush()
        super().on_stop()
