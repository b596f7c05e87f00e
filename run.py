#!/usr/bin/env python3
"""Start uBot: the market pipeline (Clock -> Fetcher -> Store -> OHLC -> Container) and the gateway.

    python run.py                       # simulated market, SQLite file ubot.db, http://127.0.0.1:8080
    python run.py --source replay --replay-dir recordings/ --interval 0 --ticks 100 --no-http
    python run.py check                 # validate settings, database, schema and source; start nothing
    python run.py --version

Settings come from settings.ini, then UBOT_<SECTION>_<OPTION> environment variables, then these
flags. Everything is started and stopped here, in order.
"""

from __future__ import annotations

import argparse
import gc
import logging
import logging.handlers
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

#: Set by a SIGINT or SIGTERM that came while uBot was starting (:func:`catch_early_signals`).
EARLY_SIGNAL = threading.Event()
#: Set once the start checks begin (the database may be opened, the schema changed).
CHECKING = threading.Event()


def catch_early_signals() -> None:
    """Before anything else (the imports below take seconds on a busy machine), SIGINT and SIGTERM:
    while modules load and settings are read, nothing is open yet: uBot exits 0 at once, saying so;
    during the start checks (a schema being created or upgraded) the signal is kept
    (:data:`EARLY_SIGNAL`), and uBot exits 0 once they are done, starting nothing."""

    def on_signal(signum: int, frame: object) -> None:
        EARLY_SIGNAL.set()
        if not CHECKING.is_set():  # nothing is open: no need (and no safe way: an import may swallow
            # SystemExit) to unwind what is loading
            print(f"ubot: {signal.Signals(signum).name} while starting: stopped", file=sys.stderr, flush=True)
            os._exit(0)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


if __name__ == "__main__":
    catch_early_signals()

# The imports after catch_early_signals (ruff.toml lets run.py have them here).
from peewee import DatabaseError

from ubot import __version__
from ubot.backfill import ReplayRefused, backfill, backfill_times, newer_than_backfill, older_than_history
from ubot.cluster import RedisUnavailable
from ubot.config import ConfigError, Settings, load_settings, resolved_source
from ubot.engine_lock import EngineLocked, acquire, probe
from ubot.http.server import BindError, GatewayServer, check_bind, multiprocess_metrics
from ubot.market.source import FatalSourceError
from ubot.models.db import DatabaseConfigError, open_database, redact, sqlite_path
from ubot.models.schema import SchemaError, ensure_quote_currency, ensure_schema, pending_migrations
from ubot.scan.cost import Budgets
from ubot.timeutil import iso_from_ms

log = logging.getLogger("ubot")

