"""What the gateway asks the UserManager actor (``ask``), and the small frozen values it gets back.

Every request either succeeds with the value named on its line, or gets a :class:`Rejected` (never an
exception): ``reply = ref.ask(message); if isinstance(reply, Rejected): ...``. ``user`` is the id
that :class:`Authenticate` returned. Times are epoch milliseconds. Fields holding a password, a
token or a secret are left out of ``repr``, so no log line can show them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

# --- requests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Register:
    """-> :class:`UserView` (201) | Rejected 422 (a field), 409 (username or e-mail taken)."""

    username: str
    email: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Login:
    """-> :class:`LoginToken` | Rejected 401 (wrong username or password), 429 (``retry_after``).

    ``client``: the caller's address, throttled on its own; ``None`` when unknown.
    """

    username: str
    password: str = field(repr=False)
    client: str | None = None


@dataclass(frozen=True)
class Authenticate:
    """-> the user id (``int``) of a live session, or ``None`` (unknown, expired or revoked)."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class Logout:
    """Revokes this token's session. -> ``None``."""

    token: str = field(repr=False)


@dataclass(frozen=True)
class LogoutEverywhere:
    """Revokes every session of the user. -> the number revoked (``int``)."""

    user: int


@dataclass(frozen=True)
class ChangePassword:
    """Revokes every session of the user on success. -> ``None`` | Rejected 403 (``old_password``
    wrong), 422 (``new_password`` too weak), 429 (throttled, like a login)."""

    user: int
    old_password: str = field(repr=False)
    new_password: str = field(repr=False)


@dataclass(frozen=True)
class GetSettings:
    """-> :class:`SettingsView` (defaults when never set)."""

    user: int


@dataclass(frozen=True)
class PutSettings:
    """Replaces all settings (a field left out is cleared, or back to its default).
    -> :class:`SettingsView` | Rejected 422 (a field), 409 (a strategy still sends to a target being
    cleared)."""

    user: int
    fields: Mapping[str, Any] = field(repr=False)  # holds webhook_secret


@dataclass(frozen=True)
class ListStrategies:
    """-> ``tuple[StrategyView, ...]``, by id."""

    user: int


@dataclass(frozen=True)
class GetStrategy:
    """-> :class:`StrategyView` | Rejected 404 (no such strategy of this user)."""

    user: int
    strategy_id: int


@dataclass(frozen=True)
class CreateStrategy:
    """-> :class:`StrategyView` (201) | Rejected 422 (a field, the condition with ``column``),
    409 (name taken, or the user's strategy limit reached)."""

    user: int
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class UpdateStrategy:
    """Replaces the strategy (PUT): -> :class:`StrategyView` | Rejected 404, 409, 422."""

    user: int
    strategy_id: int
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class PatchStrategy:
    """Changes only the fields given (PATCH; ``null`` clears an optional one). Giving ``symbols``
    drops ``top_n`` and the reverse. -> :class:`StrategyView` | Rejected 404, 409, 422."""

    user: int
    strategy_id: int
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class DeleteStrategy:
    """-> ``None`` | Rejected 404."""

    user: int
    strategy_id: int


@dataclass(frozen=True)
class ValidateCondition:
    """Checks a condition without saving anything. -> :class:`ConditionInfo` | Rejected 422 with
    ``field="condition"`` and the ``column``."""

    condition: str


# --- replies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """A refused request, ready for an HTTP error body: ``status`` is the HTTP status; ``field`` the
    request field at fault; ``column`` (1-based) the position in a condition; ``retry_after`` the
    seconds for a ``Retry-After`` header (429)."""

    status: int
    title: str
    description: str
    field: str | None = None
    column: int | None = None
    retry_after: int | None = None


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    email: str
    created_at: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoginToken:
    """The bearer token (shown once: only its hash is stored) and when it stops working."""

    token: str = field(repr=False)
    expires_at: int


@dataclass(frozen=True)
class SettingsView:
    webhook_url: str | None
    webhook_secret: str | None = field(repr=False)
    telegram_chat_id: str | None
    sms_to: str | None
    whatsapp_to: str | None
    email_to: str | None
    quiet_hours: str | None
    timezone: str
    quote_currency: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StrategyView:
    id: int
    name: str
    condition: str
    indicators: tuple[str, ...]  # derived from the condition, read-only
    timeframe: str
    symbols: tuple[str, ...] | None
    top_n: int | None
    channels: tuple[str, ...]
    frequency: str
    cooldown_s: int
    expires_at: int | None
    enabled: bool
    created_at: int
    updated_at: int
    #: What went wrong when the Scanner last evaluated it (e.g. not enough history), and since when;
    #: None when the last evaluation gave every coin a result.
    last_error: str | None = None
    last_error_at: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (lists, not tuples)."""
        doc = asdict(self)
        for name in ("indicators", "symbols", "channels"):
            if doc[name] is not None:
                doc[name] = list(doc[name])
        return doc


@dataclass(frozen=True)
class ConditionInfo:
    """A valid condition: the indicators it computes (``"rsi(14)"``) and the quote fields it reads."""

    indicators: tuple[str, ...]
    fields: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"valid": True, "indicators": list(self.indicators), "fields": list(self.fields)}
