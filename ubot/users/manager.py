"""The UserManager's work: accounts, sessions, settings and strategies, on :class:`UserStore`.

A plain class: the gateway calls its methods through the actor's proxy
(``actors/user_manager.py``), and the domain exceptions they raise (``ubot/users/errors.py``) reach
the gateway through the future. After a change to a user's strategies or settings it calls its
``changed`` hook with the user's id (the actor tells the Scanner). Time comes from the injected
clock. Passwords and tokens are never logged, nor put in an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from peewee import IntegrityError

from ubot.clocks import Clock
from ubot.models.tables import Strategy, User
from ubot.models.users import UserStore
from ubot.notify.caps import Window
from ubot.notify.outbox import hold_end
from ubot.notify.registry import not_configured
from ubot.scan.cost import Budgets, Cost, cost_of
from ubot.scan.spec import UserStrategies
from ubot.stopping import CHUNK, StopToken
from ubot.timeutil import iso_from_ms
from ubot.users import destinations as dest
from ubot.users import tokens, validation
from ubot.users.bot import Bot
from ubot.users.errors import (
    BadCredentials,
    Conflict,
    NotFound,
    OverBudget,
    Throttled,
    ValidationError,
    WrongPassword,
)
from ubot.users.hashing import Inline
from ubot.users.market import KnownMarket
from ubot.users.passwords import Passwords, check_strength
from ubot.users.sessions import Revoked
from ubot.users.shapes import (
    ConditionInfo,
    DestinationView,
    LoginToken,
    SessionKind,
    Sessions,
    SessionView,
    Settings,
    SettingsPatch,
    SettingsView,
    StrategyPatch,
    StrategyView,
    UserView,
    VerificationSent,
    convert,
    given,
)
from ubot.users.shapes import (
    Strategy as StrategyBody,
)
from ubot.users.specs import spec_of
from ubot.users.throttle import (
    ACCOUNT_POLICY,
    ADDRESS_POLICY,
    PAIR_POLICY,
    Failures,
    Policy,
    ThrottleBook,
    after_failure,
    retry_after,
)

if TYPE_CHECKING:
    from ubot.users.accounts import Accounts

log = logging.getLogger(__name__)

#: A login's verification is taken to have ended after this long even if it never reported back.
IN_FLIGHT_MS = 30_000
#: The longest user agent kept with a session (``session.user_agent``), and client address (``client``).
USER_AGENT_MAX = 256
CLIENT_MAX = 64
#: Seconds a second login of the same (username, address) pair waits while the first is verified.
IN_FLIGHT_RETRY_S = 1
#: Pairs in flight kept before the ended ones are pruned.
IN_FLIGHT_MAX = 10_000


@dataclass(frozen=True)
class Release:
    """What :meth:`UserManager.mute` did with the deliveries held already: ``count`` brought
    forward to ``due_ms`` (``now_ms``, or the end of the quiet hours)."""

    count: int
    due_ms: int
    now_ms: int


@dataclass(frozen=True)
class LoginAttempt:
    """What :meth:`UserManager.begin_login` hands out: the hash to verify (None: verify nothing)."""

    name: str
    client: str | None
    user_id: int | None
    password_hash: str | None
    kind: SessionKind | None = None  # the session's, if the login succeeds
    user_agent: str | None = None


@dataclass(frozen=True)
class LoginOutcome:
    token: LoginToken
    user_id: int
    revoked: Revoked | None  # the user's oldest sessions, revoked beyond the limit


@dataclass(frozen=True)
class PasswordCheck:
    """What :meth:`UserManager.begin_password_change` hands out."""

    user_id: int
    username: str
    email: str
    password_hash: str


#: Strategies per user: each one is evaluated on every tick for up to 1000 coins, so this bounds
#: the scanner's work per user; 50 is far above what a person watches by hand.
MAX_STRATEGIES = 50


#: Test messages one user may send in ``TEST_WINDOW_MS``.
TEST_MESSAGES = 5
TEST_WINDOW_MS = 600_000


@dataclass(frozen=True)
class TestTarget:
    """Where a test message goes: the channel, the user's target on it, the webhook secret, the
    user's time zone."""

    channel: str
    target: str
    secret: str | None
    timezone: str


@dataclass(frozen=True)
class Verification:
    """A verification to send (``POST /v1/me/destinations/{channel}/verify``): the code (e-mail,
    SMS, WhatsApp), the token (Telegram's start parameter; the e-mail's confirmation link), the
    webhook secret, and until when it works."""

    channel: str
    target: str
    code: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    timezone: str = "UTC"
    expires_at_ms: int = 0