FLAGS = {
    "source": ("market", "source"),
    "replay_dir": ("market", "replay_dir"),
    "record": ("market", "record_dir"),
    "interval": ("market", "interval"),
    "limit": ("market", "limit"),
    "seed": ("market", "seed"),
    "ticks": ("market", "ticks"),
    "db": ("database", "url"),
    "bind": ("http", "bind"),
    "role": ("cluster", "role"),
    "redis": ("cluster", "redis_url"),
    "metrics": ("cluster", "metrics"),
    "workers": ("http", "workers"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="run.py",
        description="uBot: watches the crypto market and serves it over HTTP. Flags override "
        "settings.ini and UBOT_<SECTION>_<OPTION> environment variables.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["check"],
        help="check: validate settings, database, schema and source, print what would run, "
        "and exit (0: all is well, 2: one line per problem on stderr)",
    )
    parser.add_argument("--version", action="version", version=f"ubot {__version__}")
    parser.add_argument("--config", metavar="FILE", help="settings file (default: settings.ini if present)")
    parser.add_argument(
        "--source",
        metavar="NAME",
        help="market source: auto, simulated, replay or cmc (default auto: cmc with an API key, "
        "else simulated)",
    )
    parser.add_argument("--replay-dir", metavar="DIR", help="directory of recorded responses to replay")
    parser.add_argument(
        "--record",
        metavar="DIR",
        help="record every response pair fetched (CoinMarketCap or simulated) into DIR (replay format)",
    )
    parser.add_argument(
        "--interval", metavar="SECONDS", help="seconds between ticks, on UTC boundaries (0: back-to-back)"
    )
    parser.add_argument("--limit", metavar="N", help="number of coins per snapshot (1..5000)")
    parser.add_argument("--seed", metavar="N", help="seed of the simulated market")
    parser.add_argument(
        "--db", metavar="URL", help="database URL: sqlite:///path or postgresql://user@host:port/name"
    )
    parser.add_argument("--bind", metavar="HOST:PORT", help="gateway address (default 127.0.0.1:8080)")
    parser.add_argument(
        "--role",
        metavar="ROLE",
        help="all (default: everything in this process), engine (the pipeline; one active per "
        "database, others stand by), scanner (any number: they split the strategies), notifier "
        "(any number: they share the outbox) or gateway (the HTTP API); every role but all needs "
        "PostgreSQL (--db) and Redis (--redis)",
    )
    parser.add_argument("--redis", metavar="URL", help="Redis for the roles: redis://host:port/db")
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve GET /metrics there (--role engine, scanner or notifier, which serve no other HTTP)",
    )
    parser.add_argument(
        "--workers",
        metavar="N",
        help="gateway processes sharing the port (--role gateway only; default 1): gunicorn workers, "
        "each following the bus on its own, /metrics summed over them",
    )
    parser.add_argument("--ticks", metavar="N", help="stop after N ticks and exit 0 (0: run forever)")
    parser.add_argument("--no-http", action="store_true", help="run the pipeline without the gateway")
    parser.add_argument(
        "--deliver",
        action="store_true",
        help="replay: deliver its alerts too (by default they are only logged, marked replayed)",
    )
    parser.add_argument(
        "--backfill",
        nargs="?",
        const="",
        metavar="DAYS",
        help="simulated: make DAYS of history before now (stored, candles built, nothing scanned); "
        "replay (no DAYS): add recordings older than the newest stored snapshot to the history "
        "(candles rebuilt for their range, nothing scanned); then exit",
    )
    parser.add_argument("--log-level", metavar="LEVEL", help="DEBUG, INFO, WARNING or ERROR")
    return parser.parse_args(argv)


def load(args: argparse.Namespace) -> Settings:
    overrides = {key: getattr(args, flag) for flag, key in FLAGS.items() if getattr(args, flag) is not None}
    if args.no_http:
        overrides[("http", "enabled")] = "false"
    if args.deliver:
        overrides[("market", "replay_deliver")] = "true"
    if args.backfill == "":
        overrides[("market", "backfill")] = "true"
    elif args.backfill is not None:
        overrides[("market", "backfill_days")] = args.backfill
    if args.log_level is not None:
        overrides[("log", "level")] = args.log_level
    path = args.config or "settings.ini"
    return load_settings(path, overrides=overrides, required=args.config is not None)


def budgets_of(settings: Settings) -> Budgets:
    """The Scanner's budgets of ``[scanner]``, checked when strategies are saved."""
    return Budgets(user=settings.scanner.user_budget, server=settings.scanner.server_budget)


def start_pipeline(settings: Settings, on_finished, publisher=None):
    """Take the database's engine lock, open the database and source, start the actors. Returns
    (lock, actors): release the lock after stopping the actors. ``publisher``: an
    :class:`~ubot.stream.publisher.EventPublisher` that puts each tick's document and events and the
    alert events on the bus the gateway reads. Raises :class:`EngineLocked` when another engine
    runs on the database."""
    lock = acquire(settings.database.url)  # held until this process ends or releases it
    try:
        return lock, _start_actors(settings, on_finished, publisher)
    except BaseException:
        lock.release()
        raise


