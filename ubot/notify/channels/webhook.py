"""The webhook channel: POST the alert as JSON to the user's URL, signed with the user's secret.

The request::

    POST <url>
    Content-Type: application/json
    User-Agent: uBot
    X-Ubot-Delivery: 9f1c...e2 (32 hex digits)   (the delivery's random 128-bit id: the same on every attempt)
    X-Ubot-Signature: t=1764000000,v1=<64 hex digits>   (only when the webhook has a secret)

    {"id":...}                                   (the alert: compact JSON, sorted keys, UTF-8)

``v1`` is the hex HMAC-SHA256, keyed with the user's ``webhook_secret`` (read from the settings when
the attempt is made, never stored with the delivery), of ``"<t>.<raw body>"``; ``t`` is the unix time
of this attempt in seconds. The timestamp is signed with the body, so a captured request cannot be
replayed later: a receiver refuses a ``t`` more than :data:`TOLERANCE_S` (5 minutes) from its own clock.

How a receiver verifies a delivery (:func:`verify` is the reference; docs/alerts.md has the same in
Python and JavaScript, tested against :func:`sign`):

1. Read the raw body bytes, before any JSON parsing (re-serialising changes the bytes).
2. Split ``X-Ubot-Signature`` on ``,`` into ``t=`` and ``v1=``; refuse when ``t`` is more than 5 minutes
   from now.
3. Compute ``hmac.new(secret, f"{t}.".encode() + body, sha256).hexdigest()`` and compare it with ``v1``
   in constant time (``hmac.compare_digest``); refuse the request when they differ.
4. Drop a delivery id already seen: after a crash or a lost answer uBot sends the same delivery again
   (an at-least-once sender; ``X-Ubot-Delivery`` is the idempotency key).

Any 2xx answer is success. 408, 425, 429 and 5xx are tried again later (``Retry-After`` is honoured,
in seconds or as an HTTP-date); every other status, and any redirect (never followed), is final.

Slow receivers: ``timeout_s`` bounds each read, ``deadline_s`` the whole attempt (the name lookup,
which runs in a thread of its own so that the host's DNS server cannot hold it, connect, TLS, the
request, the answer): a receiver still answering at the deadline is cut off and the attempt retried
(:mod:`ubot.notify.deadline`). At most ``max_answer_bytes`` of the answer are read.

Private addresses: unless ``allow_private_addresses``, a URL whose host resolves to an address of
the outbound deny list (:mod:`ubot.outbound`: loopback, private, shared, link-local, documentation,
multicast, reserved, NAT64, Teredo, ... the same list the settings check applies when the URL is
saved) is refused, so an alert cannot be aimed at uBot's own network. The check is made when the
connection is opened, by the connection itself: the host is resolved once, *every*
address of the answer is checked (a name that resolves to one public and one private address is
refused as a whole), and the socket connects to those checked addresses, never to a second
resolution. A DNS answer that changes between the check and the connect (rebinding) therefore
cannot redirect the request, and connections kept alive in the pool were checked when opened. TLS
still verifies the certificate against the URL's host name. No proxy is used in that mode (the proxy,
not uBot, would connect).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
import urllib3.util.connection

from ubot.jsonsafe import json_document
from ubot.notify import deadline
from ubot.notify.channel import FAILED, RETRY, SENT, Message, Outcome
from ubot.notify.channels.http import (
    MAX_BODY,
    Refused,
    WatchedAdapter,
    WatchedConnectionMixin,
    log_outcome,
    mount,
    new_session,
    one_line,
    post_within,
    scrub,
    status_class,
)
from ubot.outbound import address_of, refusal
from ubot.retry_after import retry_after_s

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
#: Receivers refuse a signature whose timestamp is further than this from their clock (seconds).
TOLERANCE_S = 300


class AddressRefused(Refused):
    """The URL's host resolves to an address webhooks may not reach (raised by the connection)."""


