"""Container actor: holds the latest snapshot (serialized, with its ETag) and every open candle.

After each tick it hands the tick and its document to ``publish`` (``EventPublisher.tick``: the
document, ``TickReady`` and the ``snapshot`` event onto the bus, after the Store and the OHLC have
committed). The gateway asks it instead of reading the database: ``GetSnapshot`` answers with ready bytes,
``ResolveCoin`` maps a symbol or id to a coin of the latest snapshot, ``GetOpenCandle`` gives the
still-open candle that the candle endpoint appends to the closed ones from the database.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import pykka

from ubot.actors.stage import Stage, unexpected
from ubot.bus import BusUnavailable
from ubot.market.candles import CandleRows
from ubot.market.view import SnapshotView
from ubot.messages import Candled, GetOpenCandle, GetSnapshot, ResolveCoin, TickDone

log = logging.getLogger(__name__)


class Container(Stage):
    name = "container"

    def __init__(
        self,
        monitor: pykka.ActorRef,
        publish: Callable[[Candled, SnapshotView], object] | None = None,
    ) -> None:
        super().__init__(monitor)
        self.publish = publish
        self.view: SnapshotView | None = None
        self.open_candles: Mapping[str, CandleRows] = {}

    @functools.singledispatchmethod
    def receive(self, message: Any) -> Any:
        unexpected(self, message)

    @receive.register
    def _update(self, message: Candled) -> None:
        started = time.perf_counter()
        self.view = SnapshotView.build(message.snapshot)
        self.open_candles = message.open_candles
        done = message.timed(self.name, self.elapsed_ms(started))
        if self.publish is not None:  # the document, TickReady and the snapshot event (the bus)
            try:
                self.publish(message, self.view)
            except BusUnavailable as error:  # the bus says its outage once (bus/outage.py)
                log.debug("snapshot %s not published: %s", message.snapshot_id, error)
            except Exception:  # kept in the database: never lose the tick for the bus
                log.exception("publishing snapshot %s failed", message.snapshot_id)
        self.monitor.tell(
            TickDone(
                tick=done.tick,
                stages=done.stages,
                coins=len(message.snapshot),
                snapshot_ms=message.snapshot.timestamp_ms,
                position=message.position,
            )
        )

    @receive.register
    def _snapshot(self, query: GetSnapshot) -> tuple[bytes, str] | None:
        if self.view is None:
            return None
        if query.symbols is None:
            return self.view.body, self.view.etag
        return self.view.filtered(query.symbols)

    @receive.register
    def _resolve(self, query: ResolveCoin) -> tuple[int, str] | None:
        """(coin id, symbol) of a coin in the latest snapshot, or None."""
        key = query.key
        view = self.view
        if view is None:
            return None
        index = view.by_id.get(int(key)) if key.isdigit() else view.by_symbol.get(key.upper())
        if index is None:
            return None
        return view.ids[index], view.symbols[index]

    @receive.register
    def _open_candle(self, query: GetOpenCandle) -> tuple | None:
        """``(open_time, open, high, low, close)`` of the coin's open candle, or None."""
        rows = self.open_candles.get(query.timeframe)
        return None if rows is None else rows.candle_of(query.coin_id)