def _start_actors(settings: Settings, on_finished, publisher):
    from ubot.actors.notifier import Claims
    from ubot.heartbeat import member_name
    from ubot.market.sources import make_source
    from ubot.models.watch import watch_database
    from ubot.notify.registry import build_channels
    from ubot.system import AlertOptions, start_system

    db = open_database(settings.database.url)
    watch = watch_database(settings.database.url)  # the file's identity, as opened
    source = make_source(settings)
    if source.name == "cmc":
        try:
            source.load_plan()  # plan limits and today's usage for /health (a free call)
        except FatalSourceError as exc:
            # check_start read the plan moments ago (or long ago, if gunicorn restarts its worker).
            # The key refused since then stops the source at the first tick, the usual way: /health
            # says why (gateway) or uBot exits 1 (headless); raising here would crash the worker.
            log.error("CoinMarketCap plan unknown: %s", exc)
    notify = settings.notify
    engine = settings.cluster.role == "engine"
    alerts = AlertOptions(
        workers=settings.scanner.workers,
        channels=build_channels(settings),
        max_attempts=notify.max_attempts,
        backoff_s=notify.backoff_s,
        backoff_max_s=notify.backoff_max_s,
        sends_per_user=notify.sends_per_user,
        allow_local_webhooks=notify.webhook_allow_private,
        retention_days=notify.retention_days,
        messages_per_user_hour=notify.messages_per_user_hour or None,
        messages_per_destination_hour=notify.messages_per_destination_hour or None,
        pause_after_alerts=notify.pause_after_alerts or None,
        pause_window_s=notify.pause_window_s,
        public_url=settings.http.public_url,
        budgets=budgets_of(settings),
        publish=publisher.publish if publisher is not None else None,
        publish_tick=publisher.tick if publisher is not None else None,
        scan=not engine or settings.cluster.scanners == "internal",
        deliver=not engine or settings.cluster.notifiers == "internal",
        # The engine claims from the outbox like a notifier process: they may run beside it.
        claims=Claims(member_name("engine"), lease_s=notify.lease_s) if engine else None,
    )
    actors = start_system(
        db,
        source,
        interval_s=settings.market.interval,
        convert=settings.market.convert,
        retention_days=settings.database.retention_days,
        candle_write_minutes=settings.database.candle_write_minutes,
        max_ticks=settings.market.ticks,
        on_finished=on_finished,
        alerts=alerts,
        database_watch=watch.check if watch is not None else None,
        deliver_replayed=settings.market.replay_deliver,
    )
    return actors


