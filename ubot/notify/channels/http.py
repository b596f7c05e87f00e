"""What the HTTP channels share: a session whose connections keep to the attempt's deadline, status
classes, a capped read of the answer, and turning any requests exception into an
:class:`~ubot.notify.channel.Outcome` whose detail is one line without secrets.

requests and urllib3 only time out each socket read. The connections of :class:`WatchedAdapter`
(mounted by :func:`new_session`) hand every socket they open or reuse to the current attempt's
deadline (:mod:`ubot.notify.deadline`), which shuts it down when the deadline passes, and bound
their connect timeout by it; the channels run each request inside ``deadline.attempt(...)``.

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
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from ubot.logtext import printable
from ubot.notify import deadline
from ubot.notify.channel import FAILED, RETRY, SENT, Outcome

USER_AGENT = "uBot"
#: At most this much of a response body is read by default (``[notify] answer_max_bytes``): enough
#: for Telegram's answer, which echoes the message (4,096 characters, JSON-escaped), and far more than
#: an error description needs. The rest of a longer answer is never read (receivers can be hostile).
MAX_BODY = 64 * 1024
#: Statuses worth another try later: timeout, too early, rate limited, and every 5xx.
RETRY_STATUSES = frozenset({408, 425, 429})

_TELEGRAM_TOKEN = re.compile(r"bot\d+:[A-Za-z0-9_-]+")


def new_session(*, trust_env: bool = True) -> requests.Session:
    """A session (pooled keep-alive connections, watched by the attempt's deadline) with uBot's
    User-Agent, asking for answers without compression."""
    session = requests.Session()
    session.trust_env = trust_env
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept-Encoding"] = "identity"
    mount(session, WatchedAdapter())
    return session


def mount(session: requests.Session, adapter: requests.adapters.HTTPAdapter) -> requests.Session:
    """``adapter`` for every ``http://`` and ``https://`` URL of ``session``."""
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def cut_outcome(what: str, attempt: deadline.Deadline) -> Outcome:
    """The outcome of an attempt cut by its deadline (or by a stop): retried, saying why."""
    return Outcome(RETRY, f"{what}: {deadline.describe(attempt)}")


def status_class(http: int) -> str:
    """``sent`` (2xx), ``retry`` (408/425/429/5xx) or ``failed`` (anything else, redirects included)."""
    if 200 <= http < 300:
        return SENT
    if http in RETRY_STATUSES or 500 <= http < 600:
        return RETRY
    return FAILED


def read_body(response: requests.Response, limit: int = MAX_BODY) -> bytes:
    """The first ``limit`` bytes of the (streamed) body; the rest is not read, the response is closed
    (and its connection with it, when the body was cut)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_content(min(8192, limit)):
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
    finally:
        response.close()
    return b"".join(chunks)[:limit]


class Refused(Exception):
    """A send the channel refuses before it leaves (its text is the outcome's detail: ``failed``)."""


def post_within(
    session: requests.Session,
    url: str,
    *,
    what: str,
    deadline_s: float,
    timeout_s: float,
    max_bytes: int = MAX_BODY,
    **kwargs: Any,
) -> tuple[requests.Response, bytes] | Outcome:
    """POST inside one attempt of ``deadline_s`` (each read bounded by ``timeout_s``, no redirects
    followed) and read at most ``max_bytes`` of the answer: the response and its (capped) body, or
    the outcome when the attempt raised or was cut by its deadline. ``what`` names the far end in
    the outcome's detail; a :class:`Refused` raised on the way is ``failed`` with its own text."""
    with deadline.attempt(deadline_s) as attempt:
        try:
            response = session.post(
                url, timeout=attempt.bound(timeout_s), allow_redirects=False, stream=True, **kwargs
            )
            body = read_body(response, max_bytes)
        except Refused as exc:
            return Outcome(FAILED, f"{what}: {exc}")
        except Exception as exc:
            if attempt.expired:
                return cut_outcome(what, attempt)
            return exception_outcome(exc, what=what, timeout_s=timeout_s)
        if attempt.expired:  # an answer cut short may still parse: it is not one
            return cut_outcome(what, attempt)
    return response, body


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
        printable(destination),
        outcome.status,
        f" ({printable(outcome.detail)})" if outcome.detail else "",
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


# -- connections watched by the attempt's deadline ------------------------------------------------


class WatchedConnectionMixin:
    """Every socket opened, or reused from the pool, is watched by the current attempt's deadline;
    the connect timeout is bounded by it."""

    timeout: Any
    sock: Any

    def _new_conn(self) -> Any:
        self.timeout = deadline.bound(self.timeout)
        sock = super()._new_conn()  # type: ignore[misc]
        deadline.watch(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> Any:
        if self.sock is not None:  # a kept-alive connection: this attempt watches it too
            deadline.watch(self.sock)
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _WatchedHTTPConnection(WatchedConnectionMixin, urllib3.connection.HTTPConnection):
    pass


class _WatchedHTTPSConnection(WatchedConnectionMixin, urllib3.connection.HTTPSConnection):
    pass


class _WatchedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class WatchedAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter whose connections (through a proxy too) keep to the attempt's deadline."""

    pool_classes: dict[str, type] = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(self.pool_classes)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = dict(self.pool_classes)
        return manager
