"""Settings: ``settings.ini``, overridden by ``UBOT_<SECTION>_<OPTION>`` variables, overridden by flags.

Every option is declared once in :data:`OPTIONS` with its default, its parser and the values it
accepts; ``settings.ini`` documents the same options beside the same defaults (a test keeps the two
in step). An invalid value raises :class:`ConfigError` whose message is one line naming the option,
where the value came from, and what is accepted. A name that is not an option (a section or option
of the file, or a ``UBOT_*`` variable) is refused the same way, with the likely intended name.

In the file, ``;`` starts a comment at the start of a line or after whitespace
(``interval = 30 ; seconds``); a ``;`` right after other characters is part of the value
(``postgresql://u:p;w@host/db``). Variables under ``UBOT_TEST_`` belong to the test suite, not to
uBot, and are ignored here.
"""

from __future__ import annotations

import configparser
import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

SOURCES = ("auto", "simulated", "replay", "cmc")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SMTP_SECURITY = ("starttls", "ssl", "none")
ROLES = ("all", "engine", "scanner", "notifier", "gateway")
PLACEMENTS = ("internal", "external")


class ConfigError(ValueError):
    """A setting cannot be used; ``str()`` is the one line to show the user."""


def _choice(*choices: str, upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in choices:
            raise ValueError
        return value

    return parse


def _number(minimum: float, maximum: float | None = None, integer: bool = False) -> Callable[[str], Any]:
    def parse(raw: str) -> float | int:
        value = int(raw) if integer else float(raw)
        if not math.isfinite(value) or value < minimum or (maximum is not None and value > maximum):
            raise ValueError
        return value

    return parse


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError


def _text(raw: str) -> str:
    return raw.strip()


def _currency(raw: str) -> str:
    value = raw.strip().upper()
    if not (value.isalnum() and 1 <= len(value) <= 10):
        raise ValueError
    return value


def _bind(raw: str) -> tuple[str, int]:
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError
    return host.strip("[]"), int(port)


def _bind_or_empty(raw: str) -> tuple[str, int] | None:
    return _bind(raw) if raw.strip() else None


def _database_url(raw: str) -> str:
    value = raw.strip()
    scheme = urlparse(value).scheme.split("+")[0]
    if scheme not in ("sqlite", "postgres", "postgresql") or "://" not in value:
        raise ValueError
    return value


def _redis_url_or_empty(raw: str) -> str:
    value = raw.strip()
    if value and (urlparse(value).scheme not in ("redis", "rediss", "unix") or "://" not in value):
        raise ValueError
    return value


def _key_prefix(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"[a-z][a-z0-9_.-]{0,63}", value):
        raise ValueError
    return value


def _http_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError
    return value


def _http_url_or_empty(raw: str) -> str:
    return _http_url(raw) if raw.strip() else ""


def _phone_or_empty(raw: str) -> str:
    """An E.164 number (``+15551234567``), or empty."""
    value = raw.strip()
    if value and not (value.startswith("+") and value[1:].isdigit() and 8 <= len(value) <= 16):
        raise ValueError
    return value


def _bot_username_or_empty(raw: str) -> str:
    """A Telegram bot's username without the ``@`` (5 to 32 of a-z 0-9 _, a letter first), or empty."""
    value = raw.strip().lstrip("@")
    if value and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{4,31}", value):
        raise ValueError
    return value


def _email_or_empty(raw: str) -> str:
    value = raw.strip()
    local, at, domain = value.rpartition("@")
    if value and not (at and local and "." in domain and not any(c.isspace() for c in value)):
        raise ValueError
    return value


def _origins(raw: str) -> tuple[str, ...]:
    """Comma-separated ``scheme://host[:port]`` (http or https), normalised as browsers send the
    ``Origin`` header (lower case, no default port, no trailing slash); ``*`` alone = any; empty = none."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if items == ["*"]:
        return ("*",)
    origins = []
    for item in items:
        parsed = urlparse(item)
        host = parsed.hostname or ""
        port = parsed.port  # ValueError when not a number 0..65535
        if (
            parsed.scheme.lower() not in ("http", "https")
            or parsed.path not in ("", "/")
            or parsed.params
            or parsed.query
            or parsed.fragment
            or "@" in parsed.netloc
            or not (_HOST_NAME.fullmatch(host) or _is_ipv6(host))
        ):
            raise ValueError
        scheme = parsed.scheme.lower()
        shown = f"[{host}]" if ":" in host else host
        default_port = 443 if scheme == "https" else 80
        origins.append(f"{scheme}://{shown}" + (f":{port}" if port not in (None, default_port) else ""))
    return tuple(dict.fromkeys(origins))


_HOST_NAME = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _networks(raw: str) -> tuple[str, ...]:
    """Comma-separated IP addresses or CIDR networks (``10.0.0.0/8``, ``::1``); empty = none."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    return tuple(dict.fromkeys(str(ipaddress.ip_network(item, strict=False)) for item in items))


@dataclass(frozen=True)
class Option:
    section: str
    name: str
    default: str
    parse: Callable[[str], Any]
    accepted: str
    flag: str | None = None  # the run.py flag that sets it, if any
    secret: bool = False

    @property
    def env(self) -> str:
        return f"UBOT_{self.section}_{self.name}".upper()


OPTIONS: tuple[Option, ...] = (
    Option("market", "source", "auto", _choice(*SOURCES), "one of " + ", ".join(SOURCES), "--source"),
    Option("market", "interval", "60", _number(0), "a number of seconds >= 0", "--interval"),
    Option("market", "limit", "100", _number(1, 5000, integer=True), "an integer 1..5000", "--limit"),
    Option("market", "convert", "USD", _currency, "a currency code such as USD or EUR"),
    Option("market", "seed", "42", _number(0, integer=True), "an integer >= 0", "--seed"),
    Option("market", "replay_dir", "", _text, "a directory of recorded responses", "--replay-dir"),
    Option(
        "market", "record_dir", "", _text, "a directory to record CoinMarketCap responses into", "--record"
    ),
    Option("market", "ticks", "0", _number(0, integer=True), "an integer >= 0 (0: forever)", "--ticks"),
    Option("market", "replay_deliver", "false", _boolean, "true or false", "--deliver"),
    Option("market", "backfill", "false", _boolean, "true or false", "--backfill"),
    Option(
        "market",
        "backfill_days",
        "0",
        _number(0, 3650),
        "a number of days 0..3650 (0: none)",
        "--backfill DAYS",
    ),
    Option("coinmarketcap", "api_key", "", _text, "a CoinMarketCap Pro API key", secret=True),
    Option(
        "coinmarketcap",
        "base_url",
        "https://pro-api.coinmarketcap.com",
        _http_url,
        "an http(s) URL",
    ),
    Option("coinmarketcap", "timeout", "10", _number(0.1, 120), "seconds, 0.1..120"),
    Option(
        "coinmarketcap",
        "monthly_credits",
        "10000",
        _number(1, integer=True),
        "an integer >= 1 (credits a month)",
    ),
    Option("coinmarketcap", "fit_to_plan", "true", _boolean, "true or false"),
    Option(
        "database",
        "url",
        "sqlite:///ubot.db",
        _database_url,
        "sqlite:///path or postgresql://user@host:port/name",
        "--db",
    ),
    Option("database", "retention_days", "7", _number(2, integer=True), "an integer >= 2 (days)"),
    Option(
        "database", "candle_write_minutes", "5", _number(0, 60, integer=True), "an integer 0..60 (minutes)"
    ),
    Option("http", "enabled", "true", _boolean, "true or false", "--no-http"),
    Option("http", "bind", "127.0.0.1:8080", _bind, "HOST:PORT", "--bind"),
    Option("http", "threads", "8", _number(1, 256, integer=True), "an integer 1..256"),
    Option("http", "workers", "1", _number(1, 64, integer=True), "an integer 1..64", "--workers"),
    Option("http", "request_timeout", "10", _number(1, 300), "seconds, 1..300"),
    Option(
        "http", "max_body_bytes", "16384", _number(256, 1_048_576, integer=True), "an integer 256..1048576"
    ),
    Option("http", "stream_max", "2000", _number(1, 100_000, integer=True), "an integer 1..100000"),
    Option("http", "stream_max_per_address", "2", _number(1, 255, integer=True), "an integer 1..255"),
    Option("http", "stream_max_per_user", "3", _number(1, 255, integer=True), "an integer 1..255"),
    Option("http", "stream_heartbeat", "15", _number(1, 300), "seconds, 1..300"),
    Option(
        "http",
        "cors_origins",
        "",
        _origins,
        "comma-separated origins such as https://app.example.com (scheme://host[:port]), * or empty",
    ),
    Option(
        "http",
        "trusted_proxies",
        "",
        _networks,
        "comma-separated IP addresses or networks such as 10.0.0.0/8, or empty",
    ),
    Option("http", "hsts", "false", _boolean, "true or false"),
    Option("http", "metrics", "true", _boolean, "true or false"),
    Option("cluster", "role", "all", _choice(*ROLES), "one of " + ", ".join(ROLES), "--role"),
    Option(
        "cluster",
        "redis_url",
        "",
        _redis_url_or_empty,
        "redis://host:port/db (rediss:// for TLS), or empty",
        "--redis",
    ),
    Option(
        "cluster",
        "scanners",
        "internal",
        _choice(*PLACEMENTS),
        "internal (the engine scans) or external (scanner processes do)",
    ),
    Option(
        "cluster",
        "notifiers",
        "internal",
        _choice(*PLACEMENTS),
        "internal (the engine delivers too) or external (notifier processes only)",
    ),
    Option(
        "cluster",
        "metrics",
        "",
        _bind_or_empty,
        "HOST:PORT (such as 127.0.0.1:9108), or empty",
        "--metrics",
    ),
    Option(
        "cluster",
        "redis_prefix",
        "ubot",
        _key_prefix,
        "lower-case letters, digits, _ . - (64 at most), starting with a letter",
    ),
    Option(
        "http",
        "public_url",
        "",
        _http_url_or_empty,
        "an http(s) URL such as https://ubot.example.com, or empty",
    ),
    Option("scanner", "workers", "10", _number(1, 64, integer=True), "an integer 1..64"),
    Option(
        "scanner",
        "user_budget",
        "100000",
        _number(1, 1_000_000_000, integer=True),
        "an integer 1..1000000000 (series-coins)",
    ),
    Option(
        "scanner",
        "server_budget",
        "1000000",
        _number(1, 1_000_000_000, integer=True),
        "an integer 1..1000000000 (series-coins), at least [scanner] user_budget",
    ),
    Option(
        "log",
        "level",
        "INFO",
        _choice(*LOG_LEVELS, upper=True),
        "one of " + ", ".join(LOG_LEVELS),
        "--log-level",
    ),
    Option("notify", "max_attempts", "8", _number(1, 100, integer=True), "an integer 1..100"),
    Option("notify", "backoff_s", "5", _number(0.1, 3600), "seconds, 0.1..3600"),
    Option("notify", "backoff_max_s", "900", _number(0.1, 86400), "seconds, 0.1..86400"),
    Option("notify", "webhook_timeout", "10", _number(0.1, 120), "seconds, 0.1..120"),
    Option("notify", "attempt_deadline_s", "10", _number(0.1, 120), "seconds, 0.1..120"),
    Option("notify", "lease_s", "60", _number(5, 3600), "seconds, 5..3600"),
    Option(
        "notify",
        "answer_max_bytes",
        "65536",
        _number(16384, 1_048_576, integer=True),
        "an integer 16384..1048576",
    ),
    Option("notify", "sends_per_user", "2", _number(1, 3, integer=True), "an integer 1..3"),
    Option("notify", "retention_days", "90", _number(1, 3650, integer=True), "an integer 1..3650 (days)"),
    Option("notify", "webhook_allow_private", "false", _boolean, "true or false"),
    Option(
        "notify",
        "messages_per_user_hour",
        "240",
        _number(0, 100_000, integer=True),
        "an integer 0..100000 (0 = no cap)",
    ),
    Option(
        "notify",
        "messages_per_destination_hour",
        "60",
        _number(0, 100_000, integer=True),
        "an integer 0..100000 (0 = no cap)",
    ),
    Option(
        "notify",
        "pause_after_alerts",
        "1000",
        _number(0, 10_000_000, integer=True),
        "an integer 0..10000000 (0 = never pause)",
    ),
    Option("notify", "pause_window_s", "600", _number(60, 86400, integer=True), "seconds, 60..86400"),
    Option("notify", "telegram_bot_token", "", _text, "a Telegram bot token from @BotFather", secret=True),
    Option("notify", "telegram_api_url", "https://api.telegram.org", _http_url, "an http(s) URL"),
    Option(
        "notify",
        "telegram_bot_username",
        "",
        _bot_username_or_empty,
        "the bot's username (5 to 32 of A-Z a-z 0-9 _, a letter first), for its deep links",
    ),
    Option("notify", "twilio_account_sid", "", _text, "a Twilio account SID (AC...)"),
    Option("notify", "twilio_auth_token", "", _text, "a Twilio auth token", secret=True),
    Option("notify", "twilio_sms_from", "", _phone_or_empty, "an E.164 number such as +15551234567"),
    Option("notify", "twilio_whatsapp_from", "", _phone_or_empty, "an E.164 number such as +15551234567"),
    Option("notify", "twilio_api_url", "https://api.twilio.com", _http_url, "an http(s) URL"),
    Option("notify", "smtp_host", "", _text, "an SMTP server host name"),
    Option("notify", "smtp_port", "587", _number(1, 65535, integer=True), "a port 1..65535"),
    Option(
        "notify", "smtp_security", "starttls", _choice(*SMTP_SECURITY), "one of " + ", ".join(SMTP_SECURITY)
    ),
    Option("notify", "smtp_user", "", _text, "an SMTP user name"),
    Option("notify", "smtp_password", "", _text, "an SMTP password", secret=True),
    Option("notify", "smtp_from", "", _email_or_empty, "an e-mail address such as alerts@example.com"),
    Option("limits", "enabled", "true", _boolean, "true or false"),
    Option("limits", "per_client_rate", "20", _number(0.01, 100_000), "requests a second, 0.01..100000"),
    Option("limits", "per_client_burst", "40", _number(1, 100_000, integer=True), "an integer 1..100000"),
    Option("limits", "per_user_rate", "10", _number(0.01, 100_000), "requests a second, 0.01..100000"),
    Option("limits", "per_user_burst", "20", _number(1, 100_000, integer=True), "an integer 1..100000"),
    Option("limits", "login_per_minute", "5", _number(0.1, 10_000), "attempts a minute, 0.1..10000"),
    Option("limits", "login_burst", "10", _number(1, 10_000, integer=True), "an integer 1..10000"),
    Option(
        "accounts",
        "hash_workers",
        "1",
        _number(1, 64, integer=True),
        "an integer 1..64; hash_workers + hash_queue below [http] threads",
    ),
    Option(
        "accounts", "hash_queue", "1", _number(0, 1024, integer=True), "an integer 0..1024, see hash_workers"
    ),
    Option(
        "accounts",
        "hash_nice",
        "10",
        _number(0, 19, integer=True),
        "an integer 0..19 (added to the hashing threads' nice value; 0: as every other thread)",
    ),
    Option("accounts", "session_cache_s", "10", _number(0, 300), "seconds, 0..300 (0: no cache)"),
)
OPTION_INDEX: Mapping[tuple[str, str], Option] = {(o.section, o.name): o for o in OPTIONS}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(o.section for o in OPTIONS))
ENV_NAMES: Mapping[str, Option] = {o.env: o for o in OPTIONS}
#: Variables under this prefix are the test suite's (UBOT_TEST_DATABASE_URL, ...), not settings.
NOT_SETTINGS_PREFIX = "UBOT_TEST_"