def default_signals() -> None:
    """The interpreter's own handling of SIGINT and SIGTERM (a backfill, a check: nothing to stop in
    order)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_on_signals(doing: str = "finishing the tick in flight, then stopping") -> threading.Event:
    """An event that SIGINT and SIGTERM set (logged, saying what happens next); set at once when one
    came while uBot was starting."""
    finished = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("received %s: %s", signal.Signals(signum).name, doing)
        finished.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # checked once the handler is in place: a signal in between is seen by one or the other
    if EARLY_SIGNAL.is_set():
        log.info("a stop signal came while starting: %s", doing)
        finished.set()
    return finished


def run_headless(settings: Settings) -> int:
    finished = stop_on_signals()
    from ubot.system import StartupError, stop_system

    outcome: list[str] = []

    def on_finished(why: str) -> None:
        outcome.append(why)
        finished.set()

    try:
        lock, actors = start_pipeline(settings, on_finished)
    except EngineLocked as exc:  # started between check_start and here
        print(f"ubot: {exc}", file=sys.stderr)
        return 2
    except (StartupError, FatalSourceError) as exc:
        print(f"ubot: {exc}", file=sys.stderr)
        return 1
    try:
        # A timed wait, not wait(): Linux may deliver SIGTERM to any thread, and CPython runs the
        # handler in the main thread only when it next executes bytecode; an untimed wait would
        # leave the signal pending until the source ran dry (tests/test_graceful.py).
        while not finished.wait(0.5):
            pass
    finally:
        stop_system(actors)
        lock.release()
    log.info("stopped")
    if not on_sqlite(settings):
        freeze_leftovers()
    return 1 if outcome[:1] in (["failed"], ["database"]) else 0


def run_engine(settings: Settings) -> int:
    """``--role engine``: stand by until this process holds the engine lock, then run the pipeline,
    publishing to Redis, until a signal (or ``--ticks``)."""
    from ubot.bus import STRATEGIES, BusUnavailable
    from ubot.cluster import make_bus
    from ubot.engine_lock import engine_lock
    from ubot.engine_role import Standby, follow_strategies, standby_poll_s
    from ubot.heartbeat import Heartbeat, member_name, ttl_s
    from ubot.stream.publisher import EventPublisher
    from ubot.system import StartupError, stop_system

    finished = stop_on_signals()
    outcome: list[str] = []

    def on_finished(why: str) -> None:
        outcome.append(why)
        finished.set()

    try:
        stop_metrics = serve_metrics(settings)  # a standby's too
    except OSError as exc:
        print(f"ubot: {exc}", file=sys.stderr)
        return 1
    bus = make_bus(settings)
    lock = engine_lock(settings.database.url)
    state = {"state": "standby"}  # its heartbeat, for a gateway's /health
    beat = Heartbeat(bus, "engine", member_name("engine"), ttl_s(settings.market.interval), lambda: state)
    try:
        beat.start()
        if not Standby(lock, standby_poll_s(settings.market.interval), finished).wait():
            log.info("stopped while standing by")
            return 0
        state["state"] = "active"
        beat.beat()
        log.info("engine: active (holding the engine lock of %s)", redact(settings.database.url))
        try:
            strategies_from = bus.last_id(STRATEGIES)  # before the Scanner reads every strategy
        except BusUnavailable:  # Redis is down: follow from its newest entry once it is back
            log.warning("engine: Redis is unreachable; strategy changes are followed once it is back")
            strategies_from = None
        try:
            split = settings.cluster.scanners == "external"  # TickReady names the live scanners
            actors = _start_actors(settings, on_finished, EventPublisher(bus, split=split))
        except (StartupError, FatalSourceError) as exc:
            print(f"ubot: {exc}", file=sys.stderr)
            return 1
        # Scanner processes follow the changes themselves (``[cluster] scanners = external``).
        relay = (
            follow_strategies(bus, actors.users, actors.scanner, strategies_from)
            if actors.scanner is not None
            else None
        )
        try:
            while not finished.wait(0.5):  # timed: see run_headless
                pass
        finally:
            if relay is not None:
                relay.stop()
            stop_system(actors)
    finally:
        beat.stop()
        lock.release()
        bus.close()
        stop_metrics()
    log.info("stopped")
    freeze_leftovers()
    return 1 if outcome[:1] in (["failed"], ["database"]) else 0


def freeze_leftovers() -> None:
    """A role's last step, once everything is stopped, flushed and closed: the objects still held
    are frozen (``gc.freeze``), so that the interpreter's last collection does not walk them all:
    seconds with tens of thousands of compiled strategies on a busy machine (issue 12: a stop within
    3 s); the operating system frees the memory and closes the sockets. Not on SQLite (``all``): a
    connection (which ``sqlite3`` keeps in a reference cycle) left by a thread is closed by that
    collection, and only then does SQLite remove its write-ahead log."""
    gc.freeze()


def on_sqlite(settings: Settings) -> bool:
    return sqlite_path(settings.database.url) is not None


def serve_metrics(settings: Settings) -> Callable[[], None]:
    """``[cluster] metrics`` (``--metrics``): ``GET /metrics`` of a role that serves no other HTTP;
    returns its stop. Raises OSError (with one line to say) when the address cannot be listened on."""
    if not settings.cluster.metrics:
        return lambda: None
    from ubot.metrics import serve  # here: a gateway's workers import prometheus_client later

    host, port = settings.cluster.metrics
    try:
        return serve(host, port)
    except OSError as exc:
        raise OSError(
            f"[cluster] metrics (--metrics) {host}:{port}: cannot listen there ({exc.strerror or exc})"
        ) from None


def run_worker_role(settings: Settings) -> int:
    """``--role scanner`` or ``--role notifier`` (``ubot/worker_roles.py``), until a signal."""
    from ubot.worker_roles import start_notifier, start_scanner

    finished = stop_on_signals("stopping")
    if finished.is_set():  # during the start checks: nothing to start
        log.info("stopped")
        return 0
    start = start_scanner if settings.cluster.role == "scanner" else start_notifier
    running = start(settings)
    try:
        running.stops.insert(0, serve_metrics(settings))  # stopped last
    except OSError as exc:
        running.stop()
        print(f"ubot: {exc}", file=sys.stderr)
        return 1
    try:
        while not finished.wait(0.5):  # timed: see run_headless
            pass
    finally:
        running.stop()
    log.info("stopped")
    freeze_leftovers()
    return 0


def run_gateway(settings: Settings) -> int:
    """``--role gateway``: the HTTP API with no actor of the pipeline. The snapshot and the events
    come from Redis; candles, quotes, alerts, users and strategies from PostgreSQL; a strategy
    change is announced on the ``strategies`` topic, for the engine's Scanner."""
    from ubot.bus import STRATEGIES, StrategiesChanged
    from ubot.cluster import make_bus
    from ubot.http.gateway import Gateway
    from ubot.notify.registry import build_channels
    from ubot.stream.hub import StreamHub
    from ubot.stream.latest import LatestSnapshot
    from ubot.system import AlertOptions, start_gateway_actors

    state: dict = {}

    def make_app():
        bus = state["bus"] = make_bus(settings)
        hub = state["hub"] = StreamHub(bus).start()
        db = state["db"] = open_database(settings.database.url)
        actors = state["actors"] = start_gateway_actors(
            db,
            convert=settings.market.convert,
            alerts=AlertOptions(
                channels=(channels := build_channels(settings)),
                allow_local_webhooks=settings.notify.webhook_allow_private,
                budgets=budgets_of(settings),
            ),
            on_changed=lambda user_id: bus.publish(STRATEGIES, StrategiesChanged(user_id)),
        )
        gateway = Gateway(
            container=None,
            history=actors.history,
            monitor=None,
            clock=None,
            users=actors.users,
            notifier=actors.history,  # GetAlerts, from the alert tables
            snapshots=LatestSnapshot(bus),
            channels=channels,
            dry_runs=actors.dry_runs,
            public_url=settings.http.public_url,
            **gateway_accounts(settings, bus, state),
        )
        return gateway_app(settings, gateway, hub)

    def on_stopping() -> None:
        if "hub" in state:
            state["hub"].close()

    def on_exit() -> None:
        on_stopping()
        close_accounts(state)
        if "actors" in state:
            state.pop("actors").stop()
        if "bus" in state:
            state.pop("bus").close()
        if "db" in state:
            state.pop("db").close()

    return serve(settings, make_app, on_exit, on_stopping, "gateway (role gateway)", freeze_at_exit=True)


