"""Fetcher actor: on each Tick, ask the market source for one snapshot, parse it, pass it on."""

from __future__ import annotations

import functools
import logging
import time
from typing import Any

import pykka

from ubot.actors.stage import Stage, unexpected
from ubot.logtext import printable
from ubot.market.snapshot import MarketDataError, Snapshot, parse_listings
from ubot.market.source import FatalSourceError, MarketSource, SourceError, SourceExhausted
from ubot.messages import Fetched, SourceFailed
from ubot.messages import SourceExhausted as Exhausted
from ubot.schedule import Tick

log = logging.getLogger(__name__)


class Fetcher(Stage):
    name = "fetch"

    def __init__(
        self, source: MarketSource, store: pykka.ActorRef, monitor: pykka.ActorRef, convert: str
    ) -> None:
        super().__init__(monitor)
        self.source = source
        self.store = store
        self.convert = convert

    def on_stop(self) -> None:
        self.source.close()
        super().on_stop()

    @functools.singledispatchmethod
    def receive(self, message: Any) -> Any:
        unexpected(self, message)

    @receive.register
    def _fetch(self, message: Tick) -> None:
        started = time.perf_counter()
        try:
            raw = self.source.fetch(message.scheduled_ms)
        except SourceExhausted:
            self.monitor.tell(Exhausted(message))
            return
        except FatalSourceError as exc:
            log.error("market source failed for good: %s", printable(exc))
            self.monitor.tell(SourceFailed(message, str(exc)))
            return
        except SourceError as exc:
            log.warning("tick %d skipped: %s", message.number, printable(exc))
            self.skip(message, str(exc), started)
            return
        try:
            snapshot = raw.snapshot
            if snapshot is None:
                snapshot = parse_listings(raw.listings, self.convert, raw.global_metrics)
        except MarketDataError as exc:
            reason = f"{raw.origin or self.source.name}: {exc}"
            log.warning("tick %d skipped: %s", message.number, printable(reason))
            self.skip(message, reason, started)
            return
        _report(snapshot, raw.origin or self.source.name)
        self.store.tell(
            Fetched(
                tick=message,
                snapshot=snapshot,
                source=self.source.name,
                stages=(("fetch", self.elapsed_ms(started)),),
                position=raw.position,
            )
        )


def _report(snapshot: Snapshot, origin: str) -> None:
    if snapshot.dropped or snapshot.nulled:
        log.warning(
            "%s: %d coin(s) dropped, %d field(s) of the wrong type set to null; first: %s",
            origin,
            snapshot.dropped,
            snapshot.nulled,
            printable(snapshot.warnings[0]) if snapshot.warnings else "-",
        )
