"""Starting and stopping the actor system, in one explicit order.

Start: Monitor, UserManager, Notifier (resumes unsent deliveries; pauses strategies through the
UserManager), Scanner (asks the UserManager for
every enabled strategy and starts its workers), Container, OHLC (restores candles), Store, Fetcher,
History, then the Clock last, so the first tick finds every stage ready. Stop: the Clock first (no new
ticks), then each stage in pipeline order, then the Scanner (its workers finish their scan and tell
the Notifier), the Notifier (writes what its senders finished; the rest stays pending in the
database), and the rest. pykka queues the stop request behind messages already in a mailbox, so a
tick in flight is carried to the end (stored, candled, published, scanned, its alerts written) before
its stage stops: nothing is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pykka
from peewee import Database

from ubot.actors.clock import ClockActor
from ubot.actors.container import Container
from ubot.actors.dryrun import DryRunActor
from ubot.actors.fetcher import Fetcher
from ubot.actors.history import HistoryActor
from ubot.actors.monitor import Monitor
from ubot.actors.notifier import Claims, Notifier
from ubot.actors.ohlc import Ohlc
from ubot.actors.scanner import Scanner
from ubot.actors.store import Store
from ubot.actors.user_manager import UserManagerActor
from ubot.clocks import Clock, SystemClock
from ubot.market.source import MarketSource
from ubot.market.view import SnapshotView
from ubot.messages import Candled
from ubot.models.alerts import AlertStore
from ubot.models.candle_blocks import start_packing
from ubot.models.candle_store import FLUSH_EVERY_MS, CandleStore
from ubot.models.closes import closed_candles
from ubot.models.dryrun import DryRunReader
from ubot.models.history import History
from ubot.models.snapshots import SnapshotReader
from ubot.models.store import SnapshotWriter
from ubot.models.users import UserStore
from ubot.notify.channel import Channel
from ubot.notify.channels.telegram_updates import Poller
from ubot.notify.messages import TellReleases
from ubot.periodic import Periodic
from ubot.scan import dryrun
from ubot.scan.cost import Budgets
from ubot.scan.messages import DisableStrategy
from ubot.stopping import StopToken
from ubot.users.manager import UserManager
from ubot.users.market import LatestMarket

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
    scanner: pykka.ActorRef | None = None
    notifier: pykka.ActorRef | None = None
    dry_runs: tuple[pykka.ActorRef, ...] = ()
    #: Reads and answers the Telegram bot's messages (or sets its webhook), when the bot has a
    #: username (``[notify] telegram_bot_username``): in the engine (or ``all``), one per server.
    telegram_updates: Poller | None = None
    #: Packs closed candles into blocks for bulk reads (``models/candle_blocks.py``): the engine's.
    packer: Periodic | None = None
    #: Set first by :func:`stop_system`: long work that is no tick (planning every strategy at the
    #: start, a crash's catch-up) is abandoned between chunks (``ubot/stopping.py``).
    stop: StopToken = field(default_factory=StopToken)


@dataclass(frozen=True)
class AlertOptions:
    """How alerts are scanned and delivered (``[scanner]`` and ``[notify]`` settings)."""

    workers: int = 10
    channels: Mapping[str, Channel] = field(default_factory=dict)
    max_attempts: int = 8
    backoff_s: float = 5.0
    backoff_max_s: float = 900.0
    #: Sends of one user in flight at once on a channel (``[notify] sends_per_user``).
    sends_per_user: int = 2
    allow_local_webhooks: bool = False
    #: ``[notify] messages_per_user_hour`` / ``messages_per_destination_hour`` (``None``: no cap).
    messages_per_user_hour: int | None = None
    messages_per_destination_hour: int | None = None
    #: ``[notify] pause_after_alerts`` alerts within ``pause_window_s`` pause a strategy (``None``: never).
    pause_after_alerts: int | None = None
    pause_window_s: float = 600.0
    #: Days of alerts kept (``[notify] retention_days``); ``None``: kept for ever.
    retention_days: int | None = None
    #: ``[http] public_url``: alert messages link to the coin there ("" = no link).
    public_url: str = ""
    #: The Scanner's budgets (``[scanner] user_budget``, ``server_budget``), checked when strategies are saved.
    budgets: Budgets = field(default_factory=Budgets)
    #: ``publish(event, data, user_id)``: an alert event for the stream (``EventPublisher.publish``).
    publish: Callable[[str, Mapping[str, Any], int | None], Any] | None = None
    #: ``publish_tick(candled, view)`` after each tick (``EventPublisher.tick``): its document,
    #: ``TickReady`` and the snapshot event, onto the bus.
    publish_tick: Callable[[Candled, SnapshotView], Any] | None = None
    #: The engine scans (``[cluster] scanners = internal``); False: scanner processes do, no Scanner.
    scan: bool = True
    #: The engine delivers (``[cluster] notifiers = internal``); False: notifier processes only.
    deliver: bool = True
    #: Deliveries claimed from the outbox beside other notifier processes (the engine role);
    #: None: handed to the senders as written (role all, one process).
    claims: Claims | None = None


def user_manager(
    db: Database, clock: Clock, convert: str, alerts: AlertOptions, market: LatestMarket | None = None
) -> UserManager:
    """The UserManager of this configuration: the one of ``all``/``engine`` and a gateway's alike.

    ``market``: the latest snapshot's coins, to refuse strategies on coins this server does not
    fetch; a gateway role has none (no Container), so there ``symbols`` and ``top_n`` are checked
    against their limits only, as before a first snapshot."""
    return UserManager(
        UserStore(db),
        clock,
        currencies=(convert,),
        allow_local_webhooks=alerts.allow_local_webhooks,
        channels=tuple(alerts.channels) or None,  # none at all: a test system, not checked
        market=market,
        budgets=alerts.budgets,
    )


@dataclass
class GatewayActors:
    """A gateway role's actors: reads of the database (history, alerts) and the UserManager."""

    history: pykka.ActorRef
    users: pykka.ActorRef
    dry_runs: tuple[pykka.ActorRef, ...] = ()

    def stop(self, timeout: float = 30.0) -> None:
        for ref in (self.users, self.history, *self.dry_runs):
            try:
                ref.stop(block=True, timeout=timeout)
            except pykka.Timeout:
                log.error("an actor of the gateway did not stop within %.0f s", timeout)


