"""The domain rules of a user's input: what the shapes (``shapes.py``, checked when a body is
decoded) cannot say. Each check returns the normalized value or raises
:class:`~ubot.users.errors.ValidationError` naming the field and why.

Limits, and why (the ones a JSON schema can state are declared in ``shapes.py``):

* username 3..32 of ``a-z 0-9 _ . -`` starting with a letter or digit, case-insensitive (stored
  lower-case): fits in URLs, logs and chat mentions, and ``Alice`` cannot impersonate ``alice``;
* e-mail: a pragmatic shape check (``local@domain.tld``), at most 254 characters (RFC 5321's path
  limit), local part at most 64; whether it works is for a confirmation mail to prove, not a regex;
* SMS and WhatsApp numbers in E.164: ``+`` and 8..15 digits, no leading zero (what Twilio takes);
* Telegram chat id: a non-zero integer (groups are negative) of at most 16 digits (Telegram ids fit
  in 52 bits), or a public ``@channelname`` (5..32 letters, digits, ``_``);
* webhook URL: https, at most 2048 characters, ASCII, no credentials in it (they would end up in
  logs: that is what ``webhook_secret`` is for), no local or private address literal (uBot would be
  calling into its own network). ``allow_local`` (development) admits localhost, over http too.
  The notifier must still check the address a name resolves to when it connects;
* webhook secret 16..128 printable ASCII characters: enough entropy for an HMAC key, small enough to
  store; required with a webhook URL, since every call is signed;
* quiet hours ``HH:MM-HH:MM`` (may wrap midnight, not empty) in the user's IANA time zone (one that
  exists);
* a mute (``muted_until``, the Telegram bot's ``/mute``) in the future and at most 7 days ahead: longer
  is what disabling strategies is for;
* strategies: name 1..64 printable characters; condition checked by ``ubot.rules.analyze`` (its own
  limits); a timeframe uBot builds candles for; either 1..50 symbols (a watch list a person keeps
  up) or the top 1..1000 coins by rank (bounds a strategy's work per tick; coins ranked past 1000
  are rarely liquid); 0..5 channels, each with its target set in the settings (none, the default:
  the alert is kept in the alert log, shown by GET /v1/me/alerts and pushed on /v1/stream only);
  a cooldown of 0 s..7 days; an expiry in the future, at most 10 years ahead; a message template
  of at most 1,000 characters whose placeholders are known and show only the condition's values
  (``ubot/notify/templates.py``: no attribute, index or conversion, plain number formats).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ubot.notify import templates
from ubot.outbound import host_refusal, is_loopback_host
from ubot.rules import language
from ubot.users import destinations, shapes
from ubot.users.errors import ValidationError
from ubot.users.shapes import (
    CHANNELS,
    EMAIL_MAX,
    FREQUENCIES,
    MUTE_MAX_MS,
    SETTINGS_FIELDS,
    STRATEGY_FIELDS,
    WEBHOOK_URL_MAX,
    ConditionInfo,
)

__all__ = ["CHANNELS", "FREQUENCIES", "SETTINGS_FIELDS", "STRATEGY_FIELDS"]

USERNAME = re.compile(shapes.USERNAME_PATTERN[1:-1])  # on the lower-cased name
EMAIL = re.compile(shapes.EMAIL_PATTERN[1:-1])
EMAIL_LOCAL_MAX = 64
E164 = re.compile(shapes.E164_PATTERN[1:-1])
TELEGRAM = re.compile(shapes.TELEGRAM_PATTERN[1:-1])
HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")  # urlsplit lower-cases it
SECRET = re.compile(shapes.SECRET_PATTERN[1:-1])
QUIET_HOURS = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])")
TIMEZONE = re.compile(shapes.TIMEZONE_PATTERN[1:-1])
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})  # files in the zone directory
#: channel -> the settings field that says where it sends to
CHANNEL_TARGETS = {
    "webhook": "webhook_url",
    "telegram": "telegram_chat_id",
    "sms": "sms_to",
    "whatsapp": "whatsapp_to",
    "email": "email_to",
}
EXPIRY_MAX_MS = 10 * 366 * 86_400_000
DEFAULT_FREQUENCY = "once_per_crossing"

Analyze = Callable[[str], Any]  # ubot.rules.analyze: text -> Analysis(.indicators, .fields)


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string")
    return value


# --- accounts ------------------------------------------------------------------------------


def username(value: str) -> str:
    """The username, lower-cased."""
    name = _text("username", value).lower()
    if not 3 <= len(name) <= 32:
        raise ValidationError("username", "must be 3 to 32 characters long")
    if not USERNAME.fullmatch(name):
        raise ValidationError(
            "username",
            "may contain only letters a-z, digits, '_', '.' and '-', and must start with a letter or digit",
        )
    return name


def email(value: str, field: str = "email") -> str:
    address = _text(field, value)
    if len(address) > EMAIL_MAX:
        raise ValidationError(field, f"must be at most {EMAIL_MAX} characters long")
    if not EMAIL.fullmatch(address):
        raise ValidationError(field, "is not an e-mail address (name@example.com)")
    if len(address.rsplit("@", 1)[0]) > EMAIL_LOCAL_MAX:
        raise ValidationError(field, f"the part before '@' must be at most {EMAIL_LOCAL_MAX} characters long")
    return address


# --- settings ------------------------------------------------------------------------------


def phone(value: str, field: str) -> str:
    if not E164.fullmatch(value):
        raise ValidationError(
            field, "must be a phone number in E.164 form: '+' then 8 to 15 digits, e.g. +14155552671"
        )
    kind = destinations.premium(value)
    if kind is not None:
        raise ValidationError(field, f"is {kind}: premium-rate and shared-cost numbers are refused")
    return value


def telegram_chat_id(value: str | int) -> str:
    """A chat id (as text); a JSON integer is accepted too. A ``@channelname`` is refused: nobody
    can prove to own a public channel by its name (link a chat with the bot's deep link instead)."""
    text = str(value)
    if isinstance(value, bool) or not TELEGRAM.fullmatch(text):
        raise ValidationError(
            "telegram_chat_id",
            "must be a chat id (a non-zero integer, negative for groups); @channel names are refused: "
            "link your chat with POST /v1/me/destinations/telegram/verify",
        )
    return text


def webhook_url(value: Any, *, allow_local: bool = False) -> str:
    field = "webhook_url"
    url = _text(field, value)
    if len(url) > WEBHOOK_URL_MAX:
        raise ValidationError(field, f"must be at most {WEBHOOK_URL_MAX} characters long")
    if not url.isascii() or any(c.isspace() or not c.isprintable() for c in url):
        raise ValidationError(
            field, "must be ASCII without spaces (percent-encode the path, use the xn-- form of the host)"
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ValidationError(field, "must be an https:// URL")
    if "@" in parts.netloc:
        raise ValidationError(field, "must not contain a user name or password (use webhook_secret)")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValidationError(field, "has no host name")
    if not (HOST.fullmatch(host) or _ip(host)):
        raise ValidationError(field, "has an invalid host name")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValidationError(field, "has an invalid port") from None
    if _ip(host) is None and _legacy_ipv4(host):
        raise ValidationError(field, "write an IPv4 address as four decimal numbers (a.b.c.d)")
    loopback_allowed = allow_local and is_loopback_host(host)
    why = None if loopback_allowed else host_refusal(host)  # a name's addresses: checked on connect
    if why:
        raise ValidationError(
            field, f"must not point to localhost or a private network address: {host} is {why}"
        )
    if scheme == "http" and not loopback_allowed:
        raise ValidationError(field, "must be an https:// URL")
    return url


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _legacy_ipv4(host: str) -> bool:
    """An IPv4 address in a legacy form (``2130706433``, ``0x7f.1``, ``127.1``) that resolvers
    accept but people do not read."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _url(value: str, allow_local: bool) -> str:
    """:func:`webhook_url`, with the ``ValueError`` of ``urllib`` (``https://[::1``) named too."""
    try:
        return webhook_url(value, allow_local=allow_local)
    except ValidationError:
        raise
    except ValueError:
        raise ValidationError("webhook_url", "is not a valid URL") from None


def webhook_secret(value: str) -> str:
    if not SECRET.fullmatch(value):
        raise ValidationError("webhook_secret", "must be 16 to 128 printable ASCII characters without spaces")
    return value


def quiet_hours(value: str) -> str:
    match = QUIET_HOURS.fullmatch(value)
    if not match:
        raise ValidationError("quiet_hours", "must be HH:MM-HH:MM in 24-hour time, e.g. 22:00-07:00")
    if match[1] == match[3] and match[2] == match[4]:
        raise ValidationError("quiet_hours", "must not start and end at the same time")
    return value


def timezone(value: str) -> str:
    if len(value) <= 64 and TIMEZONE.fullmatch(value) and value not in NOT_ZONES:
        try:
            ZoneInfo(value)
            return value
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValidationError("timezone", "must be an IANA time zone name, e.g. Europe/Paris or UTC")


def quote_currency(value: str, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    code = value.upper()
    if code not in allowed:
        raise ValidationError(
            "quote_currency", f"must be one of {', '.join(allowed)} (the market's currencies)"
        )
    return code


def settings(
    body: shapes.Settings | Mapping[str, Any],
    *,
    currencies: Iterable[str] = ("USD",),
    allow_local: bool = False,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """A complete set of settings from ``body`` (a full replacement: absent fields are cleared;
    ``timezone`` defaults to UTC and ``quote_currency`` to the first of ``currencies``). ``now_ms``:
    what ``muted_until`` must be after (needed when one is given)."""
    given = shapes.convert(shapes.Settings, body)
    currencies = tuple(currencies)
    checks: dict[str, Callable[[Any], Any]] = {
        "webhook_url": lambda v: _url(v, allow_local),
        "webhook_secret": webhook_secret,
        "telegram_chat_id": telegram_chat_id,
        "sms_to": lambda v: phone(v, "sms_to"),
        "whatsapp_to": lambda v: phone(v, "whatsapp_to"),
        "email_to": lambda v: email(v, "email_to"),
        "quiet_hours": quiet_hours,
        "timezone": timezone,
        "quote_currency": lambda v: quote_currency(v, currencies),
    }
    values = {}
    for name, check in checks.items():
        value = getattr(given, name)
        values[name] = None if value is None else check(value)
    if given.muted_until is None:
        values["muted_until"] = None
    elif now_ms is None:
        raise ValueError("settings(): now_ms is needed to check muted_until")
    else:
        values["muted_until"] = muted_until(given.muted_until, now_ms)
    if values["timezone"] is None:
        values["timezone"] = "UTC"
    if values["quote_currency"] is None:
        values["quote_currency"] = currencies[0]
    if values["webhook_url"] is not None and values["webhook_secret"] is None:
        raise ValidationError("webhook_secret", "is required with webhook_url (every call is signed with it)")
    return values


def muted_until(value: datetime | int, now_ms: int) -> int:
    """A mute's end (the Telegram bot's ``/mute``, or the settings' ``muted_until``) in epoch ms: in
    the future, at most :data:`MUTE_MAX_MS` ahead."""
    when = _epoch_ms(value)
    if when <= now_ms:
        raise ValidationError("muted_until", "must be in the future (null ends the mute)")
    if when > now_ms + MUTE_MAX_MS:
        raise ValidationError(
            "muted_until",
            f"must be at most {MUTE_MAX_MS // 86_400_000} days ahead: disable strategies instead",
        )
    return when


def _epoch_ms(value: datetime | int) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


# --- strategies ----------------------------------------------------------------------------


def condition(text: str, analyze: Analyze | None = None) -> ConditionInfo:
    """Check a condition with the condition language; the indicators and fields it uses.

    ``analyze`` defaults to ``ubot.rules.analyze``. Its errors are ``ValueError``\\ s with
    ``.message`` and ``.column`` (``ubot.rules.ConditionError``); any other exception is a bug and
    propagates.
    """
    text = _text("condition", text)
    if analyze is None:
        from ubot.rules import analyze
    try:
        analysis = analyze(text)
    except ValueError as exc:
        message = getattr(exc, "message", None)
        if not isinstance(message, str):
            raise
        raise ValidationError("condition", message, column=getattr(exc, "column", None)) from None
    return ConditionInfo(
        indicators=tuple(sorted({str(i) for i in analysis.indicators})),
        fields=tuple(sorted({str(f) for f in analysis.fields})),
    )


def strategy_name(value: str) -> str:
    if not value.strip():
        raise ValidationError("name", f"must be 1 to {shapes.NAME_MAX} characters long, not only spaces")
    if not value.isprintable():
        raise ValidationError("name", "must not contain control characters")
    return value


def symbols(value: Iterable[str]) -> list[str]:
    """Upper-cased, duplicates dropped, in the order given."""
    return list(dict.fromkeys(symbol.upper() for symbol in value))


def channels(value: Iterable[str], targets: Mapping[str, Any]) -> list[str]:
    """Channels without duplicates; each needs its target in ``targets`` (the user's settings)."""
    result = list(dict.fromkeys(value))
    for channel in result:
        if targets.get(CHANNEL_TARGETS[channel]) is None:
            raise ValidationError(
                "channels", f"{channel} needs {CHANNEL_TARGETS[channel]} in your settings first"
            )
    return result


def expires_at(value: datetime | int, now_ms: int) -> int:
    """Epoch milliseconds, from epoch milliseconds or a date-time with its zone."""
    when = _epoch_ms(value)
    if when <= now_ms:
        raise ValidationError("expires_at", "must be in the future")
    if when > now_ms + EXPIRY_MAX_MS:
        raise ValidationError("expires_at", "must be at most 10 years ahead")
    return when


def strategy(
    body: shapes.Strategy | Mapping[str, Any],
    *,
    targets: Mapping[str, Any],
    now_ms: int,
    analyze: Analyze | None = None,
) -> dict[str, Any]:
    """A complete strategy from ``body``, with the ``indicators`` derived from its condition.
    ``targets``: the user's settings."""
    given = shapes.convert(shapes.Strategy, body)
    values: dict[str, Any] = {"name": strategy_name(given.name)}
    info = condition(given.condition, analyze)
    values["indicators"] = list(info.indicators)  # columns as written
    values["condition"] = language.normalize(given.condition)
    values["timeframe"] = given.timeframe
    has_symbols, has_top_n = given.symbols is not None, given.top_n is not None
    if has_symbols == has_top_n:
        raise ValidationError(
            "top_n" if has_symbols else "symbols",
            "give either symbols (a list) or top_n (the top coins by rank), not both"
            if has_symbols
            else "give either symbols (a list) or top_n (the top coins by rank)",
        )
    values["symbols"] = symbols(given.symbols) if given.symbols is not None else None
    values["top_n"] = given.top_n
    values["channels"] = channels(given.channels, targets)
    values["frequency"] = given.frequency
    values["cooldown_s"] = given.cooldown_s
    values["expires_at"] = None if given.expires_at is None else expires_at(given.expires_at, now_ms)
    values["enabled"] = given.enabled
    values["template"] = template(given.template, info)
    return values


def template(text: str | None, info: ConditionInfo) -> str | None:
    """A message template (``ubot/notify/templates.py``) whose ``{value:EXPR}`` name inputs of the
    strategy's condition (``info``); line breaks as ``\\n``; ``None`` for none (empty or only spaces)."""
    if text is None or not text.strip():
        return None
    try:
        templates.parse(text, inputs=(*info.fields, *info.indicators))  # columns as sent
    except templates.TemplateError as error:
        raise ValidationError("template", error.message, column=error.column) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")
