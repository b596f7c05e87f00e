"""Starting and stopping the actor system, in one explicit order.

Start: Monitor, Container, OHLC (restores candles), Store, Fetcher, History, UserManager, then
the Clock last, so the first tick finds every stage ready. Stop: the Clock first (no new ticks), then each stage in
pipeline order; pykka queues the stop request behind messages already in a mailbox, so a tick in
flight is carried to the end (stored, candled, published) before its stage stops: nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pykka
from peewee import Database

from ubot.actors.clock import ClockActor
from ubot.actors.container import Container
from ubot.actors.fetcher import Fetcher
from ubot.actors.history import HistoryActor
from ubot.actors.monitor import Monitor
from ubot.actors.ohlc import Ohlc
from ubot.actors.store import Store
from ubot.actors.user_manager import UserManagerActor
from ubot.clocks import Clock, SystemClock
from ubot.market.source import MarketSource
from ubot.models.candle_store import CandleStore
from ubot.models.history import History
from ubot.models.store import SnapshotWriter
from ubot.models.users import UserStore
from ubot.users.manager import UserManager

log = logging.getLogger(__name__)
DAY_MS = 86_400_000


class StartupError(RuntimeError):
    """The actor system could not start; the message says which part failed."""


@dataclass
class Actors:
    monitor: pykka.ActorRef
    container: pykka.ActorRef
    ohlc: pykka.ActorRef
    store: pykka.ActorRef
    fetcher: pykka.ActorRef
    history: pykka.ActorRef
    clock: pykka.ActorRef
    users: pykka.ActorRef | None = None


def start_system(
    db: Database,
    source: MarketSource,
    *,
    interval_s: float,
    convert: str = "USD",
    retention_days: int = 7,
    max_ticks: int = 0,
    clock: Clock | None = None,
    on_finished: Callable[[str], None] | None = None,
) -> Actors:
    clock = clock or SystemClock()
    monitor = Monitor.start(
        source.name,
        clock,
        max_ticks=max_ticks,
        on_finished=on_finished,
        source_status=getattr(source, "status", None),  # sources that report their own health
    )
    container = Container.start(monitor)
    ohlc = Ohlc.start(CandleStore(db), container, monitor)
    try:  # answered only after on_start (the candle restore) has run
        ohlc.proxy().watermark.get(timeout=600)
    except pykka.ActorDeadError:
        pykka.ActorRegistry.stop_all()
        raise StartupError("restoring the candles failed (see the error above)") from None
    store = Store.start(SnapshotWriter(db), ohlc, monitor, retention_days * DAY_MS)
    fetcher = Fetcher.start(source, store, monitor, convert)
    history = HistoryActor.start(History(db))
    users = UserManagerActor.start(UserManager(UserStore(db), clock, currencies=(convert,)))
    ticker = ClockActor.start(interval_s, clock, fetcher, monitor)
    return Actors(monitor, container, ohlc, store, fetcher, history, ticker, users)


def stop_system(actors: Actors, timeout: float = 30.0) -> None:
    """Stop in order, waiting for each stage to finish what is already in its mailbox."""
    for name in ("clock", "fetcher", "store", "ohlc", "container", "monitor", "history", "users"):
        ref: pykka.ActorRef | None = getattr(actors, name)
        if ref is None:
            continue
        try:
            ref.stop(block=True, timeout=timeout)
        except pykka.Timeout:
            log.error("%s did not stop within %.0f s", name, timeout)
