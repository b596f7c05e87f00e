"""Every rule a user's input must follow. Each check returns the normalized value or raises
:class:`~ubot.users.errors.ValidationError` naming the field and why.

Limits, and why:

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
* quiet hours ``HH:MM-HH:MM`` (may wrap midnight) in the user's IANA time zone;
* strategies: name 1..64 characters; condition checked by ``ubot.rules.analyze`` (its own limits);
  a timeframe uBot builds candles for; either 1..50 symbols (a watch list a person keeps up) or the
  top 1..1000 coins by rank (bounds a strategy's work per tick; coins ranked past 1000 are rarely
  liquid); 0..5 channels, each with its target set in the settings (none, the default: the alert is
  kept in the alert log, shown by GET /v1/me/alerts and pushed on /v1/stream only); a cooldown
  of 0 s..7 days; an expiry in the future, at most 10 years ahead.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ubot.market.candles import TIMEFRAMES
from ubot.outbound import host_refusal, is_loopback_host
from ubot.timeutil import parse_iso_ms
from ubot.users.errors import ValidationError
from ubot.users.messages import ConditionInfo

USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{2,31}")
EMAIL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
EMAIL_MAX = 254
EMAIL_LOCAL_MAX = 64
E164 = re.compile(r"\+[1-9][0-9]{7,14}")
TELEGRAM_ID = re.compile(r"-?[1-9][0-9]{0,15}")
TELEGRAM_CHANNEL = re.compile(r"@[A-Za-z][A-Za-z0-9_]{4,31}")
WEBHOOK_URL_MAX = 2048
HOST = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*")  # urlsplit lower-cases it
SECRET = re.compile(r"[\x21-\x7e]{16,128}")
QUIET_HOURS = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])")
TIMEZONE = re.compile(r"[A-Za-z0-9_+-]+(?:/[A-Za-z0-9_+-]+)*")
NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})  # files in the zone directory

NAME_MAX = 64
SYMBOL = re.compile(r"[A-Z0-9$._-]{0,19}[A-Z0-9][A-Z0-9$._-]{0,19}")
SYMBOL_MAX = 20
SYMBOLS_MAX = 50
TOP_N_MAX = 1000
CHANNELS = ("webhook", "telegram", "sms", "whatsapp", "email")
#: channel -> the settings field that says where it sends to
CHANNEL_TARGETS = {
    "webhook": "webhook_url",
    "telegram": "telegram_chat_id",
    "sms": "sms_to",
    "whatsapp": "whatsapp_to",
    "email": "email_to",
}
FREQUENCIES = ("once_per_crossing", "once", "once_per_bar", "once_per_bar_close")
COOLDOWN_MAX_S = 7 * 86_400
EXPIRY_MAX_MS = 10 * 366 * 86_400_000

SETTINGS_FIELDS = (
    "webhook_url",
    "webhook_secret",
    "telegram_chat_id",
    "sms_to",
    "whatsapp_to",
    "email_to",
    "quiet_hours",
    "timezone",
    "quote_currency",
)
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
)
#: In a strategy document but derived or set by uBot: ignored on input (a client may send back
#: what it read).
STRATEGY_READ_ONLY = ("id", "indicators", "created_at", "updated_at", "last_error", "last_error_at")
STRATEGY_DEFAULTS: Mapping[str, Any] = {
    "symbols": None,
    "top_n": None,
    "channels": [],
    "frequency": "once_per_crossing",
    "cooldown_s": 0,
    "expires_at": None,
    "enabled": True,
}

Analyze = Callable[[str], Any]  # ubot.rules.analyze: text -> Analysis(.indicators, .fields)


# --- small helpers -------------------------------------------------------------------------


def _text(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError(field, f"must be a string, not {_kind(value)}")
    return value


def _integer(field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {
        type(None): "null",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        tuple: "a list",
        dict: "an object",
    }.get(type(value), type(value).__name__)


def _show(value: Any, limit: int = 24) -> str:
    """``repr`` of a user's value, cut short: error messages never echo a whole request."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unknown(fields: Mapping[str, Any], known: tuple[str, ...], ignored: tuple[str, ...] = ()) -> None:
    allowed = set(known) | set(ignored)
    for name in fields:
        if name not in allowed:
            raise ValidationError(str(name)[:64], f"unknown field; known: {', '.join(known)}")


# --- accounts ------------------------------------------------------------------------------


def username(value: Any) -> str:
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


def email(value: Any, field: str = "email") -> str:
    address = _text(field, value)
    if len(address) > EMAIL_MAX:
        raise ValidationError(field, f"must be at most {EMAIL_MAX} characters long")
    if not EMAIL.fullmatch(address):
        raise ValidationError(field, "is not an e-mail address (name@example.com)")
    if len(address.rsplit("@", 1)[0]) > EMAIL_LOCAL_MAX:
        raise ValidationError(field, f"the part before '@' must be at most {EMAIL_LOCAL_MAX} characters long")
    return address


