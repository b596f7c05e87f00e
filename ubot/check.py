"""``python run.py check``: everything start-up would refuse, found without starting.

Settings are loaded first by run.py (a settings error is one line, and nothing else can be checked
without settings). Then the gateway's address, the database and its schema, and the market source
are each checked on their own, so that every problem gets its own line. Nothing is left behind: a
SQLite file that did not exist is removed again, no schema is created or upgraded, no actor starts.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field

from peewee import DatabaseError

from ubot.backfill import older_than_history
from ubot.cluster import RedisUnavailable, check_redis
from ubot.config import Settings, resolved_source
from ubot.engine_lock import other_engine
from ubot.http.server import BindError, check_bind
from ubot.market.source import FatalSourceError
from ubot.models.db import DatabaseConfigError, open_database, redact, sqlite_path
from ubot.models.schema import (
    SCHEMA_VERSION,
    SchemaError,
    pending_migrations,
    quote_currency_problem,
    recorded_quote_currency,
    schema_drift,
)

_ROLE_TEXT = {
    "engine": "engine (Clock, Fetcher, Store, OHLC, Scanner, Notifier; one active per database, "
    "others stand by; publishes to Redis)",
    "gateway": "gateway (the HTTP API; snapshot and events from Redis, the rest from the database)",
    "scanner": "scanner (scans its share of the strategies on each tick from Redis; splits them with "
    "the other scanners)",
    "notifier": "notifier (sends deliveries claimed from the outbox, beside the other notifiers)",
}

#: The longest ``check`` waits for CoinMarketCap's ``/v1/key/info``, retries included.
KEY_INFO_WAIT_S = 5.0


@dataclass
class Report:
    """``facts``: ``(label, text)`` lines of what would run; ``problems``: one line each."""

    facts: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        width = max((len(label) for label, _ in self.facts), default=0) + 1
        return [f"{label + ':':<{width}} {text}" for label, text in self.facts]


def check(settings: Settings) -> Report:
    report = Report()
    _source(settings, report)
    _database(settings, report)
    _gateway(settings, report)
    return report


def _gateway(settings: Settings, report: Report) -> None:
    from ubot.notify.registry import build_channels

    http = settings.http
    host, port = http.bind
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if http.enabled:
        report.facts.append(("bind", f"http://{shown} ({http.threads} threads, {http.stream_max} streams)"))
        try:
            check_bind(host, port)
        except BindError as exc:
            report.problems.append(str(exc))
    else:
        report.facts.append(("bind", "none (--no-http)"))
    role = settings.cluster.role
    if role == "all":
        parts = ["pipeline", "gateway"] if http.enabled else ["pipeline"]
        report.facts.append(("role", f"all ({', '.join(parts)} in this process, in-process bus)"))
    else:
        report.facts.append(("role", _ROLE_TEXT[role]))
        try:
            report.facts.append(("redis", check_redis(settings) or ""))
        except RedisUnavailable as exc:
            report.facts.append(("redis", redact(settings.cluster.redis_url)))
            report.problems.append(str(exc))
    channels = ", ".join(build_channels(settings))
    report.facts.append(("alerts", f"{settings.scanner.workers} scan workers; channels: {channels}"))


def _source(settings: Settings, report: Report) -> None:
    market = settings.market
    kind = resolved_source(settings)
    ticks = f", stopping after {market.ticks} ticks" if market.ticks else ""
    interval = f"{market.interval:g} s" if market.interval else "0 (back-to-back)"
    if kind == "simulated":
        report.facts.append(("source", f"simulated market (seed {market.seed}): prices are not real"))
    elif kind == "replay":
        report.facts.append(("source", f"replay of {market.replay_dir}"))
        _replay(market.replay_dir, report)
    report.facts.append(("interval", interval + ticks))
    report.facts.append(("coins", f"top {market.limit} in {market.convert}"))
    if kind == "cmc":
        _coinmarketcap(settings, report)


def _replay(directory: str, report: Report) -> None:
    from ubot.market.replay import replay_files

    try:
        files = replay_files(directory)
    except FatalSourceError as exc:
        report.problems.append(str(exc))
        return
    unreadable = [path for path in files if not os.access(path, os.R_OK)]
    for path in unreadable:
        report.problems.append(f"replay file {path} is not readable by this user")
    report.facts[-1] = ("source", f"replay of {directory} ({len(files)} files)")


def _coinmarketcap(settings: Settings, report: Report) -> None:
    """The key is there (the settings ensure it); ``/v1/key/info`` (free) says whether it is
    accepted. An unreachable CoinMarketCap is said, not counted as a problem: it may come back."""
    from ubot.market.coinmarketcap import CmcError, CmcFatalError
    from ubot.market.credits import parse_key_info, plan_fit
    from ubot.market.sources import make_source

    cmc = settings.coinmarketcap
    report.facts.insert(0, ("source", f"CoinMarketCap at {cmc.base_url}"))
    try:
        source = make_source(settings, announce=False)
    except FatalSourceError as exc:
        report.problems.append(str(exc))
        return
    try:
        client = source.client  # type: ignore[attr-defined]
        doc = client.key_info(deadline=source.clock.now() + KEY_INFO_WAIT_S)  # type: ignore[attr-defined]
        info = parse_key_info(doc)
    except CmcFatalError as exc:
        report.problems.append(str(exc))
        return
    except (CmcError, ValueError) as exc:
        report.facts.append(
            ("plan", f"unknown ({exc}); [coinmarketcap] monthly_credits = {cmc.monthly_credits}")
        )
        allowance = cmc.monthly_credits
    else:
        used = f", {info.month_used:,} used this month" if info.month_used is not None else ""
        report.facts.append(("plan", f"key accepted: {info.credit_limit_monthly:,} credits a month{used}"))
        allowance = info.credit_limit_monthly
    finally:
        source.close()
    fit = plan_fit(settings.market.limit, settings.market.interval, allowance)
    text = fit.describe()
    if not fit.fits and cmc.fit_to_plan and fit.shortest_s is not None:
        text += " ([coinmarketcap] fit_to_plan would stretch the interval to it)"
    report.facts.append(("credits", text))


def _database(settings: Settings, report: Report) -> None:
    url, convert = settings.database.url, settings.market.convert
    replay = settings.market.replay_dir if resolved_source(settings) == "replay" else None
    if settings.market.backfill:
        replay = None  # older recordings are what a backfill is for
    shown = redact(url)
    path = sqlite_path(url)
    created = path is not None and path not in ("", ":memory:") and not os.path.exists(path)
    try:
        state, problems, recorded = _schema(url, created, convert, replay)
    except (DatabaseConfigError, SchemaError) as exc:
        recorded = None
        state, problems = (
            None,
            [str(exc) if isinstance(exc, DatabaseConfigError) else f"database {shown}: {exc}"],
        )
    except DatabaseError as exc:  # e.g. "file is not a database"
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        recorded = None
        state, problems = None, [f"cannot use database {shown}: {first_line}"]
    finally:
        if created:  # leave no file behind that was not there
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(path + suffix):  # type: ignore[operator]
                    os.remove(path + suffix)  # type: ignore[operator]
    if state:
        other = other_engine(url)
        if other is not None and settings.cluster.role == "all":
            problems.append(other)
        elif other is not None and settings.cluster.role == "engine":
            report.facts.append(("engine", "another engine is active: this one would stand by"))
    report.facts.append(("database", f"{shown} ({state})" if state else shown))
    if state:
        held = f"{recorded} (recorded in the database)" if recorded else f"{convert} (to be recorded)"
        report.facts.append(("prices in", held))
    report.problems.extend(problems)


def _schema(url: str, created: bool, convert: str, replay: str | None) -> tuple[str, list[str], str | None]:
    """(what start-up would do to the schema; one line per table or column missing, and for a quote
    currency other than ``convert``; the database's quote currency, if it has one)."""
    db = open_database(url)
    try:
        current, pending = pending_migrations(db)
        drift = schema_drift(db) if current is not None and not pending else []
        recorded = recorded_quote_currency(db)
        currency = quote_currency_problem(db, convert, redact(url))
        older = None
        if replay is not None and current is not None and not pending:
            # The replay directory's own problem is reported with the source.
            with contextlib.suppress(FatalSourceError):
                older = older_than_history(db, replay, convert, redact(url))
    finally:
        db.close()
    if created:
        state = f"a new file: schema version {SCHEMA_VERSION} would be created"
    elif current is None:
        state = f"empty: schema version {SCHEMA_VERSION} would be created"
    elif pending:
        state = f"schema version {current}: migrations to {', '.join(map(str, pending))} would run"
    else:
        state = f"schema version {current}, current"
    problems = [f"database {redact(url)}: {line}" for line in drift]
    return state, problems + [line for line in (currency, older) if line], recorded