def start_gateway_actors(
    db: Database,
    *,
    convert: str,
    alerts: AlertOptions,
    on_changed: Callable[[int], object],
    clock: Clock | None = None,
) -> GatewayActors:
    """``--role gateway``: no pipeline; the History actor (which answers ``GetAlerts`` and
    ``GetOpenCandle`` too, from the database) and a
    UserManager whose changes are announced with ``on_changed`` (onto the bus, for the engine)."""
    clock = clock or SystemClock()
    history = HistoryActor.start(History(db), AlertStore(db), CandleStore(db))
    users = UserManagerActor.start(user_manager(db, clock, convert, alerts), on_changed=on_changed)
    return GatewayActors(history, users, start_dry_runs(db))


def start_dry_runs(db: Database) -> tuple[pykka.ActorRef, ...]:
    """The gateway's DryRun actors (``scan/dryrun.py: WORKERS``), each on its own connection."""
    return tuple(DryRunActor.start(DryRunReader(db)) for _ in range(dryrun.WORKERS))


def start_system(
    db: Database,
    source: MarketSource,
    *,
    interval_s: float,
    convert: str = "USD",
    retention_days: int = 7,
    candle_write_minutes: int = FLUSH_EVERY_MS // 60_000,
    max_ticks: int = 0,
    clock: Clock | None = None,
    on_finished: Callable[[str], None] | None = None,
    alerts: AlertOptions | None = None,
    database_watch: Callable[[], str | None] | None = None,
    deliver_replayed: bool = False,
) -> Actors:
    clock = clock or SystemClock()
    alerts = alerts or AlertOptions()
    stop = StopToken()
    monitor = Monitor.start(
        source.name,
        clock,
        max_ticks=max_ticks,
        on_finished=on_finished,
        source_status=getattr(source, "status", None),  # sources that report their own health
        wait_for_scans=interval_s == 0 and alerts.scan,  # back-to-back ticks: never outrun the Scanner
        database_watch=database_watch,  # the SQLite file deleted or replaced: stop, say so
    )
    if source.name == "replay":
        log.warning(
            "replay: alerts are written to the alert log marked replayed, and %s",
            "delivered too (--deliver)" if deliver_replayed else "never sent (--deliver to send them)",
        )
    market = LatestMarket()  # the latest snapshot's coins, for checking strategies as they are saved
    users = UserManagerActor.start(user_manager(db, clock, convert, alerts, market))

    def pause(strategy_id: int, reason: str) -> None:
        users.tell(DisableStrategy(strategy_id, reason))

    notifier = Notifier.start(
        AlertStore(db, replay=source.name == "replay", deliver_replayed=deliver_replayed),
        alerts.channels,
        clock,
        max_attempts=alerts.max_attempts,
        backoff_s=alerts.backoff_s,
        backoff_max_s=alerts.backoff_max_s,
        sends_per_user=alerts.sends_per_user,
        publish=alerts.publish,
        retention_ms=None if alerts.retention_days is None else alerts.retention_days * DAY_MS,
        public_url=alerts.public_url,
        simulated=source.name == "simulated",
        claims=alerts.claims,
        deliver=alerts.deliver,
        messages_per_user_hour=alerts.messages_per_user_hour,
        messages_per_destination_hour=alerts.messages_per_destination_hour,
        pause_after_alerts=alerts.pause_after_alerts,
        pause_window_s=alerts.pause_window_s,
        pause=pause,
    )
    users.tell(TellReleases(notifier))  # before any request: the gateway serves after this returns
    candle_store = CandleStore(db, candle_write_minutes * 60_000)
    scanner = (
        Scanner.start(
            alerts.workers,
            users=users,
            notifier=notifier,
            monitor=monitor,
            load=closed_candles,
            snapshots=SnapshotReader(db),
            now_ms=lambda: int(clock.now() * 1000),
            stop=stop,
        )
        if alerts.scan
        else None  # scanner processes scan (``[cluster] scanners = external``)
    )
    container = Container.start(monitor, market.then(alerts.publish_tick))
    ohlc = Ohlc.start(candle_store, container, monitor, scanner=scanner)
    try:  # answered only after on_start (the candle restore) has run
        ohlc.proxy().watermark.get(timeout=600)
    except pykka.ActorDeadError:
        pykka.ActorRegistry.stop_all()
        raise StartupError("restoring the candles failed (see the error above)") from None
    store = Store.start(SnapshotWriter(db), ohlc, monitor, retention_days * DAY_MS)
    fetcher = Fetcher.start(source, store, monitor, convert)
    history = HistoryActor.start(History(db))
    dry_runs = start_dry_runs(db)
    ticker = ClockActor.start(interval_s, clock, fetcher, monitor)
    return Actors(
        monitor,
        container,
        ohlc,
        store,
        fetcher,
        history,
        ticker,
        users,
        scanner,
        notifier,
        dry_runs,
        telegram_poller(alerts, users),
        # Maintenance on the wall clock, not the injected one: a test stepping a FakeClock steps
        # the ticks alone (the packer's beat is tested on its own, tests/models/test_candle_blocks.py).
        start_packing(db, SystemClock()),
        stop,
    )