class UserManager:
    def __init__(
        self,
        store: UserStore,
        clock: Clock,
        *,
        passwords: Passwords | None = None,
        analyze: validation.Analyze | None = None,
        currencies: tuple[str, ...] = ("USD",),
        allow_local_webhooks: bool = False,
        max_strategies: int = MAX_STRATEGIES,
        session_lifetime_ms: int = tokens.SESSION_LIFETIME_MS,
        max_sessions: int = tokens.MAX_SESSIONS,
        account_policy: Policy = ACCOUNT_POLICY,
        address_policy: Policy = ADDRESS_POLICY,
        pair_policy: Policy = PAIR_POLICY,
        channels: Collection[str] | None = None,
        market: Callable[[], KnownMarket | None] | None = None,
        budgets: Budgets | None = None,
    ) -> None:
        """``analyze``: the condition checker (default ``ubot.rules.analyze``); ``currencies``: the
        quote currencies the market is fetched in (the first is the default); ``allow_local_webhooks``:
        admit http://localhost webhooks (development only). ``channels``: those this server has
        (None: not checked); ``market``: the market fetched, or None before the first snapshot
        (``ubot/users/market.py``). ``budgets``: the Scanner's, per user and for the server
        (``[scanner] user_budget``, ``server_budget``; ``ubot/scan/cost.py``)."""
        self.store = store
        self.clock = clock
        self.passwords = passwords or Passwords()
        self.analyze = analyze
        self.currencies = tuple(currencies)
        self.allow_local_webhooks = allow_local_webhooks
        self.max_strategies = max_strategies
        self.session_lifetime_ms = session_lifetime_ms
        self.max_sessions = max_sessions
        self.account_policy = account_policy
        self.channels = None if channels is None else frozenset(channels)
        self.market = market or (lambda: None)
        self.budgets = budgets or Budgets()
        self.addresses = ThrottleBook(address_policy)
        #: failures by (username, address): an address that failed on an account (see throttle.py)
        self.pairs = ThrottleBook(pair_policy)
        #: wrong current passwords given to change it, by user id (only a session holder can)
        self.password_changes = ThrottleBook(pair_policy)
        #: usernames that do not exist are throttled like those that do (in memory)
        self.unknown_accounts = ThrottleBook(account_policy)
        #: test messages sent, by user id (``test_target``), in memory
        self.tests = Window(TEST_WINDOW_MS)
        #: verification messages sent, per destination and per user (``destinations.py``), counted
        #: in the database: every process's UserManager shares them
        self.verifications = dest.SendLimits(store)
        #: (username, address) pairs with a login being verified now, until when (epoch ms)
        self._logins_in_flight: dict[tuple[str, str | None], int] = {}
        #: The Telegram bot's commands (``telegram_message``).
        self.bot = Bot(self)
        #: Called with a user's id once their strategies or settings changed (set by the actor).
        self.changed: Callable[[int], None] = lambda user_id: None
        #: Called with the ids of held deliveries brought forward and when they are due now
        #: (``mute``, ``put_settings``), for a Notifier that has them queued (set by the actor).
        self.released: Callable[[tuple[int, ...], int], None] = lambda ids, due_ms: None

    def now_ms(self) -> int:
        return int(self.clock.now() * 1000)

    # --- accounts ------------------------------------------------------------------------

    # The three operations that need argon2 are steps of ubot/users/accounts.py (``Accounts``): the
    # gateway runs argon2 in its bounded pool between the steps, which run here, so the mailbox
    # never waits for a hash. These three run the same steps in the calling thread, argon2 included
    # (tests, scripts, benches: no gateway).

    def register(self, username: Any, email: Any, password: Any) -> UserView:
        return self._inline().register(username, email, password)

    def login(
        self,
        username: Any,
        password: Any,
        client: str | None,
        kind: SessionKind | None = None,
        user_agent: str | None = None,
    ) -> LoginToken:
        return self._inline().login(username, password, client, kind, user_agent)

    def change_password(self, user_id: int, old_password: Any, new_password: Any) -> None:
        """Revokes every session of the user: they log in again with the new password."""
        self._inline().change_password(user_id, old_password, new_password)

    def _inline(self) -> Accounts:
        from ubot.users.accounts import Accounts

        return Accounts(lambda method, *args: method(self, *args), Inline(), self.passwords)

    def hasher(self) -> Passwords:
        """The password hasher (the gateway's pool hashes with the same one)."""
        return self.passwords

    def check_registration(self, username: Any, email: Any, password: Any) -> tuple[str, str]:
        """The normalized username and e-mail of a sign-up that may go on (password not hashed yet)."""
        name = validation.username(username)
        address = validation.email(email)
        check_strength(password, username=name, email=address)
        self._check_free(name, address)
        return name, address

    def create_account(self, name: str, address: str, password_hash: str) -> UserView:
        """After :meth:`check_registration` and hashing: the account (checked free again)."""
        self._check_free(name, address)
        try:
            user = self.store.create_user(name, address, password_hash, self.now_ms())
        except IntegrityError:  # registered in between, by another process
            raise Conflict("username or email: is taken", field="username", title="Account exists") from None
        log.info("user %d registered", user.id)
        return _user_view(user)

    def _check_free(self, name: str, address: str) -> None:
        if self.store.username_taken(name):
            raise Conflict("username: is taken; choose another", field="username", title="Username taken")
        if self.store.email_taken(address):
            raise Conflict("email: another account uses this address", field="email", title="E-mail taken")

    def begin_login(
        self,
        username: Any,
        client: str | None,
        kind: SessionKind | None = None,
        user_agent: str | None = None,
    ) -> LoginAttempt:
        """Throttled attempts are refused here, before any hashing; otherwise the account's hash to
        verify (None: no such account, verify nothing). The (username, address) pair is marked in
        flight until :meth:`finish_login` or :meth:`abandon_login`: a second attempt of the same
        pair meanwhile is refused, so concurrent guesses cannot outrun the throttle. ``kind`` and
        ``user_agent`` go with the session a success starts (shown in :meth:`list_sessions`)."""
        now = self.now_ms()
        name = username.lower()[:64] if isinstance(username, str) else ""
        user = self.store.user_by_username(name) if validation.USERNAME.fullmatch(name) else None
        pair = (name, client)
        wait = max(
            self.addresses.retry_after(client, now) if client is not None else 0,
            self.pairs.retry_after(pair, now),
            # the account's lock holds back only the addresses that failed on it (throttle.py)
            self._account_retry_after(user, name, now) if self.pairs.has_failed(pair, now) else 0,
            IN_FLIGHT_RETRY_S if self._logins_in_flight.get(pair, 0) > now else 0,
        )
        if wait:
            raise _throttled(wait)
        if len(self._logins_in_flight) >= IN_FLIGHT_MAX:
            self._logins_in_flight = {k: t for k, t in self._logins_in_flight.items() if t > now}
        self._logins_in_flight[pair] = now + IN_FLIGHT_MS
        if user is None:
            return LoginAttempt(name, client, None, None)
        return LoginAttempt(name, client, user.id, user.password_hash, kind, _user_agent(user_agent))

    def finish_login(self, attempt: LoginAttempt, ok: bool, new_hash: str | None = None) -> LoginOutcome:
        """After verifying: a failure is counted and refused (:class:`BadCredentials`); a success
        starts a session (storing ``new_hash``, the password rehashed with today's parameters)."""
        self.abandon_login(attempt)
        now = self.now_ms()
        user = self.store.user(attempt.user_id) if attempt.user_id is not None else None
        if ok and (user is None or user.password_hash != attempt.password_hash):
            ok = False  # the password changed, or the account went, while it was being verified
        if not ok:
            if attempt.client is not None:
                self.addresses.failed(attempt.client, now)
            self.pairs.failed((attempt.name, attempt.client), now)
            self._account_failed(user, attempt.name, now)
            raise BadCredentials("wrong username or password")
        assert user is not None
        self.pairs.forget((attempt.name, attempt.client))
        if user.failed_logins or user.locked_until is not None:
            self.store.save_failures(user.id, 0, None, None)
        if new_hash is not None:
            self.store.set_password_hash(user.id, new_hash)
        token = tokens.issue()
        expires_at = now + self.session_lifetime_ms
        pruned = self.store.add_session(
            user.id,
            tokens.hash_token(token),
            now,
            expires_at,
            keep=self.max_sessions,
            kind=attempt.kind,
            user_agent=attempt.user_agent,
            client=attempt.client[:CLIENT_MAX] if attempt.client else None,
        )
        return LoginOutcome(
            LoginToken(token, iso_from_ms(expires_at)), user.id, Revoked(user.id) if pruned else None
        )

    def abandon_login(self, attempt: LoginAttempt) -> None:
        """The attempt ends without a verdict (the hash pool was full): nothing is counted."""
        self._logins_in_flight.pop((attempt.name, attempt.client), None)

    def authenticate(self, token: Any) -> int | None:
        """The user of a live session token (stand-ins and tests; the gateway reads sessions itself,
        ``ubot/users/sessions.py``)."""
        if not tokens.well_formed(token):
            return None
        now = self.now_ms()
        token_hash = tokens.hash_token(token)
        session = self.store.live_session(token_hash, now)
        if session is None or not tokens.same(session.token_hash, token_hash):
            return None
        if now - session.last_seen_at >= tokens.LAST_SEEN_RESOLUTION_MS:
            self.store.touch_session(session.id, now)
        return session.user_id

    def touch_session(self, session_id: int, now_ms: int) -> None:
        """The gateway saw the session in use (told at most once a minute per session)."""
        self.store.touch_session(session_id, now_ms)

    def logout(self, token: Any) -> Revoked | None:
        if not tokens.well_formed(token):
            return None
        now = self.now_ms()
        token_hash = tokens.hash_token(token)
        session = self.store.live_session(token_hash, now)
        self.store.revoke_session(token_hash, now)
        return None if session is None else Revoked(session.user_id, token_hash)

    def logout_everywhere(self, user_id: int) -> int:
        return self.store.revoke_all_sessions(user_id, self.now_ms())

    def list_sessions(self, user_id: int, token: Any) -> Sessions:
        """The user's live sessions, the most recently used first; the one of ``token`` is current."""
        current = tokens.hash_token(token) if tokens.well_formed(token) else None
        return Sessions(
            tuple(
                SessionView(
                    session.id,
                    session.kind,
                    iso_from_ms(session.created_at),
                    iso_from_ms(session.last_seen_at),
                    iso_from_ms(session.expires_at),
                    session.user_agent,
                    session.client,
                    current is not None and tokens.same(session.token_hash, current),
                )
                for session in self.store.live_sessions(user_id, self.now_ms())
            )
        )

    def end_session(self, user_id: int, session_id: int) -> Revoked:
        """Log out the user's live session ``session_id`` (:class:`NotFound` if there is none)."""
        token_hash = (
            self.store.revoke_session_of(user_id, session_id, self.now_ms()) if _is_id(session_id) else None
        )
        if token_hash is None:
            raise NotFound(f"no live session {session_id} of yours", field="id")
        return Revoked(user_id, token_hash)

    def begin_password_change(self, user_id: int) -> PasswordCheck:
        """Wrong current passwords are throttled per user (only a session holder gets here): a
        throttled change is refused before any hashing. The hash to verify the current one with."""
        user = self._user(user_id)
        wait = self.password_changes.retry_after(user.id, self.now_ms())
        if wait:
            raise _throttled(wait)
        return PasswordCheck(user.id, user.username, user.email, user.password_hash)

    def wrong_password(self, user_id: int) -> None:
        """The current password given was wrong: counted per user and in the account's record, like
        failed logins; always raises :class:`WrongPassword`."""
        user = self._user(user_id)
        now = self.now_ms()
        self.password_changes.failed(user.id, now)
        self._account_failed(user, user.username, now)
        raise WrongPassword("old_password: is not your current password", field="old_password")

    def finish_password_change(self, check: PasswordCheck, new_hash: str) -> Revoked:
        """Store the new hash and revoke every session of the user, unless the password changed
        since :meth:`begin_password_change` (409)."""
        user = self._user(check.user_id)
        if user.password_hash != check.password_hash:
            raise Conflict(
                "old_password: the password was changed by another request meanwhile; try again",
                field="old_password",
                title="Changed meanwhile",
            )
        self.store.change_password(user.id, new_hash, self.now_ms())
        self.password_changes.forget(user.id)
        log.info("user %d changed their password; sessions revoked", user.id)
        return Revoked(user.id)

    def _account_retry_after(self, user: User | None, name: str, now: int) -> int:
        if user is None:
            return self.unknown_accounts.retry_after(name, now)
        return retry_after(_failures(user), now)

    def _account_failed(self, user: User | None, name: str, now: int) -> None:
        if user is None:
            self.unknown_accounts.failed(name, now)
            return
        record = after_failure(_failures(user), now, self.account_policy)
        self.store.save_failures(user.id, record.count, record.last_at, record.locked_until)
        if record.locked_until is not None:
            log.warning("user %d: %d failed logins in a row; locked for a while", user.id, record.count)

    def _user(self, user_id: Any) -> User:
        user = self.store.user(user_id) if _is_id(user_id) else None
        if user is None:
            raise NotFound("no such user")
        return user

    # --- settings ------------------------------------------------------------------------

    def get_settings(self, user_id: int) -> SettingsView:
        return self._settings_view(user_id, self._settings(user_id))

    def _settings_view(self, user_id: int, values: Mapping[str, Any]) -> SettingsView:
        muted = self.store.muted_until(user_id)
        return SettingsView(
            **{name: value for name, value in values.items() if name != "muted_until"},
            destinations=self.destination_states(user_id, values),
            muted_until=_iso(muted) if muted is not None and muted > self.now_ms() else None,
        )

    def destination_states(
        self, user_id: int, settings: Mapping[str, Any] | None = None
    ) -> tuple[DestinationView, ...]:
        """Each channel's target in the settings and its state (``ubot/users/destinations.py``)."""
        values = self._settings(user_id) if settings is None else settings
        rows = self.store.destinations(user_id)
        now = self.now_ms()
        return tuple(
            DestinationView(
                channel, values.get(name), dest.state_of(rows.get(channel), values.get(name), now)
            )
            for channel, name in validation.CHANNEL_TARGETS.items()
        )

    def verified_channels(self, user_id: int, settings: Mapping[str, Any] | None = None) -> frozenset[str]:
        return frozenset(
            d.channel for d in self.destination_states(user_id, settings) if d.state == dest.VERIFIED
        )

    def put_settings(self, user_id: int, body: Settings | Mapping[str, Any]) -> SettingsView:
        """Replace every setting: one left out is cleared (or back to its default; ``muted_until``:
        not muted)."""
        return self._save_settings(user_id, body, keep_mute=False)

    def patch_settings(self, user_id: int, changes: SettingsPatch | Mapping[str, Any]) -> SettingsView:
        """Change the settings given (``null`` clears one); the others stay as they are."""
        self._user(user_id)
        fields = given(convert(SettingsPatch, changes))
        return self._save_settings(
            user_id, {**self._settings(user_id), **fields}, keep_mute="muted_until" not in fields
        )

    def _save_settings(
        self, user_id: int, body: Settings | Mapping[str, Any], keep_mute: bool
    ) -> SettingsView:
        """Write the settings (``keep_mute``: the mute as it is); deliveries held past what the new
        quiet hours, time zone and mute hold are released (:meth:`mute`)."""
        self._user(user_id)
        now = self.now_ms()
        values = validation.settings(
            body, currencies=self.currencies, allow_local=self.allow_local_webhooks, now_ms=now
        )
        cleared = [c for c, target in validation.CHANNEL_TARGETS.items() if values[target] is None]
        for name, channel in self.store.strategies_sending_to(user_id, cleared)[:1]:
            target = validation.CHANNEL_TARGETS[channel]
            raise Conflict(
                f"{target}: strategy {name!r} sends to {channel}; change or delete that strategy first",
                field=target,
                title="Target in use",
            )
        if keep_mute:
            values["muted_until"] = self.store.muted_until(user_id)
        before = self._settings(user_id)
        moved = [c for c, name in validation.CHANNEL_TARGETS.items() if before.get(name) != values[name]]
        due = self._hold_end(values, values["muted_until"], now)
        released = self.store.put_settings(user_id, values, release_until_ms=due)
        self.store.forget_destinations(user_id, moved)  # a changed address is unverified again
        self._released(user_id, released, due)
        self.changed(user_id)
        return self._settings_view(user_id, values)

    def test_target(self, user_id: int, channel: str, now_ms: int | None = None) -> TestTarget:
        """Where a test message on ``channel`` goes (``POST /v1/me/channels/{channel}/test``): the
        target in the user's settings, with the webhook secret. At most :data:`TEST_MESSAGES` a user
        in :data:`TEST_WINDOW_MS` (one test is a message to someone: it is throttled like one)."""
        self._user(user_id)
        setting = validation.CHANNEL_TARGETS.get(channel)
        if setting is None:
            raise NotFound(f"unknown channel {channel!r}: one of {', '.join(validation.CHANNEL_TARGETS)}")
        settings = self._settings(user_id)
        target = settings.get(setting)
        if not target:
            raise ValidationError("channel", f"no {channel} target in your settings: set {setting} first")
        now = self.now_ms() if now_ms is None else now_ms
        if channel not in self.verified_channels(user_id, settings):
            raise dest.not_verified(channel)
        sent = self.tests.total(user_id, now)
        if sent >= TEST_MESSAGES:
            raise Throttled(
                f"at most {TEST_MESSAGES} test messages in {TEST_WINDOW_MS // 60_000} minutes; try again later",
                retry_after_s=60,
            )
        self.tests.add(user_id, now)
        return TestTarget(channel, target, settings.get("webhook_secret"), settings.get("timezone") or "UTC")

    # --- destinations (ubot/users/destinations.py) -----------------------------------------

    def begin_verification(self, user_id: int, channel: str) -> Verification:
        """Start verifying the user's ``channel`` destination: a new code (or Telegram token), stored
        as its digest, the destination ``pending``. What to send is returned: the gateway sends it.
        Throttled per destination and per user."""
        self._user(user_id)
        setting = _channel_setting(channel)
        settings = self._settings(user_id)
        target = "" if channel == "telegram" else settings.get(setting)
        if target is None:
            raise ValidationError("channel", f"no {channel} target in your settings: set {setting} first")
        now = self.now_ms()
        row = self.store.destination(user_id, channel)
        if channel != "telegram" and dest.state_of(row, target, now) == dest.VERIFIED:
            raise Conflict(f"your {channel} destination is already verified", field="channel")
        address = "" if channel == "telegram" else str(target)
        self.verifications.take(user_id, channel, row.sent_at if row is not None else None, now, address)
        code = dest.new_code() if channel in dest.CODE_CHANNELS else None
        token = dest.new_token() if channel == "telegram" else None
        if channel in dest.LINK_CHANNELS:
            token = dest.new_link_token()  # only its digest is stored, like the code's
        lifetime = dest.LINK_LIFETIME_MS if channel == "telegram" else dest.CODE_LIFETIME_MS
        self.store.put_destination(
            user_id,
            channel,
            target=str(target),
            state=dest.PENDING,
            code_hash=None if code is None else dest.digest(code),
            token=dest.digest(token) if channel in dest.LINK_CHANNELS and token else token,
            expires_at=now + lifetime,
            sent_at=now,
        )
        if channel == "telegram":
            self.changed(user_id)  # a verified chat waits for the new link
        return Verification(
            channel,
            str(target),
            code=code,
            token=token,
            secret=settings.get("webhook_secret"),
            timezone=settings.get("timezone") or "UTC",
            expires_at_ms=now + lifetime,
        )

    def verification_answered(
        self, user_id: int, channel: str, target: str, sent: bool, detail: str
    ) -> VerificationSent:
        """What became of a verification the gateway sent: a webhook that answered 2xx is verified;
        a message that could not be sent leaves the destination unverified."""
        now = self.now_ms()
        row = self.store.destination(user_id, channel)
        if row is None or row.target != target or row.state != dest.PENDING:
            return VerificationSent(channel, dest.state_of(row, target, now), detail, None)  # changed since
        if not sent:
            self.store.put_destination(
                user_id, channel, target=target, state=dest.PENDING, expires_at=now, sent_at=row.sent_at
            )
            return VerificationSent(channel, dest.UNVERIFIED, detail, None)
        if channel == "webhook":
            self.store.put_destination(user_id, channel, target=target, state=dest.VERIFIED, verified_at=now)
            self.changed(user_id)
            return VerificationSent(channel, dest.VERIFIED, detail, None)
        return VerificationSent(channel, dest.PENDING, detail, _iso(row.expires_at))

    def confirm_destination(self, user_id: int, channel: str, code: str) -> DestinationView:
        """The code sent to the ``channel`` destination, given back: right, it is verified; wrong, one
        attempt fewer (at most :data:`~ubot.users.destinations.MAX_ATTEMPTS`)."""
        self._user(user_id)
        setting = _channel_setting(channel)
        if channel not in dest.CODE_CHANNELS:
            raise ValidationError(
                "channel", f"{channel} is not verified by a code: POST /v1/me/destinations/{channel}/verify"
            )
        target = self._settings(user_id).get(setting)
        if target is None:
            raise ValidationError("channel", f"no {channel} target in your settings: set {setting} first")
        now = self.now_ms()
        row = self.store.destination(user_id, channel)
        wrong = dest.check_code(row, target, code, now)
        if wrong is not None:
            self.store.count_wrong_code(user_id, channel)
            left = f"{wrong.left} attempt(s) left" if wrong.left else "ask for a new one with /verify"
            raise ValidationError("code", f"is not the code sent: {left}")
        self.store.put_destination(user_id, channel, target=target, state=dest.VERIFIED, verified_at=now)
        self.changed(user_id)
        return DestinationView(channel, target, dest.VERIFIED)

    def confirm_link(self, token: Any) -> DestinationView:
        """The link of a verification e-mail, opened (``/v1/destinations/confirm?token=``; no login:
        the token is the proof): its destination is verified, and the token used up. Raises
        :class:`ValidationError` (``token``) when it is not a live link (unknown, used, expired, or
        for an address the user has changed since)."""
        now = self.now_ms()
        row = self.store.destination_by_token(dest.digest(token)) if isinstance(token, str) else None
        if row is None or row.channel not in dest.LINK_CHANNELS or row.state != dest.PENDING:
            raise ValidationError("token", "is not a live link: unknown or used; ask uBot for a new one")
        if (row.expires_at or 0) <= now:
            raise ValidationError("token", "the link has expired: ask uBot for a new one")
        setting = _channel_setting(row.channel)
        if self._settings(row.user_id).get(setting) != row.target:
            raise ValidationError("token", f"the link is for an address no longer in {setting}")
        self.store.put_destination(
            row.user_id, row.channel, target=row.target, state=dest.VERIFIED, verified_at=now
        )
        self.changed(row.user_id)
        return DestinationView(row.channel, row.target, dest.VERIFIED)

    def link_telegram(self, token: str, chat_id: str) -> str:
        """A ``/start <token>`` the bot received from ``chat_id``: when the token is a live deep link,
        that chat becomes its user's verified Telegram destination. The user's name. Raises
        :class:`ValidationError` (``token``) when it is not a live link, :class:`Conflict` when the
        chat is linked to another account (a chat acts for one account: ``ubot/users/bot.py``)."""
        row = self.store.destination_by_token(token)
        now = self.now_ms()
        if (
            row is None
            or row.channel != "telegram"
            or row.state != dest.PENDING
            or (row.expires_at or 0) <= now
        ):
            raise ValidationError("token", "is not a live link: unknown, used or expired")
        if any(user_id != row.user_id for user_id in self.store.telegram_users(chat_id)):
            raise Conflict(
                "This chat is linked to another uBot account already; unlink it there first "
                "(clear its telegram_chat_id).",
                field="telegram_chat_id",
            )
        self.store.link_telegram(row.user_id, chat_id, now)
        self.changed(row.user_id)
        return self._user(row.user_id).username

    def telegram_message(self, chat_id: str, text: str) -> str | None:
        """What the bot replies to ``text`` from the chat ``chat_id`` (``ubot/users/bot.py``), or
        None: nothing."""
        return self.bot.answer(chat_id, text)

    def mute(self, user_id: int, until_ms: int | None) -> Release:
        """Hold the user's alerts until ``until_ms`` (None: not muted), like quiet hours. Deliveries
        held already past what holds them now (the mute ended or was shortened) are released: due
        when a new alert would be (at once, or when the quiet hours end), never later than they were
        (``models/alerts.py: release_held``); capped and cancelled ones stay so."""
        self._user(user_id)
        now = self.now_ms()
        due = self._hold_end(self._settings(user_id), until_ms, now)
        released = self.store.set_muted_until(user_id, until_ms, release_until_ms=due)
        self._released(user_id, released, due)
        self.changed(user_id)
        return Release(len(released), due, now)

    def _hold_end(self, settings: Mapping[str, Any], muted_until_ms: int | None, now_ms: int) -> int:
        """When a delivery of this user raised now would go (``notify/outbox.py: hold_end``)."""
        end = hold_end(settings.get("quiet_hours"), settings.get("timezone") or "UTC", muted_until_ms, now_ms)
        return now_ms if end is None else end

    def _released(self, user_id: int, ids: Sequence[int], due_ms: int) -> None:
        if ids:
            log.info("user %d: %d held delivery(ies) released, due at %s", user_id, len(ids), _iso(due_ms))
            self.released(tuple(ids), due_ms)

    def _settings(self, user_id: int) -> dict[str, Any]:
        saved = self.store.settings(user_id)
        return saved if saved is not None else validation.settings({}, currencies=self.currencies)

    # --- strategies ----------------------------------------------------------------------

    def list_strategies(self, user_id: int) -> tuple[StrategyView, ...]:
        verified = self.verified_channels(user_id)
        return tuple(_strategy_view(row, verified) for row in self.store.strategies(user_id))

    def get_strategy(self, user_id: int, strategy_id: Any) -> StrategyView:
        return _strategy_view(self._strategy(user_id, strategy_id), self.verified_channels(user_id))

    def create_strategy(self, user_id: int, body: StrategyBody | Mapping[str, Any]) -> StrategyView:
        self._user(user_id)
        if self.store.count_strategies(user_id) >= self.max_strategies:
            raise Conflict(
                f"you have {self.max_strategies} strategies, the most allowed; delete one first",
                title="Too many strategies",
            )
        now = self.now_ms()
        self._check_channels(convert(StrategyBody, body).channels)  # before the settings' targets
        values = self._validate(user_id, body, now)
        self._check_market(values, validation.STRATEGY_FIELDS)
        with self.store.budget_turn():
            self._check_budget(user_id, values)
            self._check_name(user_id, values["name"])
            try:
                row = self.store.create_strategy(user_id, values, now)
            except IntegrityError:
                raise _name_taken(values["name"]) from None
        self.changed(user_id)
        return _strategy_view(row, self.verified_channels(user_id))

    def update_strategy(
        self, user_id: int, strategy_id: Any, body: StrategyBody | Mapping[str, Any]
    ) -> StrategyView:
        """Replace the strategy with ``body`` (PUT)."""
        row = self._strategy(user_id, strategy_id)
        now = self.now_ms()
        self._check_channels(convert(StrategyBody, body).channels)
        values = self._validate(user_id, body, now)
        self._check_market(values, validation.STRATEGY_FIELDS)
        return self._save(row, values, now)

    def patch_strategy(
        self, user_id: int, strategy_id: Any, changes: StrategyPatch | Mapping[str, Any]
    ) -> StrategyView:
        """Change the fields given (PATCH). ``symbols`` replaces ``top_n`` and the reverse; an expiry
        not given is kept as it is (even past: an expired strategy can still be renamed)."""
        row = self._strategy(user_id, strategy_id)
        fields = {
            k: v for k, v in given(convert(StrategyPatch, changes)).items() if k in validation.STRATEGY_FIELDS
        }
        merged = {name: getattr(row, name) for name in validation.STRATEGY_FIELDS}
        merged.update(fields)
        if "symbols" in fields and "top_n" not in fields:
            merged["top_n"] = None
        if "top_n" in fields and "symbols" not in fields:
            merged["symbols"] = None
        keep_expiry = "expires_at" not in fields
        if keep_expiry:
            merged["expires_at"] = None
        now = self.now_ms()
        # only what the patch sets: a strategy that can no longer deliver can still be disabled
        self._check_channels(fields.get("channels", ()))
        values = self._validate(user_id, merged, now)
        self._check_market(values, fields)
        if keep_expiry:
            values["expires_at"] = row.expires_at
        return self._save(row, values, now)

    def delete_strategy(self, user_id: int, strategy_id: Any) -> None:
        if not (_is_id(strategy_id) and self.store.delete_strategy(user_id, strategy_id)):
            raise _not_found(strategy_id)
        self.changed(user_id)

    # --- the Scanner's view ------------------------------------------------------------

    def specs_of(self, user_id: int) -> UserStrategies:
        """The user's enabled strategies, with where their alerts go (for the Scanner)."""
        settings = self._settings(user_id)
        rows = self.store.enabled_strategies(user_id)
        verified = self.verified_channels(user_id, settings)
        muted = self.store.muted_until(user_id)
        return UserStrategies(user_id, tuple(spec_of(row, settings, verified, muted) for row in rows))

    def all_specs(self, stop: StopToken | None = None) -> tuple[UserStrategies, ...]:
        """Every user's enabled strategies (for the Scanner, at its start); ``stop``: raises
        :class:`~ubot.stopping.Stopped` between users once the process stops."""
        by_user: dict[int, list[Strategy]] = {}
        for number, row in enumerate(self.store.each_enabled_strategy()):
            if stop is not None and number % CHUNK == 0:
                stop.check()
            by_user.setdefault(row.user_id, []).append(row)
        out = []
        for user_id, rows in by_user.items():
            if stop is not None:
                stop.check()  # three reads a user: thousands of users take seconds
            settings = self._settings(user_id)
            verified = self.verified_channels(user_id, settings)
            muted = self.store.muted_until(user_id)
            out.append(
                UserStrategies(user_id, tuple(spec_of(row, settings, verified, muted) for row in rows))
            )
        return tuple(out)

    def disable_strategy(self, strategy_id: int, reason: str | None = None) -> int | None:
        """A ``once`` strategy fired, or one fired too often (``reason``, shown as ``paused_reason``):
        disable it. The owner's id, or None when it no longer exists. Its deliveries still to send
        are not cancelled (the one saying it was paused among them)."""
        owner = self.store.disable_strategy(strategy_id, self.now_ms(), reason)
        if owner is not None:
            self.changed(owner)
        return owner

    def record_errors(self, errors: Mapping[int, str | None], at_ms: int) -> None:
        self.store.record_errors(errors, at_ms)

    def validate_condition(self, text: Any, template: str | None = None) -> ConditionInfo:
        """The condition ``text`` checked, and ``template`` (if given) against it, as a save would."""
        info = validation.condition(text, self.analyze)
        validation.template(template, info)
        return info

    def _strategy(self, user_id: int, strategy_id: Any) -> Strategy:
        row = self.store.strategy(user_id, strategy_id) if _is_id(strategy_id) else None
        if row is None:
            raise _not_found(strategy_id)
        return row

    def _validate(self, user_id: int, body: StrategyBody | Mapping[str, Any], now: int) -> dict[str, Any]:
        return validation.strategy(body, targets=self._settings(user_id), now_ms=now, analyze=self.analyze)

    def _check_channels(self, channels: Iterable[str]) -> None:
        """Refuse a channel this server does not have, naming the setting (``ubot/users/market.py``)."""
        for channel in channels:
            if self.channels is not None and channel not in self.channels:
                raise ValidationError("channels", not_configured(channel))

    def _check_market(self, values: Mapping[str, Any], given: Collection[str]) -> None:
        """Refuse symbols the market fetched does not have, or more top coins than it has."""
        known = self.market()
        if known is None:
            return
        if values["symbols"] is not None and "symbols" in given:
            unknown = [s for s in values["symbols"] if s not in known.symbols]
            if unknown:
                raise ValidationError(
                    "symbols",
                    f"not in the market this server fetches (the top {known.coins} coins): {', '.join(unknown)}",
                )
        if values["top_n"] is not None and "top_n" in given and values["top_n"] > known.coins:
            raise ValidationError(
                "top_n",
                f"at most {known.coins}: this server fetches the top {known.coins} coins ([market] limit)",
            )

    def _check_budget(self, user_id: int, values: Mapping[str, Any], row: Strategy | None = None) -> None:
        """Refuse an enabled strategy that would take its owner's enabled strategies past
        ``budgets.user``, or everyone's past ``budgets.server`` (``ubot/scan/cost.py``). A change
        that does not make an enabled strategy cost more always passes (a budget lowered since can
        leave a user above it: they can still rename, disable or shrink what they have)."""
        if not values["enabled"]:
            return
        cost = cost_of(values["indicators"], values["symbols"], values["top_n"])
        before = (
            cost_of(row.indicators, row.symbols, row.top_n).total if row is not None and row.enabled else 0
        )
        if cost.total <= before:
            return
        mine = everyone = 0
        for strategy_id, owner, indicators, symbols, top_n in self.store.enabled_scopes():
            if row is not None and strategy_id == row.id:
                continue
            total = cost_of(indicators, symbols, top_n).total
            everyone += total
            if owner == user_id:
                mine += total
        field = "condition" if cost.series else ("symbols" if values["symbols"] is not None else "top_n")
        for used, budget, setting, whose in (
            (mine, self.budgets.user, "user_budget", "your other enabled strategies use"),
            (everyone, self.budgets.server, "server_budget", "the server's other enabled strategies use"),
        ):
            if used + cost.total > budget:
                raise OverBudget(
                    _over_budget(cost, used, budget, setting, whose),
                    field=field,
                    budget=setting,
                    cost=cost.total,
                )

    def _check_name(self, user_id: int, name: str, other_than: int | None = None) -> None:
        if self.store.strategy_name_taken(user_id, name, other_than):
            raise _name_taken(name)

    def _save(self, row: Strategy, values: dict[str, Any], now: int) -> StrategyView:
        """Check the budget and write in one turn (``UserStore.budget_turn``: another gateway's
        UserManager cannot spend the same budget in between); the Scanner is told once it is written."""
        with self.store.budget_turn():
            # as it is now, in the turn: disabled meanwhile, it is checked as newly enabled
            self._check_budget(row.user_id, values, self._strategy(row.user_id, row.id))
            self._check_name(row.user_id, values["name"], other_than=row.id)
            try:
                found = self.store.update_strategy(row.user_id, row.id, values, now)
            except IntegrityError:
                raise _name_taken(values["name"]) from None
        if not found:  # deleted in between
            raise _not_found(row.id)
        self.changed(row.user_id)
        return _strategy_view(self._strategy(row.user_id, row.id), self.verified_channels(row.user_id))


