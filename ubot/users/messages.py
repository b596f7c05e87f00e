"""The small frozen values the UserManager's calls return (the gateway renders them).

Times are epoch milliseconds. Fields holding a password, a token or a secret are left out of
``repr``, so no log line can show them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