class WebhookChannel:
    """POST ``message.payload`` to ``message.target`` (an http/https URL).

    A ``session`` given is used as is, except that, with the guard on, the guarded adapter is mounted
    on it for ``http://`` and ``https://``. ``clock`` (unix seconds) is for tests.
    """

    name = "webhook"
    min_interval_s = 0.0

    def __init__(
        self,
        *,
        timeout_s: float = 10.0,
        deadline_s: float = 10.0,
        max_answer_bytes: int = MAX_BODY,
        allow_private_addresses: bool = False,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self.max_answer_bytes = max_answer_bytes
        self.allow_private_addresses = allow_private_addresses
        self._clock = clock
        if session is None:
            # Without the guard, proxies from the environment are fine; with it, none (see above).
            session = new_session(trust_env=allow_private_addresses)
        mount(session, WatchedAdapter() if allow_private_addresses else GuardedAdapter())
        self._session = session

    def destination(self, message: Message) -> str:
        """The URL itself: each receiver gets its deliveries one at a time, and a slow one delays
        only its own (many users' webhooks may share one host: Discord, Slack, Zapier, ngrok)."""
        return message.target

    def send(self, message: Message) -> Outcome:
        origin = _origin(message.target)
        where = f"the webhook {origin}" if origin else "the webhook"
        try:
            outcome = self._send(message, where)
        except Exception as exc:  # never raises: the outcome says what went wrong
            log.exception("webhook delivery %s: unexpected error", message.delivery_id)
            outcome = Outcome(FAILED, f"{where}: unexpected error ({type(exc).__name__})")
        outcome = Outcome(
            outcome.status, scrub(outcome.detail, [message.secret, message.target]), outcome.retry_after_s
        )
        return log_outcome(log, self.name, origin or "an invalid URL", outcome)

    def _send(self, message: Message, where: str) -> Outcome:
        problem = _url_problem(message.target)
        if problem:
            return Outcome(FAILED, f"invalid webhook URL: {problem}")
        try:
            body = encode_payload(message.payload)
        except (TypeError, ValueError) as exc:
            return Outcome(FAILED, f"the alert cannot be written as JSON ({type(exc).__name__})")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "uBot",
            "X-Ubot-Delivery": message.key,
        }
        if message.secret:
            headers["X-Ubot-Signature"] = sign(message.secret, int(self._clock()), body)
        sent = post_within(
            self._session,
            message.target,
            what=where,
            deadline_s=self.deadline_s,
            timeout_s=self.timeout_s,
            max_bytes=self.max_answer_bytes,
            data=body,
            headers=headers,
        )
        if isinstance(sent, Outcome):
            return sent
        response, answer = sent
        http = response.status_code
        reason = f"HTTP {http}" + (f" {one_line(response.reason, 60)}" if response.reason else "")
        if 300 <= http < 400:
            location = response.headers.get("Location")
            said = f"a redirect to {_shown_location(location)}" if location else f"a redirect ({reason})"
            return Outcome(FAILED, f"{where} answered {said} (redirects are not followed)")
        status = status_class(http)
        if status == SENT:
            return Outcome(SENT, f"{where} answered {reason}")
        said = _body_excerpt(response, answer)
        detail = f"{where} answered {reason}" + (f": {said}" if said else "")
        if status == RETRY:
            return Outcome(RETRY, detail, retry_after_s(response.headers.get("Retry-After"), self._clock()))
        return Outcome(FAILED, detail)


def encode_payload(payload: Mapping[str, Any]) -> bytes:
    """The body: compact JSON, sorted keys, UTF-8 (NaN and infinities, not JSON, become null)."""
    try:
        text = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(
            json_document(payload), separators=(",", ":"), sort_keys=True, ensure_ascii=False, allow_nan=False
        )
    return text.encode("utf-8")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Ubot-Signature`` value: ``t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>">``."""
    return f"t={timestamp},v1={_digest(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: int = TOLERANCE_S) -> bool:
    """What a receiver does (the reference for the snippets in docs/alerts.md): true when ``header``
    is a signature of ``body`` with ``secret`` made within ``tolerance_s`` of ``now``."""
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not stamp.isdigit() or abs(now - int(stamp)) > tolerance_s:
        return False
    return hmac.compare_digest(given, _digest(secret, int(stamp), body))


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    signed = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def checked_addresses(host: str, port: int) -> list[tuple[Any, ...]]:
    """``getaddrinfo`` for the host, refused as a whole if any address is denied by the outbound
    policy (:func:`ubot.outbound.refusal`)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for info in infos:
        address = address_of(str(info[4][0]))
        why = "not an IP address" if address is None else refusal(address)
        if why:
            said = host if host == str(address) else f"{host} ({address})"
            raise AddressRefused(
                f"refused to connect to {said}: {why}; webhooks may only reach public addresses"
            )
    return infos


# -- the guarded connection -----------------------------------------------------------------------


class _GuardedConnectionMixin:
    """Open the socket to checked addresses only (see the module docstring)."""

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        try:  # the lookup, bounded by the attempt's deadline: the host's DNS server may be slow
            infos = deadline.within(checked_addresses, self.host, self.port)
        except socket.gaierror as exc:
            raise urllib3.exceptions.NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        last: OSError | None = None
        for info in infos:
            ip = str(info[4][0])
            try:
                return urllib3.util.connection.create_connection(
                    (ip, self.port),
                    deadline.bound(self.timeout),
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as exc:
                last = exc
        if isinstance(last, TimeoutError | socket.timeout):
            raise urllib3.exceptions.ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from last
        raise urllib3.exceptions.NewConnectionError(
            self,  # type: ignore[arg-type]
            f"Failed to establish a new connection: {last}",
        ) from last


class _GuardedHTTPConnection(
    WatchedConnectionMixin, _GuardedConnectionMixin, urllib3.connection.HTTPConnection
):
    pass


class _GuardedHTTPSConnection(
    WatchedConnectionMixin, _GuardedConnectionMixin, urllib3.connection.HTTPSConnection
):
    pass


class _GuardedHTTPPool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class GuardedAdapter(WatchedAdapter):
    """A requests adapter whose connections refuse non-public addresses (and which has no proxy);
    they keep to the attempt's deadline too."""

    pool_classes: dict[str, type] = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise AddressRefused("a proxy is configured, and webhooks are not sent through proxies")


# -- helpers --------------------------------------------------------------------------------------


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "cannot be parsed"
    if parts.scheme not in DEFAULT_PORTS:
        return "only http and https URLs are allowed"
    if not parts.hostname:
        return "no host"
    if any(char.isspace() for char in url):
        return "contains whitespace"
    return None


def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port}"


def _shown_location(location: str) -> str:
    """Where a redirect points, without its query string."""
    parts = urlsplit(location)
    shown = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme else parts.path
    return one_line(shown, 120)


def _body_excerpt(response: requests.Response, body: bytes) -> str:
    """The start of a textual error body (``invalid signature``), else nothing."""
    kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if not body or not (kind.startswith("text/") or kind.endswith("json")):
        return ""
    if kind == "text/html":
        return ""
    return one_line(body.decode("utf-8", "replace"), 120)
