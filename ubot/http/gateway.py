"""The gateway's only way to the actors: ask them, with a timeout. Resources receive one of these.

Every method sends one message (or one proxy call) and returns the answer; an actor that does not
answer in time, or is gone, becomes :class:`Unavailable` (HTTP 503), never a hung request. The
UserManager is called through its typed proxy (:meth:`Gateway.ask_users`); the domain exceptions
its calls raise (``ubot/users/errors.py``) come out of the future as they were raised.

Two things about accounts never wait in the UserManager's mailbox: the token check of every
authenticated request (:meth:`Gateway.authenticate`: ``sessions``, a
:class:`~ubot.users.sessions.SessionReader` on this process's own database connections, when
wired; stand-in tests without one ask the UserManager), and argon2 (:attr:`Gateway.accounts`:
login, sign-up and password change hash in a bounded pool, ``ubot/users/hashing.py``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import msgspec
import pykka

from ubot.bus import BusUnavailable
from ubot.health import ClockStats, PipelineStats
from ubot.heartbeat import roles_health
from ubot.http.shapes import GatewayHealth
from ubot.messages import (
    GetCandles,
    GetClockStats,
    GetGlobal,
    GetHealth,
    GetOpenCandle,
    GetQuotes,
    GetSnapshot,
    ResolveCoin,
    RunDryRun,
)
from ubot.notify.channel import Channel
from ubot.notify.messages import AlertView, GetAlerts
from ubot.scan.dryrun import Admission, DryRunResult, DryRunSpec
from ubot.stream.latest import LatestSnapshot
from ubot.timeutil import iso_from_ms
from ubot.users.accounts import Accounts
from ubot.users.hashing import Hashing, HashPool
from ubot.users.manager import UserManager
from ubot.users.passwords import Passwords
from ubot.users.sessions import Revoked, SessionReader

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")


class Unavailable(Exception):
    """An actor did not answer (busy or stopped)."""


class NotEnabled(Unavailable):
    """The feature is not wired in this process (no such actor): 503 without a Retry-After."""


class Gateway:
    def __init__(
        self,
        *,
        container: pykka.ActorRef | None,
        history: pykka.ActorRef,
        monitor: pykka.ActorRef | None,
        clock: pykka.ActorRef | None,
        users: pykka.ActorRef | None = None,
        notifier: pykka.ActorRef | None = None,
        snapshots: LatestSnapshot | None = None,
        dry_runs: Sequence[pykka.ActorRef] = (),
        timeout: float = 5.0,
        dry_run_timeout: float = 60.0,
        now: Callable[[], float] = time.time,
        channels: Mapping[str, Channel] | None = None,
        sessions: SessionReader | None = None,
        hashing: Hashing | None = None,
        passwords: Passwords | None = None,
        on_revoked: Callable[[Revoked], object] | None = None,
        public_url: str = "",
    ) -> None:
        """``sessions``: the token check on this process's read path (its ``touch`` is set to tell
        the UserManager); ``hashing``: where argon2 runs (default: a :class:`HashPool` of the
        default size, made at the first use); ``passwords``: the hasher (default: the
        UserManager's); ``on_revoked``: told of every session ended through this gateway, after
        its own cache dropped them (the roles publish it on the bus for the other gateways)."""
        self.container = container
        self.history = history
        self.monitor = monitor
        self.clock = clock
        self.users = users
        self.notifier = notifier
        self.snapshots = snapshots
        #: The idle DryRun actors (a request takes one, or is refused when none is idle).
        self.dry_runs: queue.SimpleQueue[pykka.ActorRef] = queue.SimpleQueue()
        for ref in dry_runs:
            self.dry_runs.put(ref)
        self.dry_run_workers = len(dry_runs)
        self.admission = Admission()
        self.dry_run_timeout = dry_run_timeout
        self.timeout = timeout
        self.now = now
        #: The delivery channels this server has (``[notify]``): listed, and used for test messages.
        self.channels: Mapping[str, Channel] = channels or {}
        #: ``[http] public_url``: where a verification e-mail's link points ("" = no link).
        self.public_url = public_url
        self._users_proxy: Any = None
        self.sessions = sessions
        if sessions is not None and sessions.touch is None:
            sessions.touch = self._touch
        self._hashing = hashing
        self._passwords = passwords
        self.on_revoked = on_revoked
        self._accounts: Accounts | None = None
        self._accounts_lock = threading.Lock()

    def _ask(self, ref: pykka.ActorRef, message: Any, timeout: float | None = None) -> Any:
        timeout = self.timeout if timeout is None else timeout
        try:
            return ref.ask(message, timeout=timeout)
        except pykka.Timeout:
            raise Unavailable(f"{type(message).__name__}: no answer within {timeout:g} s") from None
        except pykka.ActorDeadError:
            raise Unavailable(f"{type(message).__name__}: the service is stopping") from None

    def snapshot(self, symbols: tuple[str, ...] | None) -> tuple[bytes, str] | None:
        """The latest snapshot document (from the bus, when wired; else the Container's)."""
        if self.snapshots is None:
            assert self.container is not None
            return self._ask(self.container, GetSnapshot(symbols))
        try:
            return self.snapshots.get(symbols)
        except BusUnavailable as exc:
            raise Unavailable(f"the latest snapshot: {exc}") from None

    def resolve(self, key: str) -> tuple[int, str] | None:
        """A coin of the latest snapshot first (best rank per symbol), else one from history."""
        if self.container is not None:
            found = self._ask(self.container, ResolveCoin(key))
            if found is not None:
                return found
        return self._ask(self.history, ResolveCoin(key))

    def candles(
        self, coin_id: int, timeframe: str, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[tuple[int, float, float, float, float]]:
        """Closed candles from the database, with the still-open one from memory appended."""
        rows = self._ask(self.history, GetCandles(coin_id, timeframe, start_ms, end_ms, limit))
        # The open candle: the Container's (role all), else read from the database (a gateway).
        current = self._ask(self.container or self.history, GetOpenCandle(coin_id, timeframe))
        if current is not None and _within(current[0], start_ms, end_ms):
            rows = [row for row in rows if row[0] != current[0]]
            rows.append(current)
            rows.sort(key=lambda row: row[0])
        return rows[-limit:]

    def quotes(self, coin_id: int, start_ms: int | None, end_ms: int | None, limit: int) -> list:
        return self._ask(self.history, GetQuotes(coin_id, start_ms, end_ms, limit))

    def global_metrics(self, start_ms: int | None, end_ms: int | None, limit: int) -> list:
        return self._ask(self.history, GetGlobal(start_ms, end_ms, limit))

    def dry_run(self, user_id: int, spec: DryRunSpec) -> DryRunResult:
        """``spec`` run by an idle DryRun actor: at most ``PER_USER`` of one user at once (``Busy``, a
        422), and as many at once as there are actors (then 503)."""
        if self.dry_run_workers == 0:
            raise NotEnabled("Dry runs are not enabled in this process.")
        self.admission.enter(user_id)
        try:
            try:
                ref = self.dry_runs.get_nowait()
            except queue.Empty:
                raise Unavailable(
                    f"the server runs {self.dry_run_workers} dry runs at once, the most it does; try again shortly"
                ) from None
            try:
                return self._ask(ref, RunDryRun(spec), self.dry_run_timeout)
            finally:
                self.dry_runs.put(ref)
        finally:
            self.admission.leave(user_id)

    def ask_users(
        self, method: Callable[Concatenate[UserManager, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Call ``method`` (a method of :class:`~ubot.users.manager.UserManager`, e.g.
        ``UserManager.register``) in the UserManager actor; its value, or the domain exception it
        raised."""
        if self.users is None:
            raise NotEnabled("Accounts are not enabled in this process.")
        name = method.__name__
        try:
            if self._users_proxy is None:
                self._users_proxy = self.users.proxy()
            future = getattr(self._users_proxy.manager, name)(*args, **kwargs)
            return future.get(timeout=self.timeout)
        except pykka.Timeout:
            raise Unavailable(f"UserManager.{name}: no answer within {self.timeout:g} s") from None
        except pykka.ActorDeadError:
            raise Unavailable(f"UserManager.{name}: the service is stopping") from None

    def authenticate(self, token: str) -> int | None:
        """The user id of a live session token, or None."""
        if self.sessions is not None:
            return self.sessions.authenticate(token)
        return self.ask_users(UserManager.authenticate, token)

    @property
    def accounts(self) -> Accounts:
        """Sign-up, login, password change and logout, argon2 in the pool (``ubot/users/accounts.py``)."""
        with self._accounts_lock:
            if self._accounts is None:
                passwords = self._passwords or self.ask_users(UserManager.hasher)
                self._hashing = self._hashing or HashPool()
                self._accounts = Accounts(self.ask_users, self._hashing, passwords, self._revoked)
            return self._accounts

    def close(self) -> None:
        """Stop the hash pool (what runs finishes; what waits is dropped)."""
        if isinstance(self._hashing, HashPool):
            self._hashing.close()

    def _revoked(self, revoked: Revoked) -> None:
        if self.sessions is not None:
            self.sessions.cache.drop(revoked)
        if self.on_revoked is not None:
            try:
                self.on_revoked(revoked)
            except Exception:  # this process's cache is clear; the others' TTL bounds the rest
                log.exception("could not announce the revocation of sessions of user %d", revoked.user_id)

    def _touch(self, session_id: int, now_ms: int) -> None:
        """Tell the UserManager the session was seen, without waiting for it."""
        if self.users is None:
            return
        try:
            if self._users_proxy is None:
                self._users_proxy = self.users.proxy()
            self._users_proxy.manager.touch_session(session_id, now_ms)
        except pykka.ActorDeadError:  # stopping
            pass

    def alerts(
        self,
        user_id: int,
        since_ms: int | None,
        strategy_id: int | None,
        limit: int,
        before: int | None = None,
        coin_id: int | None = None,
    ) -> tuple[AlertView, ...]:
        """The user's alerts, newest first (the Notifier answers for this user's alerts only)."""
        if self.notifier is None:
            raise NotEnabled("Alerts are not enabled in this process.")
        return self._ask(self.notifier, GetAlerts(user_id, since_ms, strategy_id, limit, before, coin_id))

    def health(self) -> tuple[int, dict[str, Any]]:
        if self.monitor is None:  # a gateway role: its bus and the latest document
            return self._gateway_health()
        stats: PipelineStats = self._ask(self.monitor, GetHealth())
        try:
            clock: ClockStats | None = self._ask(self.clock, GetClockStats()) if self.clock else None
        except Unavailable:
            clock = None
        current, doc = stats.health(self.now(), clock)
        return (200 if current else 503), doc

    def _gateway_health(self) -> tuple[int, dict[str, Any]]:
        """``--role gateway``: ``degraded`` (503) while the bus is unreachable, ``starting`` (503)
        before the engine's first document, else ``ok``; the engine's own figures are its log's."""
        if self.snapshots is None:
            raise NotEnabled("Health is not enabled in this process.")
        try:
            latest = self.snapshots.document()
        except BusUnavailable:
            latest = None
        bus = self.snapshots.bus.health()
        try:  # each scanner's and notifier's heartbeat (ubot/heartbeat.py)
            roles = roles_health(self.snapshots.bus)
        except BusUnavailable:
            roles = None
        doc = GatewayHealth(
            status="degraded" if not bus.connected else "starting" if latest is None else "ok",
            role="gateway",
            bus=bus,
            last_snapshot_at=iso_from_ms(latest.snapshot_ms) if latest is not None else None,
            roles=roles,
        )
        return (200 if doc.status == "ok" else 503), msgspec.to_builtins(doc)


def _within(value: int, start_ms: int | None, end_ms: int | None) -> bool:
    return (start_ms is None or value >= start_ms) and (end_ms is None or value <= end_ms)