def run_server(settings: Settings) -> int:
    from ubot.cluster import make_bus
    from ubot.http.gateway import Gateway
    from ubot.notify.registry import build_channels
    from ubot.stream.hub import StreamHub
    from ubot.stream.latest import LatestSnapshot
    from ubot.stream.publisher import EventPublisher
    from ubot.system import stop_system

    state: dict = {}

    def on_finished(why: str) -> None:
        if why == "ticks":
            log.info("tick limit reached: shutting down")
            os.kill(os.getppid(), signal.SIGTERM)  # gunicorn's master: graceful stop, exit 0

    def make_app():
        # Role all: the engine's side and the gateway's side of the roles, over an in-process bus.
        bus = state["bus"] = make_bus(settings)
        hub = state["hub"] = StreamHub(bus).start()
        try:
            # In the worker: one restarted by gunicorn after a crash takes the lock again (the dead
            # one's was released by the OS, or by PostgreSQL when its connection closed).
            state["lock"], actors = start_pipeline(settings, on_finished, EventPublisher(bus))
        except EngineLocked as exc:
            log.error("%s", exc)
            raise SystemExit(3) from None  # gunicorn: the worker failed to boot, the master stops
        state["actors"] = actors
        gateway = Gateway(
            container=actors.container,
            history=actors.history,
            monitor=actors.monitor,
            clock=actors.clock,
            users=actors.users,
            notifier=actors.notifier,
            snapshots=LatestSnapshot(bus),
            channels=build_channels(settings),  # for GET /v1/channels and test messages
            dry_runs=actors.dry_runs,
            public_url=settings.http.public_url,
            **gateway_accounts(settings, bus, state),
        )
        return gateway_app(settings, gateway, hub)

    def on_stopping() -> None:
        if "hub" in state:  # end open streams now, so the graceful stop does not wait for them
            state["hub"].close()

    def on_exit() -> None:
        on_stopping()
        close_accounts(state)
        if "actors" in state:
            stop_system(state.pop("actors"))
            log.info("pipeline stopped")
        if "lock" in state:
            state.pop("lock").release()
        if "bus" in state:
            state.pop("bus").close()

    return serve(settings, make_app, on_exit, on_stopping, "gateway", freeze_at_exit=not on_sqlite(settings))