class Settings(SimpleNamespace):
    """``settings.market.interval`` etc.; plus :meth:`describe` for a log line without secrets."""

    def describe(self) -> str:
        parts = []
        for option in OPTIONS:
            value = getattr(getattr(self, option.section), option.name)
            if option.secret:
                value = "(set)" if value else "(unset)"
            elif isinstance(value, str):
                value = _redact(value)
            parts.append(f"{option.section}.{option.name}={value}")
        return " ".join(parts)


def _redact(text: str) -> str:
    """``text`` with the password of a URL (``scheme://user:password@host``) replaced by ``***``."""
    try:
        password = urlparse(text.strip()).password
    except ValueError:
        return text
    return text.replace(f":{password}@", ":***@") if password else text


def _close(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _section_hint(section: str) -> str:
    close = _close(section.lower(), SECTIONS)
    if close:
        return f"; did you mean [{close}]?"
    return "; known sections: " + ", ".join(SECTIONS)


def _option_hint(section: str, name: str) -> str:
    elsewhere = [o.section for o in OPTIONS if o.name == name]
    if elsewhere:
        return f"; did you mean [{elsewhere[0]}] {name}?"
    known = [o.name for o in OPTIONS if o.section == section]
    close = _close(name, known)
    if close:
        return f"; did you mean {close}?"
    return f"; known in [{section}]: " + ", ".join(known)


def _check_environment_names(environ: Mapping[str, str]) -> None:
    """Refuse a ``UBOT_*`` variable that names no setting: a typo would otherwise be ignored."""
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith("UBOT_") or upper.startswith(NOT_SETTINGS_PREFIX) or variable in ENV_NAMES:
            continue
        close = _close(upper.removeprefix("UBOT_"), (name.removeprefix("UBOT_") for name in ENV_NAMES))
        if close:
            hint = f"did you mean UBOT_{close}?"
        else:
            hint = "settings are UBOT_<SECTION>_<OPTION>, e.g. UBOT_MARKET_INTERVAL (see settings.ini)"
        raise ConfigError(f"environment {variable}: unknown setting; {hint}")


def _parse(option: Option, raw: str, origin: str) -> Any:
    try:
        return option.parse(raw)
    except (ValueError, TypeError):
        shown = "(hidden)" if option.secret else repr(_redact(raw))
        raise ConfigError(
            f"{origin}: invalid value {shown} for [{option.section}] {option.name}; "
            f"expected {option.accepted}"
        ) from None


def load_settings(
    path: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, str], str] | None = None,
    required: bool = False,
) -> Settings:
    """Read ``path`` (if it exists, or fail when ``required``), then the environment, then flags."""
    environ = os.environ if environ is None else environ
    raw: dict[tuple[str, str], tuple[str, str]] = {
        key: (option.default, "default") for key, option in OPTION_INDEX.items()
    }
    if path is not None:
        if not os.path.exists(path):
            if required:
                raise ConfigError(f"configuration file {path} does not exist")
        else:
            parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";",))
            try:
                with open(path, encoding="utf-8") as handle:
                    parser.read_file(handle)
            except (OSError, configparser.Error, UnicodeDecodeError) as exc:
                message = str(exc).splitlines()[0]
                raise ConfigError(f"{path}: cannot read: {message}") from None
            for section in parser.sections():
                if section not in SECTIONS:
                    raise ConfigError(f"{path}: unknown section [{section}]{_section_hint(section)}")
                for name, value in parser.items(section):
                    if (section, name) not in OPTION_INDEX:
                        hint = _option_hint(section, name)
                        raise ConfigError(f"{path}: unknown option [{section}] {name}{hint}")
                    raw[(section, name)] = (value, path)
    _check_environment_names(environ)
    for key, option in OPTION_INDEX.items():
        if option.env in environ:
            raw[key] = (environ[option.env], f"environment {option.env}")
    for key, value in (overrides or {}).items():
        option = OPTION_INDEX[key]
        raw[key] = (value, option.flag or f"[{key[0]}] {key[1]}")

    sections: dict[str, dict[str, Any]] = {}
    for key, (value, origin) in raw.items():
        sections.setdefault(key[0], {})[key[1]] = _parse(OPTION_INDEX[key], value, origin)
    settings = Settings(**{name: SimpleNamespace(**values) for name, values in sections.items()})
    _check_together(settings)
    return settings