def _channel_setting(channel: str) -> str:
    setting = validation.CHANNEL_TARGETS.get(channel)
    if setting is None:
        raise NotFound(f"unknown channel {channel!r}: one of {', '.join(validation.CHANNEL_TARGETS)}")
    return setting


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _failures(user: User) -> Failures:
    return Failures(user.failed_logins, user.last_failed_at, user.locked_until)


def _throttled(wait: int) -> Throttled:
    return Throttled(f"too many failed logins; try again in {wait} s", retry_after_s=wait)


def _over_budget(cost: Cost, used: int, budget: int, setting: str, whose: str) -> str:
    left = max(0, budget - used)
    return (
        f"this strategy costs {cost.explain()} series-coins of scan work a tick; {whose} {used:,} "
        f"of the budget of {budget:,} ([scanner] {setting}), so {left:,} are left: scan fewer coins "
        "(top_n or symbols), use fewer distinct indicators, or disable another strategy"
    )


def _not_found(strategy_id: Any) -> NotFound:
    return NotFound(f"no strategy {strategy_id}" if _is_id(strategy_id) else "no such strategy")


def _name_taken(name: str) -> Conflict:
    return Conflict(f"name: you already have a strategy called {name!r}", field="name", title="Name taken")


def _user_view(user: User) -> UserView:
    return UserView(user.id, user.username, user.email, iso_from_ms(user.created_at))