def gateway_accounts(settings: Settings, bus: Any, state: dict) -> dict[str, Any]:
    """The gateway's side of accounts, the same for the ``all`` and ``gateway`` roles: the token
    check on this process's own database connections behind ``[accounts] session_cache_s``, the
    revocations over the bus, argon2 in a pool of ``hash_workers`` threads and ``hash_queue``
    places (``Gateway`` keyword arguments; :func:`close_accounts` stops them)."""
    from ubot.clocks import SystemClock
    from ubot.http.sessions import GatewaySessions
    from ubot.models.db import database
    from ubot.models.users import UserStore
    from ubot.users.hashing import HashPool

    accounts = settings.accounts
    sessions = state["sessions"] = GatewaySessions(
        bus, UserStore(database).live_session, SystemClock(), accounts.session_cache_s
    ).start()
    hashing = state["hashing"] = HashPool(accounts.hash_workers, accounts.hash_queue, nice=accounts.hash_nice)
    return {"sessions": sessions.reader, "hashing": hashing, "on_revoked": sessions.revoked}


def close_accounts(state: dict) -> None:
    if "sessions" in state:
        state.pop("sessions").stop()
    if "hashing" in state:
        state.pop("hashing").close()


def gateway_app(settings: Settings, gateway: Any, hub: Any) -> Any:
    """The Falcon app of ``[http]`` and ``[limits]`` over ``gateway`` and the stream ``hub``: the
    same for the ``all`` and ``gateway`` roles."""
    from ubot.http.app import create_app
    from ubot.http.protection import protection_middleware

    return create_app(
        gateway,
        settings.http.max_body_bytes,
        hub=hub,
        max_streams=settings.http.stream_max,
        max_streams_per_address=settings.http.stream_max_per_address,
        max_streams_per_user=settings.http.stream_max_per_user,
        heartbeat_s=settings.http.stream_heartbeat,
        protection=protection_middleware(settings.http, settings.limits),
        metrics=settings.http.metrics,
        threads=settings.http.threads,
        request_timeout_s=settings.http.request_timeout,
    )


def serve(
    settings: Settings,
    make_app: Callable[[], Any],
    on_exit: Callable[[], None],
    on_stopping: Callable[[], None],
    what: str,
    freeze_at_exit: bool = False,
) -> int:
    """Run the gunicorn server of ``[http]`` until it stops; ``on_exit`` in its worker at the end
    (then, with ``freeze_at_exit``, :func:`freeze_leftovers`: a gateway role's worker)."""
    if EARLY_SIGNAL.is_set():  # gunicorn's own handlers are not installed yet
        log.info("a stop signal came while starting: stopped")
        return 0
    host, port = settings.http.bind
    workers = settings.http.workers
    log.info("%s on http://%s:%d%s", what, host, port, f" ({workers} workers)" if workers > 1 else "")
    GatewayServer(
        settings.http.bind,
        settings.http.threads,
        make_app,
        on_exit,
        settings.log.level,
        on_stopping=on_stopping,
        request_timeout_s=settings.http.request_timeout,
        workers=settings.http.workers,
        freeze_at_exit=freeze_at_exit,
        signalled_early=EARLY_SIGNAL.is_set,
        on_serving=warm_up_dry_runs,
    ).run()
    return 0


def warm_up_dry_runs() -> None:
    """In a gateway worker as it starts serving: the first dry run's imports
    (``scan/dryrun.py: warm_up``, about a second) in a thread of their own, so that neither the start
    nor the first user's dry run waits for them. A daemon thread: a stop does not wait for it."""
    from ubot.scan.dryrun import warm_up

    threading.Thread(target=warm_up, name="ubot-dry-run-warm-up", daemon=True).start()


def serves_http(settings: Settings) -> bool:
    """Whether this process serves the HTTP API: not a backfill, not an engine (pipeline only)."""
    if settings.market.backfill or settings.market.backfill_days:
        return False
    if settings.cluster.role in ("engine", "scanner", "notifier"):
        return False
    return settings.http.enabled or settings.cluster.role == "gateway"