def resolved_source(settings: Settings) -> str:
    """``auto`` means the real CoinMarketCap API when a key is set, else the simulated market."""
    source = settings.market.source
    if source == "auto":
        return "cmc" if settings.coinmarketcap.api_key else "simulated"
    return source


def _check_together(settings: Settings) -> None:
    source = resolved_source(settings)
    if source == "replay" and not settings.market.replay_dir:
        raise ConfigError(
            "[market] source = replay needs a directory: set --replay-dir or [market] replay_dir"
        )
    if source == "cmc" and not settings.coinmarketcap.api_key:
        raise ConfigError(
            "[market] source = cmc needs an API key: set UBOT_COINMARKETCAP_API_KEY "
            "or [coinmarketcap] api_key"
        )
    if settings.market.replay_deliver and source != "replay":
        raise ConfigError("[market] replay_deliver (--deliver) is for replays: it needs --source replay")
    if settings.market.backfill and source != "replay":
        raise ConfigError(
            "[market] backfill (--backfill without DAYS) adds a replay's recordings to the history: it "
            "needs --source replay; with the simulated source give the days to make (--backfill 7)"
        )
    if settings.market.backfill_days and source != "simulated":
        raise ConfigError(
            f"[market] backfill_days (--backfill {settings.market.backfill_days:g}) makes history from the "
            f"simulated market: it needs --source simulated, not {source}"
            + ("; a replay's --backfill takes no DAYS" if source == "replay" else "")
        )
    if settings.market.backfill and settings.market.backfill_days:
        raise ConfigError(
            "[market] backfill and backfill_days: give one (a replay's, or DAYS of simulated history)"
        )
    if settings.market.record_dir and source == "replay":
        raise ConfigError(
            "[market] record_dir (--record) records what a source fetches: it needs --source cmc or "
            "simulated, not replay"
        )
    if source == "cmc" and settings.market.interval == 0:
        raise ConfigError(
            "[market] interval = 0 (back-to-back ticks) is only for the simulated and replay "
            "sources; CoinMarketCap needs a real interval such as 60"
        )
    if settings.scanner.server_budget < settings.scanner.user_budget:
        raise ConfigError(
            f"[scanner] server_budget ({settings.scanner.server_budget}) must be at least [scanner] "
            f"user_budget ({settings.scanner.user_budget}): one user at their budget must fit"
        )
    held = settings.accounts.hash_workers + settings.accounts.hash_queue
    if held >= settings.http.threads:
        raise ConfigError(
            f"[accounts] hash_workers + hash_queue ({held}) must be below [http] threads "
            f"({settings.http.threads}): each login being checked or waiting holds a thread of the "
            "gateway's pool, and other requests need some too"
        )
    _check_notify(settings.notify)
    _check_cluster(settings)