def _strategy_view(row: Strategy, verified: Collection[str]) -> StrategyView:
    return StrategyView(
        id=row.id,
        name=row.name,
        condition=row.condition,
        indicators=tuple(row.indicators),
        timeframe=row.timeframe,
        symbols=None if row.symbols is None else tuple(row.symbols),
        top_n=row.top_n,
        channels=tuple(row.channels),
        frequency=row.frequency,
        cooldown_s=row.cooldown_s,
        expires_at=_iso(row.expires_at),
        enabled=bool(row.enabled),
        created_at=iso_from_ms(row.created_at),
        updated_at=iso_from_ms(row.updated_at),
        last_error=row.last_error,
        last_error_at=_iso(row.last_error_at),
        paused_reason=row.paused_reason,
        cost=cost_of(row.indicators, row.symbols, row.top_n).total,
        unverified=tuple(c for c in row.channels if c not in verified),
        template=row.template,
    )


def _iso(ms: int | None) -> str | None:
    return None if ms is None else iso_from_ms(ms)


def _user_agent(value: str | None) -> str | None:
    """A login's User-Agent as kept: printable ASCII (anything else becomes ``?``), at most
    :data:`USER_AGENT_MAX` characters; None when empty."""
    if not value:
        return None
    kept = "".join(c if " " <= c <= "~" else "?" for c in value[:USER_AGENT_MAX]).strip()
    return kept or None
