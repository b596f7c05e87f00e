"""The queries on the user tables: accounts, sessions, settings, strategies. Used by the UserManager
alone, but for :meth:`UserStore.live_session`, which the gateway's token check also reads on its own
connections (``ubot/users/sessions.py``). Every strategy query is scoped by its owner: another user's strategy is simply not found.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from peewee import Database, fn

from ubot.models.alerts import cancel_deliveries, release_held
from ubot.models.db import is_sqlite, writing
from ubot.models.tables import Destination, Pacing, Session, Strategy, User, UserSettings

#: Strategy ids per ``UPDATE … WHERE id IN (…)`` of :meth:`UserStore.record_errors`.
ERRORS_CHUNK = 1000
SETTINGS_COLUMNS = tuple(
    f.name for f in UserSettings._meta.sorted_fields if f.name not in ("user", "muted_until")
)
STRATEGY_COLUMNS = (
    "name",
    "condition",
    "indicators",
    "timeframe",
    "symbols",
    "top_n",
    "channels",
    "frequency",
    "cooldown_s",
    "expires_at",
    "enabled",
    "template",
)


class UserStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- accounts ------------------------------------------------------------------------

    def create_user(self, username: str, email: str, password_hash: str, now_ms: int) -> User:
        """Raises ``peewee.IntegrityError`` when the username or e-mail is taken (any case)."""
        with writing(self.db):
            return User.create(
                username=username,
                email=email,
                password_hash=password_hash,
                created_at=now_ms,
                password_changed_at=now_ms,
            )

    def user(self, user_id: int) -> User | None:
        return User.get_or_none(User.id == user_id)

    def user_by_username(self, username: str) -> User | None:
        return User.get_or_none(fn.LOWER(User.username) == username.lower())

    def username_taken(self, username: str) -> bool:
        return User.select().where(fn.LOWER(User.username) == username.lower()).exists()

    def email_taken(self, email: str) -> bool:
        return User.select().where(fn.LOWER(User.email) == email.lower()).exists()

    def set_password_hash(self, user_id: int, password_hash: str, changed_at: int | None = None) -> None:
        """A new hash; ``changed_at`` when the password itself changed (not for a rehash)."""
        values: dict[Any, Any] = {User.password_hash: password_hash}
        if changed_at is not None:
            values[User.password_changed_at] = changed_at
        User.update(values).where(User.id == user_id).execute()

    def change_password(self, user_id: int, password_hash: str, now_ms: int) -> int:
        """Store the new hash, clear the failed logins and revoke every session, at once; how many
        sessions were revoked."""
        with writing(self.db):
            User.update(
                password_hash=password_hash,
                password_changed_at=now_ms,
                failed_logins=0,
                last_failed_at=None,
                locked_until=None,
            ).where(User.id == user_id).execute()
            return self.revoke_all_sessions(user_id, now_ms)

    def save_failures(self, user_id: int, count: int, last_at: int | None, locked_until: int | None) -> None:
        User.update(failed_logins=count, last_failed_at=last_at, locked_until=locked_until).where(
            User.id == user_id
        ).execute()

    # --- sessions ------------------------------------------------------------------------

    def add_session(
        self,
        user_id: int,
        token_hash: str,
        now_ms: int,
        expires_at: int,
        keep: int,
        *,
        kind: str | None = None,
        user_agent: str | None = None,
        client: str | None = None,
    ) -> int:
        """Store a new session (``kind``, ``user_agent``, ``client``: what the login said). The user's
        ended sessions are deleted, and beyond ``keep`` live ones the oldest are revoked: how many were."""
        with writing(self.db):
            Session.delete().where(
                (Session.user == user_id)
                & ((Session.expires_at <= now_ms) | Session.revoked_at.is_null(False))
            ).execute()
            Session.create(
                user=user_id,
                token_hash=token_hash,
                created_at=now_ms,
                expires_at=expires_at,
                last_seen_at=now_ms,
                kind=kind,
                user_agent=user_agent,
                client=client,
            )
            newest = (
                Session.select(Session.id)
                .where(Session.user == user_id)
                .order_by(Session.id.desc())
                .limit(keep)
            )
            return (
                Session.update(revoked_at=now_ms)
                .where((Session.user == user_id) & Session.id.not_in(newest) & Session.revoked_at.is_null())
                .execute()
            )

    def live_session(self, token_hash: str, now_ms: int) -> Session | None:
        """The session of this token hash if it is neither revoked nor expired."""
        return Session.get_or_none(
            (Session.token_hash == token_hash) & Session.revoked_at.is_null() & (Session.expires_at > now_ms)
        )

    def touch_session(self, session_id: int, now_ms: int) -> None:
        Session.update(last_seen_at=now_ms).where(Session.id == session_id).execute()

    def revoke_session(self, token_hash: str, now_ms: int) -> int:
        return (
            Session.update(revoked_at=now_ms)
            .where((Session.token_hash == token_hash) & Session.revoked_at.is_null())
            .execute()
        )

    def live_sessions(self, user_id: int, now_ms: int) -> list[Session]:
        """The user's sessions neither revoked nor expired, the most recently used first."""
        return list(
            Session.select()
            .where((Session.user == user_id) & Session.revoked_at.is_null() & (Session.expires_at > now_ms))
            .order_by(Session.last_seen_at.desc(), Session.id.desc())
        )

    def revoke_session_of(self, user_id: int, session_id: int, now_ms: int) -> str | None:
        """Revoke the user's live session ``session_id``: its token hash, or None (no such live session
        of this user)."""
        with writing(self.db):
            session = Session.get_or_none(
                (Session.id == session_id)
                & (Session.user == user_id)
                & Session.revoked_at.is_null()
                & (Session.expires_at > now_ms)
            )
            if session is None:
                return None
            Session.update(revoked_at=now_ms).where(Session.id == session.id).execute()
            return session.token_hash

    def revoke_all_sessions(self, user_id: int, now_ms: int) -> int:
        """Revoke every live session of the user; how many there were."""
        return (
            Session.update(revoked_at=now_ms)
            .where((Session.user == user_id) & Session.revoked_at.is_null() & (Session.expires_at > now_ms))
            .execute()
        )

    # --- settings ------------------------------------------------------------------------

    def settings(self, user_id: int) -> dict[str, Any] | None:
        """Every setting of the user, or ``None`` when they were never saved."""
        row = UserSettings.get_or_none(UserSettings.user == user_id)
        return None if row is None else {name: getattr(row, name) for name in SETTINGS_COLUMNS}

    def put_settings(
        self, user_id: int, values: Mapping[str, Any], release_until_ms: int | None = None
    ) -> list[int]:
        """Insert or replace all settings of the user (``values``: every settings column, and
        ``muted_until`` when it is to be written too); with ``release_until_ms``, in the same
        transaction, their deliveries held past then are moved to then (``release_held``): the ids."""
        names = (*SETTINGS_COLUMNS, "muted_until") if "muted_until" in values else SETTINGS_COLUMNS
        row = {name: values[name] for name in names}
        with writing(self.db):
            UserSettings.insert(user=user_id, **row).on_conflict(
                conflict_target=[UserSettings.user],
                update={getattr(UserSettings, name): value for name, value in row.items()},
            ).execute()
            return [] if release_until_ms is None else release_held(user_id, release_until_ms)

    def muted_until(self, user_id: int) -> int | None:
        """Until when the user muted their alerts (epoch ms; may be past), or None."""
        row = (
            UserSettings.select(UserSettings.muted_until).where(UserSettings.user == user_id).tuples().first()
        )
        return None if row is None else row[0]

    def set_muted_until(
        self, user_id: int, until_ms: int | None, release_until_ms: int | None = None
    ) -> list[int]:
        """Mute the user's alerts until ``until_ms`` (None: not muted); with ``release_until_ms``, as
        :meth:`put_settings`."""
        with writing(self.db):
            _settings_row(user_id)
            UserSettings.update(muted_until=until_ms).where(UserSettings.user == user_id).execute()
            return [] if release_until_ms is None else release_held(user_id, release_until_ms)

    # --- destinations (ubot/users/destinations.py) -----------------------------------------

    def destinations(self, user_id: int) -> dict[str, Destination]:
        """The user's destination rows, by channel."""
        return {row.channel: row for row in Destination.select().where(Destination.user == user_id)}

    def destination(self, user_id: int, channel: str) -> Destination | None:
        return Destination.get_or_none((Destination.user == user_id) & (Destination.channel == channel))

    def destination_by_token(self, token: str) -> Destination | None:
        return Destination.get_or_none(Destination.token == token)

    def telegram_users(self, chat_id: str) -> list[int]:
        """The users whose verified Telegram destination is the chat ``chat_id`` (it is their
        ``telegram_chat_id`` and they linked it), by id."""
        query = (
            Destination.select(Destination.user)
            .join(UserSettings, on=(UserSettings.user == Destination.user))
            .where(
                (Destination.channel == "telegram")
                & (Destination.state == "verified")
                & (Destination.target == chat_id)
                & (UserSettings.telegram_chat_id == chat_id)
            )
            .order_by(Destination.user)
        )
        return [user for (user,) in query.tuples()]

    def put_destination(self, user_id: int, channel: str, **values: Any) -> None:
        """Insert or replace the user's row for ``channel`` (``values``: its other columns)."""
        row = {
            "target": "",
            "state": "pending",
            "code_hash": None,
            "token": None,
            "expires_at": None,
            "attempts": 0,
            "sent_at": None,
            "verified_at": None,
            **values,
        }
        Destination.insert(user=user_id, channel=channel, **row).on_conflict(
            conflict_target=[Destination.user, Destination.channel],
            update={getattr(Destination, name): value for name, value in row.items()},
        ).execute()

    def forget_destinations(self, user_id: int, channels: Iterable[str]) -> None:
        """Their targets changed: unverified again."""
        names = list(channels)
        if names:
            Destination.delete().where(
                (Destination.user == user_id) & Destination.channel.in_(names)
            ).execute()

    def count_wrong_code(self, user_id: int, channel: str) -> None:
        Destination.update(attempts=Destination.attempts + 1).where(
            (Destination.user == user_id) & (Destination.channel == channel)
        ).execute()

    def link_telegram(self, user_id: int, chat_id: str, now_ms: int) -> None:
        """The chat that sent the deep link's token becomes the user's verified Telegram target."""
        with writing(self.db):
            _settings_row(user_id)
            UserSettings.update(telegram_chat_id=chat_id).where(UserSettings.user == user_id).execute()
            self.put_destination(user_id, "telegram", target=chat_id, state="verified", verified_at=now_ms)

    # --- strategies ----------------------------------------------------------------------

    def strategies(self, user_id: int) -> list[Strategy]:
        return list(Strategy.select().where(Strategy.user == user_id).order_by(Strategy.id))

    def enabled_strategies(self, user_id: int | None = None) -> list[Strategy]:
        """Enabled strategies of one user, or of everyone (``None``), by id."""
        query = Strategy.select().where(Strategy.enabled == True)  # noqa: E712 - SQL, not Python
        if user_id is not None:
            query = query.where(Strategy.user == user_id)
        return list(query.order_by(Strategy.id))

    def each_enabled_strategy(self) -> Iterator[Strategy]:
        """Every user's enabled strategies, by id, one row at a time (tens of thousands: a caller can
        stop between them)."""
        query = Strategy.select().where(Strategy.enabled == True)  # noqa: E712 - SQL, not Python
        return query.order_by(Strategy.id).iterator()

    def enabled_scopes(self) -> list[tuple[int, int, list[str], list[str] | None, int | None]]:
        """``(id, user id, indicators, symbols, top_n)`` of every enabled strategy: what its scan
        cost is computed from (``ubot/scan/cost.py``), without the other columns."""
        return list(
            Strategy.select(Strategy.id, Strategy.user, Strategy.indicators, Strategy.symbols, Strategy.top_n)
            .where(Strategy.enabled == True)  # noqa: E712 - SQL, not Python
            .tuples()
        )

    @contextlib.contextmanager
    def budget_turn(self) -> Iterator[None]:
        """Held while the enabled strategies' costs are read and a strategy that costs more is
        written (``UserManager._check_budget``): on PostgreSQL, where every gateway process has a
        UserManager of its own, a transaction holding an advisory lock, so two gateways saving at once
        take turns and cannot both spend the server's last budget. On SQLite there is one UserManager,
        whose mailbox already makes them take turns: nothing is held (a write transaction would hold
        the database's write lock while every enabled strategy is read)."""
        if is_sqlite(self.db):
            yield
            return
        with writing(self.db):
            self.db.execute_sql("SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':ubot-budgets'))")
            yield

    # --- verification sends (``users/destinations.py: SendLimits``) ----------------------------

    @contextlib.contextmanager
    def send_turn(self) -> Iterator[None]:
        """A write transaction in which a verification send is checked and counted; on PostgreSQL it
        holds an advisory lock too, so two gateway processes take turns (on SQLite the transaction's
        write lock does)."""
        with writing(self.db):
            if not is_sqlite(self.db):
                self.db.execute_sql(
                    "SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':ubot-verifications'))"
                )
            yield

    def send_slots(self, key: str, count: int) -> list[int]:
        """When each of ``key``'s ``count`` slots frees (0: never used): rows of the ``pacing`` table,
        whose keys are digests (an address never shows)."""
        keys = [_slot_key(key, slot) for slot in range(count)]
        found = dict(Pacing.select(Pacing.key, Pacing.next_at).where(Pacing.key.in_(keys)).tuples())
        return [found.get(k, 0) for k in keys]

    def take_send_slot(self, key: str, slot: int, until_ms: int) -> None:
        Pacing.insert(key=_slot_key(key, slot), next_at=until_ms).on_conflict(
            conflict_target=[Pacing.key], update={Pacing.next_at: until_ms}
        ).execute()

    def disable_strategy(self, strategy_id: int, now_ms: int, reason: str | None = None) -> int | None:
        """Disable a strategy (a ``once`` strategy that fired, or one paused for firing too often:
        ``reason``); its owner's id, or None if it is gone."""
        row = Strategy.get_or_none(Strategy.id == strategy_id)
        if row is None:
            return None
        Strategy.update(enabled=False, updated_at=now_ms, paused_reason=reason).where(
            Strategy.id == strategy_id
        ).execute()
        return row.user_id

    def record_errors(self, errors: Mapping[int, str | None], now_ms: int) -> None:
        """Each strategy's runtime error (None: it has none any more), for its owner to read. One
        update per distinct error and chunk of ids: a scanner that takes over tens of thousands of
        strategies notes the same few texts on each ("waiting for a seed"), in a moment."""
        by_error: dict[str | None, list[int]] = {}
        for strategy_id, error in errors.items():
            by_error.setdefault(error, []).append(strategy_id)
        with writing(self.db):
            for error, ids in by_error.items():
                for start in range(0, len(ids), ERRORS_CHUNK):
                    Strategy.update(last_error=error, last_error_at=None if error is None else now_ms).where(
                        Strategy.id.in_(ids[start : start + ERRORS_CHUNK])
                    ).execute()

    def strategy(self, user_id: int, strategy_id: int) -> Strategy | None:
        return Strategy.get_or_none((Strategy.user == user_id) & (Strategy.id == strategy_id))

    def count_strategies(self, user_id: int) -> int:
        return Strategy.select().where(Strategy.user == user_id).count()

    def strategy_name_taken(self, user_id: int, name: str, other_than: int | None = None) -> bool:
        query = Strategy.select().where((Strategy.user == user_id) & (Strategy.name == name))
        if other_than is not None:
            query = query.where(Strategy.id != other_than)
        return query.exists()

    def strategies_sending_to(self, user_id: int, channels: Iterable[str]) -> list[tuple[str, str]]:
        """``(strategy name, channel)`` for each of the user's strategies using one of ``channels``."""
        wanted = set(channels)
        found = []
        for name, used in (
            Strategy.select(Strategy.name, Strategy.channels).where(Strategy.user == user_id).tuples()
        ):
            found.extend((name, channel) for channel in used if channel in wanted)
        return found

    def create_strategy(self, user_id: int, values: Mapping[str, Any], now_ms: int) -> Strategy:
        """Raises ``peewee.IntegrityError`` when the name is taken."""
        row = {name: values[name] for name in STRATEGY_COLUMNS}
        with writing(self.db):
            return Strategy.create(user=user_id, created_at=now_ms, updated_at=now_ms, **row)

    def update_strategy(self, user_id: int, strategy_id: int, values: Mapping[str, Any], now_ms: int) -> bool:
        """Replace the strategy's columns; ``False`` if the user has no such strategy."""
        row: dict[Any, Any] = {getattr(Strategy, name): values[name] for name in STRATEGY_COLUMNS}
        row[Strategy.updated_at] = now_ms
        if values.get("enabled"):
            row[Strategy.paused_reason] = None  # enabled again by its owner
        with writing(self.db):
            count = (
                Strategy.update(row)
                .where((Strategy.user == user_id) & (Strategy.id == strategy_id))
                .execute()
            )
            if count == 1 and not values.get("enabled", True):
                cancel_deliveries(strategy_id, "cancelled: the strategy was disabled")
        return count == 1

    def delete_strategy(self, user_id: int, strategy_id: int) -> bool:
        """Delete the strategy (its alerts are kept); its deliveries still to send are cancelled."""
        with writing(self.db):
            owned = (
                Strategy.select().where((Strategy.user == user_id) & (Strategy.id == strategy_id)).exists()
            )
            if not owned:
                return False
            cancel_deliveries(strategy_id, "cancelled: the strategy was deleted")
            return Strategy.delete().where(Strategy.id == strategy_id).execute() == 1


def _settings_row(user_id: int) -> None:
    """The user's settings row, made with the defaults if they never saved any."""
    if UserSettings.get_or_none(UserSettings.user == user_id) is None:
        UserSettings.insert(user=user_id).execute()


def _slot_key(key: str, slot: int) -> str:
    """A ``pacing`` key of a verification send slot: SHA-256 in hex (the notifiers' keys hash a
    channel and a destination; no channel is called ``verify``)."""
    return hashlib.sha256(f"verify\0{key}\0{slot}".encode()).hexdigest()