def check_start(settings: Settings) -> None:
    """Refuse to start, with one line, when something cannot work. Side-effect-free checks come
    first, so a refused start leaves no database behind; the schema is created or upgraded last."""
    from ubot.cluster import check_redis, schema_lock
    from ubot.market.sources import fit_to_plan, make_source

    role = settings.cluster.role
    check_redis(settings)  # every role but all: Redis answers (RedisUnavailable otherwise)
    if serves_http(settings):
        check_bind(*settings.http.bind)
    if role in ("all", "engine"):  # a gateway, a scanner or a notifier fetches nothing
        source = make_source(settings, announce=False)
        try:
            fit_to_plan(settings, source)  # may stretch settings.market.interval; the worker inherits it
        finally:
            source.close()
    db = open_database(settings.database.url)
    try:
        if settings.cluster.role == "all":  # an engine stands by, a gateway takes no lock
            probe(settings.database.url)  # another engine on this database: refused before any change
        if role in ("gateway", "scanner", "notifier"):  # the engine creates and upgrades the schema
            current, pending = pending_migrations(db)
            if current is None or pending:
                raise SchemaError(
                    f"database {redact(settings.database.url)} has no current uBot schema "
                    f"({'empty' if current is None else f'version {current}'}): start an engine "
                    "first (--role engine creates or upgrades it)"
                )
            return
        with schema_lock(settings.database.url):  # engines started at once take turns
            ensure_schema(db)
            ensure_quote_currency(db, settings.market.convert, redact(settings.database.url))
        if resolved_source(settings) == "replay" and not settings.market.backfill:
            refused = older_than_history(
                db, settings.market.replay_dir, settings.market.convert, redact(settings.database.url)
            )
            if refused is not None:
                raise ReplayRefused(refused)
        if settings.market.backfill_days:
            times = backfill_times(
                settings.market.backfill_days, settings.market.interval, int(time.time() * 1000)
            )
            refused = newer_than_backfill(times, f"database {redact(settings.database.url)}")
            if refused is not None:
                raise ReplayRefused(refused)
    finally:
        db.close()


def _locked(settings: Settings, work: Callable[[Any], Any]) -> tuple[Any, int]:
    """``work(db)`` under the database's engine lock: its value and exit code 0, or None and 2 with
    one line on stderr (the lock held by another engine, the backfill refused)."""
    try:
        lock = acquire(settings.database.url)
    except EngineLocked as exc:
        print(f"ubot: {exc}", file=sys.stderr)
        return None, 2
    try:
        db = open_database(settings.database.url)
        try:
            return work(db), 0
        finally:
            db.close()
    except ReplayRefused as exc:
        print(f"ubot: {exc}", file=sys.stderr)
        return None, 2
    finally:
        lock.release()


def _packed(db: Any, result: Any) -> Any:
    """After a backfill: its closed candles packed in blocks at once (``models/candle_blocks.py``), so
    that the first dry run reads them in bulk; ``result`` unchanged."""
    from ubot.models.candle_blocks import BlockPacker

    started = time.monotonic()
    blocks = BlockPacker(db).pack_all()
    log.info("backfill: %d block(s) of candles packed in %.1f s", blocks, time.monotonic() - started)
    return result


def run_backfill(settings: Settings) -> int:
    """``--backfill``: store the recordings, fold them into the candles, pack them, exit (nothing is
    scanned)."""
    result, code = _locked(
        settings, lambda db: _packed(db, backfill(db, settings.market.replay_dir, settings.market.convert))
    )
    if code:
        return code
    log.info(
        "backfill of %s: %d snapshot(s) stored, %d candle row(s) written; nothing was scanned",
        settings.market.replay_dir,
        result.stored,
        result.candles,
    )
    return 0


def run_simulated_backfill(settings: Settings) -> int:
    """``--backfill DAYS`` (simulated): make DAYS of history through the Store and OHLC code, exit."""
    from ubot.backfill import simulated_history
    from ubot.market.sources import make_source, recorder_of
    from ubot.progress import Progress

    market = settings.market

    def work(db: Any) -> Any:
        source = make_source(settings, announce=False)
        try:
            made = simulated_history(
                db,
                source,
                market.backfill_days,
                market.interval,
                int(time.time() * 1000),
                retention_days=settings.database.retention_days,
                progress=Progress(minimum=1, label="backfill"),
                recorder=recorder_of(settings),
                shown_url=f"database {redact(settings.database.url)}",
            )
        finally:
            source.close()
        return _packed(db, made)

    started = time.monotonic()
    result, code = _locked(settings, work)
    if code:
        return code
    seconds = time.monotonic() - started
    days = (result.last_ms - result.first_ms) / 86_400_000 or 1
    log.info(
        "backfill: %d simulated snapshot(s) of %d coins stored (%s .. %s), %d candle row(s) written, "
        "in %.0f s (%.1f min per day of data); nothing was scanned",
        result.stored,
        market.limit,
        iso_from_ms(result.first_ms),
        iso_from_ms(result.last_ms),
        result.candles,
        seconds,
        seconds / 60 / days,
    )
    return 0