def telegram_poller(alerts: AlertOptions, users: pykka.ActorRef) -> Poller | None:
    """The bot's messages (``/start <token>`` linking users' chats, ``/list``, ``/pause``...:
    ``ubot/users/bot.py``), when the bot has a username (``[notify] telegram_bot_username``): one
    reader of the bot's updates per server (Telegram refuses two ``getUpdates`` at once): the
    engine's (one holds the engine lock), not the notifier processes'. With ``[http] public_url``
    it sets the webhook instead and ends; the gateway answers the updates Telegram POSTs."""
    channel = alerts.channels.get("telegram")
    if channel is None or not getattr(channel, "bot_username", "") or not hasattr(channel, "updates"):
        return None
    manager = users.proxy().manager

    def answer(chat_id: str, text: str) -> str | None:
        return manager.telegram_message(chat_id, text).get(timeout=30)

    return Poller(channel.updates(answer, alerts.public_url)).start()


def stop_system(actors: Actors, timeout: float = 30.0) -> None:
    """Stop in order, waiting for each stage to finish what is already in its mailbox: the tick in
    flight is stored, candled, scanned and its alerts written; long work that is no tick is
    abandoned (:attr:`Actors.stop`)."""
    actors.stop.set()
    if actors.telegram_updates is not None:
        actors.telegram_updates.stop()
    if actors.packer is not None:
        actors.packer.close(join_s=timeout)
    order = (
        "clock",
        "fetcher",
        "store",
        "ohlc",
        "container",
        "scanner",
        "notifier",
        "monitor",
        "history",
        "users",
    )
    refs = [(name, getattr(actors, name)) for name in order]
    for name, ref in refs + [("a dry run", ref) for ref in actors.dry_runs]:
        if ref is None:
            continue
        try:
            ref.stop(block=True, timeout=timeout)
        except pykka.Timeout:
            log.error("%s did not stop within %.0f s", name, timeout)
