"""The README's table of limits says what the code enforces: each row is rebuilt from the constant or
setting default it states, so neither can change without the other."""

from __future__ import annotations

import re
from pathlib import Path

from ubot.config import OPTION_INDEX
from ubot.http import compress, server
from ubot.http.api import MAX_JSON_DEPTH
from ubot.http.shapes import DEFAULT_ALERTS, DEFAULT_LIMIT, MAX_ALERTS, MAX_LIMIT
from ubot.notify import templates
from ubot.notify.dispatch import SENDERS_PER_CHANNEL
from ubot.rules import language
from ubot.scan import dryrun
from ubot.users import passwords, shapes, tokens, validation
from ubot.users.manager import IN_FLIGHT_RETRY_S, MAX_STRATEGIES
from ubot.users.throttle import ACCOUNT_POLICY, ADDRESS_POLICY, PAIR_POLICY

README = Path(__file__).resolve().parents[1] / "README.md"
DAY_MS = 86_400_000


def default(section: str, name: str) -> str:
    return OPTION_INDEX[(section, name)].default


def expected_rows() -> dict[str, str]:
    body_max = OPTION_INDEX[("http", "max_body_bytes")].accepted.rsplit("..", 1)[1]
    return {
        "strategies per user": f"{MAX_STRATEGIES}",
        "`symbols` of a strategy": (
            f"1 to {shapes.SYMBOLS_MAX}, each at most {shapes.SYMBOL_MAX} characters and a coin of the market "
            "fetched (422 naming the others)"
        ),
        "`top_n` of a strategy": f"1 to {shapes.TOP_N_MAX}, and at most the coins fetched (`[market] limit`)",
        "scan cost of enabled strategies": (
            f"{int(default('scanner', 'user_budget')):,} series-coins per user (`[scanner] user_budget`), "
            f"{int(default('scanner', 'server_budget')):,} for everyone (`[scanner] server_budget`); a strategy "
            "costs its coins x (1 + distinct indicator series) ([why](docs/limits.md#scan-budgets); 422 naming "
            "the budget and the cost)"
        ),
        "`channels` of a strategy": "those this server has configured (`[notify]`; 422 naming the setting)",
        "strategy `name`": f"{shapes.NAME_MAX} characters",
        "`condition`": (
            f"{language.MAX_LENGTH} characters, {language.MAX_NODES} syntax nodes, nesting depth "
            f"{language.MAX_DEPTH}, {language.MAX_INDICATORS} distinct indicators "
            "([periods](docs/conditions.md))"
        ),
        "message `template` of a strategy": (
            f"{templates.MAX_LENGTH:,} characters (400 beyond), {templates.MAX_PLACEHOLDERS} placeholders "
            "([what it may say](docs/alerts.md#message-templates); 422 naming the column)"
        ),
        "`cooldown_s`": f"0 to {shapes.COOLDOWN_MAX_S} ({shapes.COOLDOWN_MAX_S // 86_400} days)",
        "`expires_at`": f"in the future, at most {validation.EXPIRY_MAX_MS // DAY_MS} days ahead",
        "sessions per user": (
            f"{tokens.MAX_SESSIONS} live tokens (logging in once more revokes the oldest), each valid "
            f"{tokens.SESSION_LIFETIME_MS // DAY_MS} days"
        ),
        "password": f"{passwords.PASSWORD_MIN} to {passwords.PASSWORD_MAX} characters",
        "e-mail address": f"{shapes.EMAIL_MAX} characters",
        "`webhook_url`": f"{shapes.WEBHOOK_URL_MAX} characters",
        "`GET /v1/me/alerts`": f"`limit` 1 to {MAX_ALERTS}, default {DEFAULT_ALERTS}",
        "alerts and their deliveries kept": (
            f"{default('notify', 'retention_days')} days (`[notify] retention_days`), then deleted"
        ),
        "candles, quotes and global history": f"`limit` 1 to {MAX_LIMIT}, default {DEFAULT_LIMIT}",
        "request body": (
            f"{default('http', 'max_body_bytes')} bytes (`[http] max_body_bytes`, at most {body_max}; "
            "413 beyond)"
        ),
        "nesting of a JSON body": f"{MAX_JSON_DEPTH} levels of arrays and objects (400 beyond)",
        "request line (method, path and query)": f"{server.LIMIT_REQUEST_LINE} bytes (414 beyond)",
        "request headers": (
            f"{server.LIMIT_REQUEST_FIELDS} fields, each at most {server.LIMIT_REQUEST_FIELD_SIZE} bytes "
            "(431 beyond)"
        ),
        "open `/v1/stream` and `/v1/ws` connections, counted together": (
            f"{default('http', 'stream_max')} per server (`[http] stream_max`; 503 beyond), "
            f"{default('http', 'stream_max_per_address')} per client address (`[http] stream_max_per_address`) "
            f"and {default('http', 'stream_max_per_user')} per user (`[http] stream_max_per_user`; 429 beyond); "
            "a slot is free as soon as its client leaves"
        ),
        "a request's headers, then its body": (
            f"each within {default('http', 'request_timeout')} s (`[http] request_timeout`; 408 and closed beyond)"
        ),
        "requests per client address": (
            f"{default('limits', 'per_client_rate')} a second, bursts of "
            f"{default('limits', 'per_client_burst')} (`[limits]`; 429 beyond)"
        ),
        "requests per user": (
            f"{default('limits', 'per_user_rate')} a second, bursts of {default('limits', 'per_user_burst')}"
        ),
        "sign-up and login per address": (
            f"{default('limits', 'login_per_minute')} a minute, bursts of {default('limits', 'login_burst')}, "
            "each on its own (sign-ups never spend logins)"
        ),
        "failed logins of one address on one account": (
            f"from the {PAIR_POLICY.threshold}th, that address locked out of it "
            f"{PAIR_POLICY.base_delay_ms // 1000} s, doubling up to {PAIR_POLICY.max_delay_ms // 60_000} min (429)"
        ),
        "failed logins per account, from any address": (
            f"from the {ACCOUNT_POLICY.threshold}th, every address that failed on it waits "
            f"{ACCOUNT_POLICY.base_delay_ms // 1000} s, doubling up to {ACCOUNT_POLICY.max_delay_ms // 60_000} "
            "min (429); an address that has not failed is never refused"
        ),
        "failed logins per address, on any account": (
            f"from the {ADDRESS_POLICY.threshold}th, locked {ADDRESS_POLICY.base_delay_ms // 1000} s, "
            f"doubling up to {ADDRESS_POLICY.max_delay_ms // 60_000} min (429)"
        ),
        "logins of one address on one account at once": (
            f"1 (another one meanwhile: 429, `Retry-After: {IN_FLIGHT_RETRY_S}`)"
        ),
        "password checks (argon2: login, sign-up, password change) per gateway process": (
            f"{default('accounts', 'hash_workers')} at once and {default('accounts', 'hash_queue')} waiting "
            "(`[accounts] hash_workers`, `hash_queue`; 503 with `Retry-After` beyond)"
        ),
        "a checked token kept in a gateway's memory": (
            f"{default('accounts', 'session_cache_s')} s (`[accounts] session_cache_s`); logout (of this "
            "session or of one by its id), log out everywhere and a password change end it at once, on every "
            "gateway"
        ),
        "one delivery attempt (webhook, Telegram, Twilio, SMTP)": (
            f"{default('notify', 'attempt_deadline_s')} s in all (`[notify] attempt_deadline_s`), "
            "then cut off and retried"
        ),
        "answer read from a receiver or provider": (
            f"{default('notify', 'answer_max_bytes')} bytes (`[notify] answer_max_bytes`); the rest is not read"
        ),
        "deliveries of one user in flight": (
            f"{default('notify', 'sends_per_user')} per channel, of its {SENDERS_PER_CHANNEL} sender threads "
            "(`[notify] sends_per_user`)"
        ),
        "range of a dry run": f"{dryrun.MAX_DAYS} days",
        "coins of a dry run": f"{dryrun.MAX_COINS} (`symbols` or `top_n`)",
        "dry runs at once": (
            f"{dryrun.PER_USER} per user (422 beyond), {dryrun.WORKERS} per server process (503 beyond)"
        ),
        "firings of a dry run": f"the first {dryrun.MAX_FIRINGS} (`truncated` says more followed)",
    }


def readme_rows() -> dict[str, str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### Limits per user and per request", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| (.+?) \| (.+?) \|$", section, flags=re.MULTILINE)
    return {what: limit for what, limit in rows if (what, limit) != ("what", "limit")}


def test_the_readme_states_every_limit_as_the_code_has_it() -> None:
    assert readme_rows() == expected_rows()


def test_the_readme_states_the_gzip_threshold() -> None:
    text = README.read_text(encoding="utf-8")
    assert f"JSON answers of at least {compress.MIN_BYTES} bytes are gzipped" in text