def _check_cluster(settings: Settings) -> None:
    """Every role but ``all`` runs beside other processes: they share PostgreSQL and Redis."""
    role = settings.cluster.role
    if role != "gateway" and settings.http.workers > 1:
        why = (
            "keeps one gateway process (the pipeline's actors live in it)"
            if role == "all"
            else "serves no HTTP"
        )
        raise ConfigError(
            f"[http] workers = {settings.http.workers} (--workers): --role {role} {why}; "
            "several workers are for --role gateway"
        )
    if settings.cluster.metrics and role in ("all", "gateway"):
        raise ConfigError(
            "[cluster] metrics (--metrics) is for --role engine, scanner and notifier, which serve no "
            f"HTTP; --role {role} serves GET /metrics on its own address ([http] metrics)"
        )
    if role == "all":
        for name in ("scanners", "notifiers"):
            if getattr(settings.cluster, name) == "external":
                raise ConfigError(
                    f"[cluster] {name} = external needs --role engine (with {name[:-1]} processes); "
                    f"--role all runs everything itself: set [cluster] {name} = internal"
                )
        return
    scheme = urlparse(settings.database.url).scheme.split("+")[0]
    if scheme == "sqlite":
        raise ConfigError(
            f"--role {role} needs PostgreSQL, shared by every process: set --db postgresql://... "
            "or [database] url (SQLite is for --role all only)"
        )
    if not settings.cluster.redis_url:
        raise ConfigError(
            f"--role {role} needs Redis, for what travels between processes: set --redis "
            "redis://host:port/0 or [cluster] redis_url"
        )
    notify = settings.notify
    if role in ("engine", "notifier") and notify.lease_s <= notify.attempt_deadline_s:
        raise ConfigError(
            f"[notify] lease_s ({notify.lease_s:g}) must be longer than [notify] attempt_deadline_s "
            f"({notify.attempt_deadline_s:g}) for --role {role}: a claim must outlast the attempt it covers"
        )


