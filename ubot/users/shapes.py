"""Every shape the UserManager takes and gives, declared once.

Request bodies are :class:`msgspec.Struct`\\ s: the gateway decodes a body straight into one (type,
required and unknown members, lengths, patterns and enums are checked there, and refused with a 400
naming the member), and the OpenAPI document is generated from the same classes. What a JSON schema
cannot say (a time zone that exists, a webhook host, a condition's meaning, symbols *or* top_n, an
expiry in the future) is checked by ``validation.py`` and refused with a 422.

Answers are frozen dataclasses (msgspec encodes them and writes their schema too); a password, a
token or a secret is left out of ``repr``, so no log line can show it. Times are ISO-8601 UTC text
(``2024-10-16T00:00:00.000Z``).

A partial change (PATCH) is :func:`partial` of the full shape: the same members, each optional, with
``UNSET`` telling "not given" from ``null`` ("clear it").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ubot.market.candles import TIMEFRAMES
from ubot.notify.templates import MAX_LENGTH as TEMPLATE_MAX
from ubot.rules.language import MAX_LENGTH as CONDITION_MAX
from ubot.users.errors import ValidationError
from ubot.users.passwords import PASSWORD_MAX

T = TypeVar("T")

MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z; larger numbers overflow the database
NAME_MAX = 64
SYMBOL_MAX = 20
SYMBOLS_MAX = 50
TOP_N_MAX = 1000
CHANNELS = ("webhook", "telegram", "sms", "whatsapp", "email")
FREQUENCIES = ("once_per_crossing", "once", "once_per_bar", "once_per_bar_close")
COOLDOWN_MAX_S = 7 * 86_400
#: The longest mute: a week (longer is what disabling strategies is for).
MUTE_MAX_MS = 7 * 86_400_000
EMAIL_MAX = 254
WEBHOOK_URL_MAX = 2048

# Patterns are JSON Schema (ECMA-262) and Python at once: plain classes, anchors and counts only.
USERNAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$"
EMAIL_PATTERN = (
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
)
E164_PATTERN = r"^\+[1-9][0-9]{7,14}$"
TELEGRAM_PATTERN = r"^-?[1-9][0-9]{0,15}$"  # a chat id; @channel names are refused
SECRET_PATTERN = r"^[\x21-\x7e]{16,128}$"
QUIET_HOURS_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$"
TIMEZONE_PATTERN = r"^[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*$"
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[\x21-\x7e]+$"  # ASCII, no spaces; the host: validation.py
SYMBOL_PATTERN = r"^[A-Za-z0-9$._-]{0,19}[A-Za-z0-9][A-Za-z0-9$._-]{0,19}$"
CONDITION_PATTERN = r"^[\x20-\x7e\t\r\n]*$"  # the condition language is printable ASCII
NAME_PATTERN = r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"  # not only spaces, no controls


def _text(pattern: str | None = None, *, min_length: int | None = None, max_length: int, **meta: Any) -> Any:
    return Annotated[str, Meta(pattern=pattern, min_length=min_length, max_length=max_length, **meta)]


Username = _text(USERNAME_PATTERN, max_length=32, description="3 to 32 of a-z 0-9 _ . -, case-insensitive")
Email = _text(EMAIL_PATTERN, max_length=EMAIL_MAX)
Password = _text(max_length=PASSWORD_MAX, description="10 to 256 characters, not a common one")
Condition = _text(
    CONDITION_PATTERN, min_length=1, max_length=CONDITION_MAX, description="in the condition language"
)
Phone = _text(E164_PATTERN, max_length=16, description="E.164: + then 8 to 15 digits")
Login = _text(max_length=256)
WebhookUrl = _text(URL_PATTERN, max_length=WEBHOOK_URL_MAX, description="https://, a public host")
Secret = _text(SECRET_PATTERN, max_length=128, description="16 to 128 printable ASCII characters")
TelegramChat = (
    _text(TELEGRAM_PATTERN, max_length=17, description="a chat id (linked by the bot's deep link)")
    | Annotated[int, Meta(ge=-(10**16 - 1), le=10**16 - 1, description="a chat id")]
)
QuietHours = _text(QUIET_HOURS_PATTERN, max_length=11, description="HH:MM-HH:MM, may wrap midnight")
TimeZone = _text(TIMEZONE_PATTERN, max_length=64, description="an IANA time zone name")
Currency = _text(r"^[A-Za-z]{3,10}$", max_length=10, description="one of the market's currencies")
StrategyName = _text(NAME_PATTERN, min_length=1, max_length=NAME_MAX)
MessageTemplate = _text(
    max_length=TEMPLATE_MAX,
    description=(
        "the strategy's own message, with placeholders: {symbol} {name} {price} {currency} {condition} "
        "{strategy} {timeframe} {time} {link} {value:EXPR} (EXPR: a field or indicator of the condition); "
        "{price:,.2f} and {value:rsi(14):.1f} take a number format; {{ and }} are braces "
        "(docs/alerts.md, Message templates). Empty or null: uBot's own words"
    ),
)
Symbol = _text(SYMBOL_PATTERN, max_length=SYMBOL_MAX, description="a coin symbol such as BTC")
Symbols = Annotated[list[Symbol], Meta(min_length=1, max_length=SYMBOLS_MAX)]
TopN = Annotated[int, Meta(ge=1, le=TOP_N_MAX)]
Cooldown = Annotated[int, Meta(ge=0, le=COOLDOWN_MAX_S)]
#: A dry run's ``top_n``: unlike the live scanner's, fixed for the whole range (README "Dry runs").
DryRunTopN = Annotated[
    int,
    Meta(
        ge=1,
        le=TOP_N_MAX,
        description=(
            "The top N coins by rank in the newest snapshot stored before `end`, for the whole range "
            "(the live scanner takes the top N of each tick's snapshot; the ranks of earlier ticks are "
            "kept only as raw quotes for [database] retention_days, so a dry run does not follow them)"
        ),
    ),
]
Time = Annotated[str, Meta(extra_json_schema={"format": "date-time"}, description="ISO-8601 UTC")]
#: An instant a client sends: an RFC 3339 date-time with its zone, or epoch milliseconds.
Instant = (
    Annotated[datetime, Meta(tz=True)]
    | Annotated[int, Meta(ge=0, le=MAX_TIME_MS, description="epoch milliseconds")]
)
MutedUntil = Annotated[
    Instant,
    Meta(
        description=(
            "Hold every alert, on every channel, until then (the Telegram bot's /mute): in the future, "
            f"at most {MUTE_MAX_MS // 86_400_000} days ahead; null: not muted (deliveries held by the mute go then, or when the "
            "quiet hours end)"
        )
    ),
]
Timeframe = Literal[tuple(TIMEFRAMES)]  # type: ignore[valid-type]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Frequency = Literal[FREQUENCIES]  # type: ignore[valid-type]


class _Body(Struct, forbid_unknown_fields=True, kw_only=True):
    """A request body: unknown members are refused (a typo is not silently ignored)."""


# --- accounts -------------------------------------------------------------------------------


class Registration(_Body):
    username: Username
    email: Email
    password: Password

    def __repr__(self) -> str:
        return f"Registration(username={self.username!r})"


class Credentials(_Body):
    username: Login
    password: Password

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r})"


class PasswordChange(_Body):
    old_password: Password
    new_password: Password

    def __repr__(self) -> str:
        return "PasswordChange()"


class ConditionText(_Body):
    """A condition to check (``POST /v1/conditions/validate``), and optionally a message template,
    checked against that condition (its ``{value:EXPR}`` must name a value the condition uses)."""

    condition: Condition
    template: MessageTemplate | None = None


# --- settings -------------------------------------------------------------------------------


class Settings(_Body):
    """All settings (PUT replaces every one: a member left out is cleared, or back to its default)."""

    webhook_url: WebhookUrl | None = None
    webhook_secret: Secret | None = None
    telegram_chat_id: TelegramChat | None = None
    sms_to: Phone | None = None
    whatsapp_to: Phone | None = None
    email_to: Email | None = None
    quiet_hours: QuietHours | None = None
    timezone: TimeZone | None = None
    quote_currency: Currency | None = None
    muted_until: MutedUntil | None = None

    def __repr__(self) -> str:
        return "Settings(...)"


class Confirmation(_Body):
    """The code sent to a destination (``POST /v1/me/destinations/{channel}/confirm``)."""

    code: Annotated[str, Meta(pattern=r"^[0-9]{6}$", max_length=6, description="the 6-digit code sent")]

    def __repr__(self) -> str:
        return "Confirmation(...)"


@dataclass(frozen=True)
class VerificationSent:
    """What ``POST /v1/me/destinations/{channel}/verify`` did: ``state`` after it; ``detail``: what the
    provider answered (or what to do next); ``link``: Telegram's deep link to open (send its
    ``/start`` to the bot); ``expires_at``: when the code, link or request stops working."""

    channel: Channel
    state: DestinationState
    detail: str
    expires_at: Time | None
    link: str | None = None


# --- strategies -----------------------------------------------------------------------------


_READ_ONLY = Meta(extra_json_schema={"readOnly": True})


class Strategy(_Body):
    """A strategy as written (POST, PUT). Either ``symbols`` or ``top_n``. The read-only members of a
    fetched strategy are accepted (a client may send back what it read) and ignored."""

    name: StrategyName
    condition: Condition
    timeframe: Timeframe
    symbols: Symbols | None = None
    top_n: TopN | None = None
    channels: Annotated[list[Channel], Meta(max_length=len(CHANNELS))] = msgspec.field(default_factory=list)
    frequency: Frequency = "once_per_crossing"
    cooldown_s: Cooldown = 0
    expires_at: Instant | None = None
    enabled: bool = True
    template: MessageTemplate | None = None
    # Read-only: ignored on input.
    id: Annotated[int, _READ_ONLY] | UnsetType = UNSET
    indicators: Annotated[list[str], _READ_ONLY] | UnsetType = UNSET
    created_at: Annotated[str | int, _READ_ONLY] | UnsetType = UNSET
    updated_at: Annotated[str | int, _READ_ONLY] | UnsetType = UNSET
    last_error: Annotated[str | None, _READ_ONLY] | UnsetType = UNSET
    last_error_at: Annotated[str | int | None, _READ_ONLY] | UnsetType = UNSET
    paused_reason: Annotated[str | None, _READ_ONLY] | UnsetType = UNSET
    cost: Annotated[int, _READ_ONLY] | UnsetType = UNSET
    unverified: Annotated[list[str], _READ_ONLY] | UnsetType = UNSET


#: The members of a strategy a client writes (the rest are read-only).
STRATEGY_FIELDS = (
    "name",
    "condition",
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
SETTINGS_FIELDS = Settings.__struct_fields__


def partial(shape: type[Struct], name: str) -> type[Struct]:
    """``shape`` with every member optional and ``UNSET`` when not given (a PATCH body)."""
    hints = msgspec.structs.fields(shape)
    return msgspec.defstruct(
        name,
        [(f.name, f.type | UnsetType, UNSET) for f in hints],
        bases=(_Body,),
        kw_only=True,
        forbid_unknown_fields=True,
    )


StrategyPatch = partial(Strategy, "StrategyPatch")
SettingsPatch = partial(Settings, "SettingsPatch")


def given(body: Struct) -> dict[str, Any]:
    """The members of a body that were given (``UNSET`` ones left out), as plain values."""
    return {name: value for name, value in msgspec.structs.asdict(body).items() if value is not UNSET}


def field_of(error: msgspec.ValidationError, shape: Any = None) -> tuple[str | None, str]:
    """The member a decoding error is about (``symbols[2]``, None for the whole body) and why, in
    words that never echo the value sent. ``shape``: the shape decoded, for the allowed values."""
    message, _, where = str(error).partition(" - at `$")
    field = where.rstrip("`").lstrip(".") or None
    for prefix, reason in (
        ("Object contains unknown field `", "unknown field"),
        ("Object missing required field `", "is required"),
    ):
        if message.startswith(prefix):
            name = message[len(prefix) :].rstrip("`")[:64]
            field = f"{field}.{name}" if field else name
            message = reason
    if message.startswith("Invalid enum value"):
        allowed = _allowed(shape, field)
        message = f"must be one of {', '.join(allowed)}" if allowed else "is not an allowed value"
    elif " matching regex " in message:
        message = "does not have the expected format"
    elif "RFC3339" in message or "timezone component" in message or "epoch timestamp" in message:
        message = "must be an RFC3339 date-time with a timezone (2030-01-31T00:00:00Z) or epoch milliseconds"
    return field, message.replace("`", "")


def _allowed(shape: Any, field: str | None) -> tuple[str, ...]:
    """The values of the Literal that the member ``field`` (``channels[0]``) is, if any."""
    if shape is None or field is None or not hasattr(shape, "__struct_fields__"):
        return ()
    name = field.split("[", 1)[0].split(".", 1)[0]
    hints = {f.name: f.type for f in msgspec.structs.fields(shape)}
    todo, found = [hints.get(name)], []
    while todo:
        hint = todo.pop()
        if get_origin(hint) is Literal:
            found.extend(str(arg) for arg in get_args(hint))
        else:
            todo.extend(get_args(hint))
    return tuple(found)


def convert(shape: type[T], value: T | Mapping[str, Any]) -> T:
    """``value`` as a ``shape`` (already one, or a mapping such as a test writes); a mapping that
    does not fit is a :class:`ValidationError` naming the member."""
    if isinstance(value, shape):
        return value
    try:
        return msgspec.convert(value, shape)
    except msgspec.ValidationError as error:
        field, message = field_of(error, shape)
        raise ValidationError(field or "body", message) from None


# --- answers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    email: str
    created_at: Time


@dataclass(frozen=True)
class LoginToken:
    """The bearer token (shown once: only its hash is stored) and when it stops working."""

    token: str = field(repr=False)
    expires_at: Time


DestinationState = Literal["unverified", "pending", "verified"]


@dataclass(frozen=True)
class DestinationView:
    """A channel's target in the settings and whether its owner proved it is theirs
    (``ubot/users/destinations.py``): alerts go only to a ``verified`` one."""

    channel: Channel
    target: str | None
    state: DestinationState


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
    #: Each channel's destination and its state (read-only).
    destinations: tuple[DestinationView, ...] = field(default_factory=tuple)
    #: Until when the user muted their alerts (the Telegram bot's ``/mute``, or ``muted_until`` in
    #: the settings; null: not muted): alerts raised before then are held until then, like quiet hours.
    muted_until: Time | None = None


@dataclass(frozen=True)
class StrategyView:
    id: int
    name: str
    condition: str
    indicators: tuple[str, ...]  # derived from the condition, read-only
    timeframe: Timeframe
    symbols: tuple[str, ...] | None
    top_n: int | None
    channels: tuple[Channel, ...]
    frequency: Frequency
    cooldown_s: int
    expires_at: Time | None
    enabled: bool
    created_at: Time
    updated_at: Time
    #: What went wrong when the Scanner last evaluated it (e.g. not enough history), and since when;
    #: None when the last evaluation gave every coin a result.
    last_error: str | None = None
    last_error_at: Time | None = None
    #: Why uBot disabled it by itself (it fired more than ``[notify] pause_after_alerts`` alerts in
    #: ``pause_window_s``); None otherwise. Cleared when it is enabled again.
    paused_reason: str | None = None
    #: Its scan cost in series-coins: coins x (1 + distinct indicator series), counted against
    #: ``[scanner] user_budget`` and ``server_budget`` while it is enabled (``ubot/scan/cost.py``).
    cost: Annotated[int, Meta(ge=0, description="scan cost: coins x (1 + distinct indicator series)")] = 0
    #: Its channels whose destination is not verified: their deliveries are written ``failed``,
    #: never sent, until verified (``POST /v1/me/destinations/{channel}/verify``).
    unverified: tuple[Channel, ...] = field(default_factory=tuple)
    #: Its message template (docs/alerts.md, "Message templates"); None: uBot's own words.
    template: str | None = None


@dataclass(frozen=True)
class Strategies:
    strategies: tuple[StrategyView, ...]


@dataclass(frozen=True)
class ConditionInfo:
    """A valid condition: the indicators it computes (``"rsi(14)"``) and the quote fields it reads."""

    indicators: tuple[str, ...]
    fields: tuple[str, ...]
    valid: Literal[True] = True


@dataclass(frozen=True)
class Revoked:
    revoked: Annotated[int, Meta(ge=0)]


SessionKind = Literal["browser", "program"]


@dataclass(frozen=True)
class SessionView:
    """One live session. ``id`` names it (``DELETE /v1/me/sessions/{id}``); it is not the token and
    tells nothing of it. ``kind``, ``user_agent`` and ``client`` (the address it logged in from) are
    what the login said: null when unknown (a session started before uBot recorded them)."""

    id: Annotated[int, Meta(ge=1)]
    kind: SessionKind | None
    created_at: Time
    last_seen_at: Annotated[Time, Meta(description="last used (to the minute)")]
    expires_at: Time
    user_agent: str | None
    client: str | None
    current: Annotated[bool, Meta(description="the session of this request")]


@dataclass(frozen=True)
class Sessions:
    sessions: tuple[SessionView, ...]


# --- dry runs -------------------------------------------------------------------------------


class DryRunRange(_Body):
    """The range of a dry run (``POST /v1/me/strategies/{id}/dry-run``): ticks in ``[start, end)``."""

    start: Instant
    end: Instant


class DryRun(_Body):
    """A strategy's rules and a range, to dry-run without saving (``POST /v1/conditions/dry-run``).
    Either ``symbols`` or ``top_n``."""

    condition: Condition
    timeframe: Timeframe
    start: Instant
    end: Instant
    symbols: Symbols | None = None
    top_n: DryRunTopN | None = None
    frequency: Frequency = "once_per_crossing"
    cooldown_s: Cooldown = 0


class DryRunFiring(Struct, frozen=True):
    """One alert the strategy would have raised: when, for which coin, and the condition's inputs
    then (``{"price": 67412.5, "rsi(14)": 28.1}``; null where a value was missing)."""

    time: Time
    coin_id: int
    symbol: str
    values: dict[str, float | None]


class DryRunAnswer(Struct, frozen=True):
    """The firings over the range, earliest first; ``coins`` and ``candles`` (1m candles) evaluated;
    ``from`` and ``to``: the first and last tick of stored history in the range. ``truncated``: more
    would have fired than are answered (these are the earliest)."""

    firings: tuple[DryRunFiring, ...]
    coins: int
    candles: int
    from_: Time = msgspec.field(name="from")
    to: Time
    truncated: bool
