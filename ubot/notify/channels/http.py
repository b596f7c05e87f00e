"""What the HTTP channels share: a session, status classes, and turning any requests
exception into an :class:`~ubot.notify.channel.Outcome` whose detail is one line without secrets.

requests' exception texts contain the full URL (a Telegram token is in the path, a webhook URL may
carry its own secret), so no detail is ever built from ``str(exc)`` of a requests exception: only from
the underlying socket error (``Connection refused``), and every detail goes through :func:`scrub`.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import requests
import urllib3.exceptions

from ubot.notify.channel import FAILED, RETRY, SENT, Outcome

USER_AGENT = "uBot"
#: At most this much of a response body is read (an error description; receivers can be hostile).
MAX_BODY = 64 * 1024
#: Statuses worth another try later: timeout, too early, rate limited, and every 5xx.
RETRY_STATUSES = frozenset({408, 425, 429})

_TELEGRAM_TOKEN = re.compile(r"bot\d+:[A-Za-z0-9_-]+")


def new_session(*, trust_env: bool = True) -> requests.Session:
    """A session (pooled keep-alive connections) with uBot's User-Agent."""
    session = requests.Session()
    session.trust_env = trust_env
    session.headers["User-Agent"] = USER_AGENT
    return session


def status_class(http: int) -> str:
    """``sent`` (2xx), ``retry`` (408/425/429/5xx) or ``failed`` (anything else, redirects included)."""
    if 200 <= http < 300:
        return SENT
    if http in RETRY_STATUSES or 500 <= http < 600:
        return RETRY
    return FAILED


def read_body(response: requests.Response, limit: int = MAX_BODY) -> bytes:
    """The first ``limit`` bytes of the (streamed) body; the response is closed."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(8192):
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    finally:
        response.close()
    return b"".join(chunks)[:limit]


def one_line(text: str, limit: int = 200) -> str:
    """Whitespace collapsed, at most ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret (and anything shaped like a Telegram bot token) replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _TELEGRAM_TOKEN.sub("bot***", text)


def exception_outcome(exc: BaseException, *, what: str, timeout_s: float) -> Outcome:
    """The outcome of a request that raised ``exc`` (requests' exceptions and anything else).

    ``what`` names the far end (``Telegram``, ``the webhook https://host:443``). Timeouts and
    connection problems are ``retry``; a certificate that does not verify, an invalid URL or an
    unexpected error is ``failed``.
    """
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Outcome(RETRY, f"{what}: could not connect within {timeout_s:g} s (timed out)")
    if isinstance(exc, requests.Timeout):
        return Outcome(RETRY, f"{what}: no answer within {timeout_s:g} s (timed out)")
    if isinstance(exc, requests.exceptions.SSLError):
        cause = _root(exc)
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or cause.reason or "verification failed"
            return Outcome(FAILED, f"{what}: TLS certificate rejected ({reason})")
        return Outcome(RETRY, f"{what}: TLS error ({_reason(cause)})")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return Outcome(RETRY, f"{what}: the answer was cut short ({_reason(_root(exc))})")
    if isinstance(exc, requests.ConnectionError):
        return Outcome(RETRY, f"{what}: {_connection_problem(exc)}")
    if isinstance(exc, requests.exceptions.InvalidURL | requests.exceptions.URLRequired):
        return Outcome(FAILED, f"{what}: invalid URL")
    if isinstance(exc, requests.RequestException):
        return Outcome(RETRY, f"{what}: request failed ({type(exc).__name__})")
    return Outcome(FAILED, f"{what}: unexpected error ({type(exc).__name__})")


def json_body(body: bytes) -> Any:
    """The decoded JSON document, or ``None`` when the body is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _connection_problem(exc: requests.ConnectionError) -> str:
    cause = _root(exc)
    if isinstance(cause, urllib3.exceptions.NameResolutionError | socket.gaierror):
        return "could not resolve the host name"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, http.client.RemoteDisconnected):
        return "the connection closed without an answer"
    if isinstance(cause, ConnectionResetError):
        return "connection reset"
    if isinstance(cause, urllib3.exceptions.ProtocolError | ConnectionAbortedError):
        return "the connection closed without an answer"
    return f"connection failed ({_reason(cause)})"


def _root(exc: BaseException) -> BaseException:
    """The innermost cause: through requests' wrapper, urllib3's ``MaxRetryError.reason`` and the
    ``__cause__``/``__context__`` chain."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, urllib3.exceptions.MaxRetryError) and current.reason is not None:
            current = current.reason
            continue
        inner = next((arg for arg in current.args if isinstance(arg, BaseException)), None)
        nxt = inner or current.__cause__ or current.__context__
        if nxt is None:
            break
        if isinstance(current, OSError) and current.strerror and not isinstance(nxt, OSError):
            break
        current = nxt
    return current


def _reason(exc: BaseException) -> str:
    """A short reason without URLs: an OS error's ``strerror``, else the exception type."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return type(exc).__name__


def log_outcome(log: logging.Logger, channel: str, destination: str, outcome: Outcome) -> Outcome:
    """Log one line per send (debug when sent, info otherwise) and give the outcome back."""
    log.log(
        logging.DEBUG if outcome.status == SENT else logging.INFO,
        "%s to %s: %s%s",
        channel,
        destination,
        outcome.status,
        f" ({outcome.detail})" if outcome.detail else "",
    )
    return outcome


class _RedactTokens(logging.Filter):
    """Rewrites urllib3's debug lines (``"POST /bot123:abc/sendMessage HTTP/1.1" 200``) so that a
    Telegram token in a URL path never reaches a log handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if _TELEGRAM_TOKEN.search(text):
            record.msg, record.args = _TELEGRAM_TOKEN.sub("bot***", text), ()
        return True


_REDACT = _RedactTokens()


def redact_urllib3_logs() -> None:
    """Install the token filter on urllib3's connection-pool logger (once)."""
    logger = logging.getLogger("urllib3.connectionpool")
    if _REDACT not in logger.filters:
        logger.addFilter(_REDACT)