# --- settings ------------------------------------------------------------------------------


def phone(value: Any, field: str) -> str:
    number = _text(field, value)
    if not E164.fullmatch(number):
        raise ValidationError(
            field, "must be a phone number in E.164 form: '+' then 8 to 15 digits, e.g. +14155552671"
        )
    return number


def telegram_chat_id(value: Any) -> str:
    """A chat id (as text) or ``@channelname``; a JSON integer is accepted too."""
    field = "telegram_chat_id"
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _text(field, value)
    if not (TELEGRAM_ID.fullmatch(text) or TELEGRAM_CHANNEL.fullmatch(text)):
        raise ValidationError(
            field, "must be a chat id (a non-zero integer, negative for groups) or a public @channelname"
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


def webhook_secret(value: Any) -> str:
    secret = _text("webhook_secret", value)
    if not SECRET.fullmatch(secret):
        raise ValidationError("webhook_secret", "must be 16 to 128 printable ASCII characters without spaces")
    return secret


def quiet_hours(value: Any) -> str:
    text = _text("quiet_hours", value)
    match = QUIET_HOURS.fullmatch(text)
    if not match:
        raise ValidationError("quiet_hours", "must be HH:MM-HH:MM in 24-hour time, e.g. 22:00-07:00")
    if match[1] == match[3] and match[2] == match[4]:
        raise ValidationError("quiet_hours", "must not start and end at the same time")
    return text


def timezone(value: Any) -> str:
    name = _text("timezone", value)
    if len(name) <= 64 and TIMEZONE.fullmatch(name) and name not in NOT_ZONES:
        try:
            ZoneInfo(name)
            return name
        except (ZoneInfoNotFoundError, ValueError, OSError):
            pass
    raise ValidationError("timezone", "must be an IANA time zone name, e.g. Europe/Paris or UTC")


def quote_currency(value: Any, allowed: Iterable[str]) -> str:
    allowed = tuple(allowed)
    code = _text("quote_currency", value).upper()
    if code not in allowed:
        raise ValidationError(
            "quote_currency", f"must be one of {', '.join(allowed)} (the market's currencies)"
        )
    return code


def settings(
    fields: Mapping[str, Any], *, currencies: Iterable[str] = ("USD",), allow_local: bool = False
) -> dict[str, Any]:
    """A complete set of settings from ``fields`` (a full replacement: absent fields are cleared;
    ``timezone`` defaults to UTC and ``quote_currency`` to the first of ``currencies``)."""
    currencies = tuple(currencies)
    _unknown(fields, SETTINGS_FIELDS)
    checks: dict[str, Callable[[Any], Any]] = {
        "webhook_url": lambda v: webhook_url(v, allow_local=allow_local),
        "webhook_secret": webhook_secret,
        "telegram_chat_id": telegram_chat_id,
        "sms_to": lambda v: phone(v, "sms_to"),
        "whatsapp_to": lambda v: phone(v, "whatsapp_to"),
        "email_to": lambda v: email(v, "email_to"),
        "quiet_hours": quiet_hours,
        "timezone": timezone,
        "quote_currency": lambda v: quote_currency(v, currencies),
    }
    values = {
        name: None if fields.get(name) is None else check(fields[name]) for name, check in checks.items()
    }
    if values["timezone"] is None:
        values["timezone"] = "UTC"
    if values["quote_currency"] is None:
        values["quote_currency"] = currencies[0]
    if values["webhook_url"] is not None and values["webhook_secret"] is None:
        raise ValidationError("webhook_secret", "is required with webhook_url (every call is signed with it)")
    return values


# --- strategies ----------------------------------------------------------------------------


def condition(text: Any, analyze: Analyze | None = None) -> ConditionInfo:
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


def strategy_name(value: Any) -> str:
    name = _text("name", value)
    if not 1 <= len(name) <= NAME_MAX or not name.strip():
        raise ValidationError("name", f"must be 1 to {NAME_MAX} characters long, not only spaces")
    if not name.isprintable():
        raise ValidationError("name", "must not contain control characters")
    return name


def timeframe(value: Any) -> str:
    text = _text("timeframe", value)
    if text not in TIMEFRAMES:
        raise ValidationError("timeframe", f"must be one of {', '.join(TIMEFRAMES)}")
    return text


def symbols(value: Any) -> list[str]:
    """Upper-cased, duplicates dropped, in the order given."""
    if not isinstance(value, (list, tuple)):
        raise ValidationError("symbols", f"must be a list of coin symbols, not {_kind(value)}")
    if not 1 <= len(value) <= SYMBOLS_MAX:
        raise ValidationError("symbols", f"must list 1 to {SYMBOLS_MAX} symbols (or use top_n)")
    result: list[str] = []
    for item in value:
        symbol = _text("symbols", item).upper()
        if len(symbol) > SYMBOL_MAX or not SYMBOL.fullmatch(symbol):
            raise ValidationError(
                "symbols",
                f"{_show(item)} is not a coin symbol (up to {SYMBOL_MAX} letters and digits, like BTC)",
            )
        if symbol not in result:
            result.append(symbol)
    return result


def top_n(value: Any) -> int:
    n = _integer("top_n", value)
    if not 1 <= n <= TOP_N_MAX:
        raise ValidationError("top_n", f"must be between 1 and {TOP_N_MAX}")
    return n


def channels(value: Any, targets: Mapping[str, Any]) -> list[str]:
    """Channels without duplicates; each needs its target in ``targets`` (the user's settings)."""
    if not isinstance(value, (list, tuple)):
        raise ValidationError(
            "channels", f"must be a list of: {', '.join(CHANNELS)} (or empty: the alert log only)"
        )
    result: list[str] = []
    for item in value:
        if item not in CHANNELS:
            raise ValidationError("channels", f"{_show(item)} is not a channel; known: {', '.join(CHANNELS)}")
        if item not in result:
            result.append(item)
    for channel in result:
        if targets.get(CHANNEL_TARGETS[channel]) is None:
            raise ValidationError(
                "channels", f"{channel} needs {CHANNEL_TARGETS[channel]} in your settings first"
            )
    return result


def frequency(value: Any) -> str:
    text = _text("frequency", value)
    if text not in FREQUENCIES:
        raise ValidationError("frequency", f"must be one of {', '.join(FREQUENCIES)}")
    return text


def cooldown_s(value: Any) -> int:
    seconds = _integer("cooldown_s", value)
    if not 0 <= seconds <= COOLDOWN_MAX_S:
        raise ValidationError("cooldown_s", f"must be between 0 and {COOLDOWN_MAX_S} seconds (7 days)")
    return seconds


def expires_at(value: Any, now_ms: int) -> int:
    """Epoch milliseconds, or an ISO-8601 date-time string."""
    if isinstance(value, str):
        try:
            value = parse_iso_ms(value)
        except ValueError:
            raise ValidationError(
                "expires_at", "must be an ISO-8601 date-time (2030-01-31T00:00:00Z) or epoch milliseconds"
            ) from None
    when = _integer("expires_at", value)
    if when <= now_ms:
        raise ValidationError("expires_at", "must be in the future")
    if when > now_ms + EXPIRY_MAX_MS:
        raise ValidationError("expires_at", "must be at most 10 years ahead")
    return when


def enabled(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("enabled", f"must be true or false, not {_kind(value)}")
    return value


def strategy(
    fields: Mapping[str, Any],
    *,
    targets: Mapping[str, Any],
    now_ms: int,
    analyze: Analyze | None = None,
) -> dict[str, Any]:
    """A complete strategy from ``fields`` (absent optional fields take their defaults), with the
    ``indicators`` derived from its condition. ``targets``: the user's settings."""
    _unknown(fields, STRATEGY_FIELDS, STRATEGY_READ_ONLY)
    for name in ("name", "condition", "timeframe"):
        if fields.get(name) is None:
            raise ValidationError(name, "is required")
    given = {**STRATEGY_DEFAULTS, **{k: v for k, v in fields.items() if k in STRATEGY_FIELDS}}
    values: dict[str, Any] = {"name": strategy_name(given["name"])}
    values["condition"] = given["condition"]
    values["indicators"] = list(condition(given["condition"], analyze).indicators)
    values["timeframe"] = timeframe(given["timeframe"])
    has_symbols, has_top_n = given["symbols"] is not None, given["top_n"] is not None
    if has_symbols == has_top_n:
        raise ValidationError(
            "top_n" if has_symbols else "symbols",
            "give either symbols (a list) or top_n (the top coins by rank), not both"
            if has_symbols
            else "give either symbols (a list) or top_n (the top coins by rank)",
        )
    values["symbols"] = symbols(given["symbols"]) if has_symbols else None
    values["top_n"] = top_n(given["top_n"]) if has_top_n else None
    values["channels"] = channels(_default_if_none(given, "channels"), targets)
    values["frequency"] = frequency(_default_if_none(given, "frequency"))
    values["cooldown_s"] = cooldown_s(_default_if_none(given, "cooldown_s"))
    values["expires_at"] = None if given["expires_at"] is None else expires_at(given["expires_at"], now_ms)
    values["enabled"] = enabled(_default_if_none(given, "enabled"))
    return values


def _default_if_none(given: Mapping[str, Any], name: str) -> Any:
    value = given[name]
    return STRATEGY_DEFAULTS[name] if value is None else value