def _check_notify(notify: SimpleNamespace) -> None:
    if notify.backoff_max_s < notify.backoff_s:
        raise ConfigError("[notify] backoff_max_s must be at least [notify] backoff_s")

    twilio = (notify.twilio_account_sid, notify.twilio_auth_token)
    senders = (notify.twilio_sms_from, notify.twilio_whatsapp_from)
    if any(twilio) and not all(twilio):
        raise ConfigError(
            "Twilio needs both [notify] twilio_account_sid and twilio_auth_token "
            "(UBOT_NOTIFY_TWILIO_AUTH_TOKEN), or neither"
        )
    if all(twilio) and not any(senders):
        raise ConfigError(
            "Twilio is configured but sends from nowhere: set [notify] twilio_sms_from "
            "and/or twilio_whatsapp_from"
        )
    if any(senders) and not all(twilio):
        raise ConfigError(
            "[notify] twilio_sms_from / twilio_whatsapp_from need [notify] twilio_account_sid "
            "and twilio_auth_token"
        )
    if notify.smtp_host and not notify.smtp_from:
        raise ConfigError("[notify] smtp_host is set: set [notify] smtp_from (the sender address) too")
    if notify.smtp_password and not notify.smtp_user:
        raise ConfigError("[notify] smtp_password is set: set [notify] smtp_user too")