def run_check(settings: Settings) -> int:
    """``run.py check``: what would run on stdout, one line per problem on stderr; 0 or 2."""
    from ubot.check import check

    logging.getLogger().addHandler(logging.NullHandler())  # the report says it all
    report = check(settings)
    print(f"ubot {__version__} would run:")
    for line in report.lines():
        print(f"  {line}")
    for problem in report.problems:
        print(f"ubot: {problem}", file=sys.stderr)
    print("check: " + (f"{len(report.problems)} problem(s)" if report.problems else "ok"))
    return 2 if report.problems else 0


#: How long a running Python thread keeps the GIL before another may take it (CPython's default: 5 ms).
#: The Clock's timer thread wakes at each deadline and then waits for the GIL while gateway threads
#: serialise JSON: with 5 ms its lateness p99 was 5.5 ms in bench/soak.py; 1 ms brings it back under.
SWITCH_INTERVAL_S = 0.001


def main(argv: list[str] | None = None) -> int:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    args = parse_args(argv)
    try:
        settings = load(args)
    except ConfigError as exc:
        print(f"ubot: {exc}", file=sys.stderr)
        return 2
    if args.command == "check":
        default_signals()
        return run_check(settings)
    # Until the checks pass, log records are held back: a refused start shows one line, no more.
    root = logging.getLogger()
    root.setLevel(settings.log.level)
    held = logging.handlers.BufferingHandler(capacity=10_000)
    root.addHandler(held)
    try:
        CHECKING.set()
        check_start(settings)
    except (
        ConfigError,
        DatabaseConfigError,
        SchemaError,
        FatalSourceError,
        BindError,
        EngineLocked,
        ReplayRefused,
        RedisUnavailable,
    ) as exc:
        print(f"ubot: {exc}", file=sys.stderr)
        return 2
    except DatabaseError as exc:  # e.g. "file is not a database"
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"ubot: cannot use database {redact(settings.database.url)}: {first_line}", file=sys.stderr)
        return 2
    finally:
        root.removeHandler(held)
    from ubot.http.requestid import LOG_FORMAT, install_request_id_logging

    logging.basicConfig(level=settings.log.level, format=LOG_FORMAT, stream=sys.stderr)
    install_request_id_logging()  # "[<request id>]" on lines logged while a request is handled
    # pykka logs every exception a proxy call hands back to its caller at INFO, with a traceback: a
    # refused sign-up or condition is a domain answer (a 4xx), not an event for the log
    logging.getLogger("pykka").setLevel(max(logging.WARNING, logging.getLogger().level))
    for record in held.buffer:
        logging.getLogger(record.name).handle(record)
    if EARLY_SIGNAL.is_set():
        log.info("stopped: a stop signal came during the start checks; nothing was started")
        return 0
    log.info(
        "uBot starting: source=%s interval=%gs coins=%d database=%s",
        resolved_source(settings),
        settings.market.interval,
        settings.market.limit,
        redact(settings.database.url),
    )
    if settings.market.backfill or settings.market.backfill_days:
        default_signals()
        return run_backfill(settings) if settings.market.backfill else run_simulated_backfill(settings)
    if settings.cluster.role == "engine":
        return run_engine(settings)
    if settings.cluster.role == "gateway":
        if settings.http.workers == 1:
            return run_gateway(settings)
        with multiprocess_metrics(settings.http.bind):  # before anything imports prometheus_client
            return run_gateway(settings)
    if settings.cluster.role in ("scanner", "notifier"):
        return run_worker_role(settings)
    if settings.http.enabled:
        return run_server(settings)
    return run_headless(settings)


if __name__ == "__main__":
    sys.exit(main())
