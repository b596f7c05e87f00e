"""The CoinMarketCap Pro API client: three GET endpoints, every fault sorted into one of four kinds.

:class:`CmcClient` speaks CMC's wire format (``shared/reference/coinmarketcap-api.md``) over one
``requests.Session`` (pooled keep-alive connection, explicit ``(connect, read)`` timeouts, the key
in the ``X-CMC_PRO_API_KEY`` header, never in a URL). Each call returns the decoded JSON document
or raises one of:

- :class:`CmcFatalError`: the configuration can never work (invalid, missing, disabled or unpaid
  key; a plan without the endpoint; a rejected parameter; a wrong base URL). The message names
  the problem and the setting to fix.
- :class:`CmcRateLimited`: HTTP 429 or error codes 1008-1011; ``resume_at`` says when the limit can
  have reset (``Retry-After`` when CMC sends it, else the end of the minute, day or month).
- :class:`CmcTransientError`: 5xx, connection failures, timeouts, after the retries the budget
  allowed.
- :class:`CmcBadResponse`: an answer that cannot be used (invalid or truncated JSON, an HTML page, a
  JSON document of the wrong shape, an unknown error code). Not retried: CMC has usually charged
  for it already, and the next tick comes soon.

``status.error_code`` is checked on every answer, HTTP 200 included. The API key never appears in
a log line, an exception message or a ``repr``: it lives only in the session's headers, and every
message built here is passed through :meth:`CmcClient._redact` in case a server echoes it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from ubot import metrics
from ubot.clocks import Clock, SystemClock
from ubot.logtext import printable
from ubot.market.credits import UsageTracker, pages
from ubot.retry_after import retry_after_s
from ubot.timeutil import iso_from_ms

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://pro-api.coinmarketcap.com"
#: CMC's sandbox: mock data, public test key ``b54bcf4d-1bca-4e8e-9a24-22ff2c3d462c``.
SANDBOX_BASE_URL = "https://sandbox-api.coinmarketcap.com"
LISTINGS_PATH = "/v1/cryptocurrency/listings/latest"
GLOBAL_PATH = "/v1/global-metrics/quotes/latest"
KEY_INFO_PATH = "/v1/key/info"

KEY_SETTING = "UBOT_COINMARKETCAP_API_KEY or [coinmarketcap] api_key"
PLAN_PAGE = "https://pro.coinmarketcap.com/account/plan"

#: Platform error codes that no retry can cure: what is wrong and what to do about it.
FATAL_CODES: Mapping[int, str] = {
    1001: f"CoinMarketCap says the API key is invalid; set a valid key in {KEY_SETTING}",
    1002: f"CoinMarketCap received no API key; set one in {KEY_SETTING}",
    1003: f"the API key's plan must be activated at {PLAN_PAGE}",
    1004: f"the API key's subscription plan has expired; renew it at {PLAN_PAGE}",
    1005: f"CoinMarketCap requires an API key for this call; set one in {KEY_SETTING}",
    1006: "the API key's plan does not include this endpoint; upgrade the plan at " + PLAN_PAGE,
    1007: f"the API key has been disabled by CoinMarketCap (contact their support); set another in {KEY_SETTING}",
}
#: Rate-limit error codes: the limit hit.
RATE_LIMIT_CODES: Mapping[int, str] = {
    1008: "minute request limit",
    1009: "daily credit limit",
    1010: "monthly credit limit",
    1011: "IP rate limit",
}
_ENDPOINT_NAMES = {LISTINGS_PATH: "listings", GLOBAL_PATH: "global metrics", KEY_INFO_PATH: "key info"}


class CmcError(Exception):
    """A CoinMarketCap call failed; ``str()`` is the message for the user (never holds the key)."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        http_status: int | None = None,
        error_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint
        self.http_status = http_status
        self.error_code = error_code


class CmcFatalError(CmcError):
    """The configuration can never work: stop and tell the user what to fix."""


class CmcRateLimited(CmcError):
    """A rate or credit limit was hit: make no call before ``resume_at`` (epoch seconds)."""

    def __init__(self, message: str, *, resume_at: float, limit: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.resume_at = resume_at
        self.limit = limit  # "minute request limit (1008)", "HTTP 429", ...


class CmcTransientError(CmcError):
    """A network or server fault that outlived the retries the tick's budget allowed."""

    attempts: int = 1


class CmcBadResponse(CmcError):
    """An answer that cannot be used: invalid JSON, HTML, truncated body, wrong shape."""


Sleeper = Callable[[float], None]


class CmcClient:
    """CoinMarketCap Pro API v1: ``listings``, ``global_metrics``, ``key_info``.

    Retries: transient faults (5xx, connection errors, timeouts) are retried with exponential
    backoff (``backoff_s``, doubled each time) up to ``max_attempts`` attempts, and only while the
    caller's ``deadline`` allows: a retry starts only when, after its backoff, at least
    ``min_attempt_s`` remain, and its timeouts are cut to what remains. The first attempt always
    runs, with the full timeouts.

    Why a small loop rather than urllib3's ``Retry``: ``Retry`` knows no deadline (it would happily
    retry into the next tick), sleeps with ``time.sleep`` (tests could not step time), decides from
    the HTTP status alone while CMC's verdict is in the body's ``status.error_code`` (a 429 may be a
    minute limit or a monthly one), and retries 429s, the retry storm CMC asks clients to avoid. So
    urllib3 is told not to retry at all (``Retry(0, read=False)``: each fault surfaces as it
    happened) and the loop here does it, with an injectable ``sleeper`` and ``clock``.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float | tuple[float, float] = (5.0, 10.0),
        clock: Clock | None = None,
        sleeper: Sleeper = time.sleep,
        max_attempts: int = 3,
        backoff_s: float = 1.0,
        min_attempt_s: float = 1.0,
        usage: UsageTracker | None = None,
    ) -> None:
        key = (api_key or "").strip()
        if not key:
            raise CmcFatalError(f"no CoinMarketCap API key: set {KEY_SETTING}")
        if not key.isascii() or not key.isprintable() or any(c.isspace() for c in key):
            raise CmcFatalError(
                f"the CoinMarketCap API key contains spaces or characters an HTTP header cannot "
                f"carry; check {KEY_SETTING}"
            )
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self._key = key
        self.base_url = base_url.rstrip("/")
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        self.timeout = (float(connect), float(read))
        self.clock = clock or SystemClock()
        self.sleeper = sleeper
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.min_attempt_s = min_attempt_s
        self.usage = usage
        session = requests.Session()
        for scheme in ("http://", "https://"):  # one keep-alive connection; urllib3 never retries
            session.mount(
                scheme, HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=Retry(0, read=False))
            )
        session.headers.update(
            {
                "Accept": "application/json",
                "Accept-Encoding": "deflate, gzip",
                "User-Agent": "uBot/0.1",
                "X-CMC_PRO_API_KEY": key,
            }
        )
        self._session = session

    def __repr__(self) -> str:
        return f"CmcClient(base_url={self.base_url!r}, api_key=***)"

    def close(self) -> None:
        self._session.close()

    # -- endpoints --------------------------------------------------------------------------------

    def listings(self, limit: int, convert: str = "USD", deadline: float | None = None) -> dict[str, Any]:
        """``/v1/cryptocurrency/listings/latest`` for the top ``limit`` coins, paged by 5000.

        Pages are merged into one listings document: the first page's ``status`` with the pages'
        ``credit_count`` summed, and their ``data`` joined (a coin that moved across a page
        boundary between two calls is kept once). Paging stops early when a page comes back short.
        """
        plan = pages(limit)
        docs: list[dict[str, Any]] = []
        for number, (start, size) in enumerate(plan, 1):
            what = "listings" if len(plan) == 1 else f"listings page {number} (start={start})"
            doc = self._get(
                LISTINGS_PATH, {"start": start, "limit": size, "convert": convert}, deadline, what
            )
            docs.append(doc)
            if len(doc["data"]) < size:
                break
        return merge_pages(docs)

    def global_metrics(self, convert: str = "USD", deadline: float | None = None) -> dict[str, Any]:
        """``/v1/global-metrics/quotes/latest``."""
        return self._get(GLOBAL_PATH, {"convert": convert}, deadline, "global metrics")

    def key_info(self, deadline: float | None = None) -> dict[str, Any]:
        """``/v1/key/info``: the plan and its usage (costs no credit). See ``credits.parse_key_info``."""
        return self._get(KEY_INFO_PATH, {}, deadline, "key info")

    # -- one call, with retries -------------------------------------------------------------------

    def _get(self, path: str, params: dict[str, Any], deadline: float | None, what: str) -> dict[str, Any]:
        attempt = 1
        timeout = self.timeout
        while True:
            try:
                doc = self._attempt(path, params, timeout, what)
            except CmcTransientError as exc:
                delay = self.backoff_s * 2 ** (attempt - 1)
                remaining = None if deadline is None else deadline - self.clock.now() - delay
                if attempt >= self.max_attempts or (remaining is not None and remaining < self.min_attempt_s):
                    if attempt > 1:
                        message = f"{exc} (gave up after {attempt} attempts)"
                        exc = CmcTransientError(
                            message,
                            endpoint=exc.endpoint,
                            http_status=exc.http_status,
                            error_code=exc.error_code,
                        )
                    exc.attempts = attempt
                    raise exc from None
                log.info("%s; retry %d in %.3g s", printable(exc), attempt, delay)
                self.sleeper(delay)
                attempt += 1
                if remaining is not None:
                    timeout = (min(self.timeout[0], remaining), min(self.timeout[1], remaining))
                continue
            credits = _credit_count(doc)
            metrics.COINMARKETCAP_CREDITS.inc(credits)
            if self.usage is not None and credits:
                self.usage.record(credits, self.clock.now())
            return doc

    def _attempt(
        self, path: str, params: dict[str, Any], timeout: tuple[float, float], what: str
    ) -> dict[str, Any]:
        url = self.base_url + path
        started = time.perf_counter()
        try:
            # No redirects: requests would resend our custom key header to wherever they lead.
            response = self._session.get(url, params=params, timeout=timeout, allow_redirects=False)
        except requests.exceptions.ConnectTimeout:
            raise self._error(
                CmcTransientError, f"{what}: could not connect within {timeout[0]:g} s (timed out)", path
            ) from None
        except requests.Timeout:
            raise self._error(
                CmcTransientError, f"{what}: no answer within {timeout[1]:g} s (timed out)", path
            ) from None
        except requests.exceptions.ChunkedEncodingError as exc:
            # The headers came, the body was cut short (connection closed or reset mid-body).
            raise self._error(CmcBadResponse, f"{what}: truncated body ({_broken(exc)})", path) from None
        except requests.ConnectionError as exc:
            raise self._error(CmcTransientError, f"{what}: {_connection_problem(exc)}", path) from None
        except requests.RequestException as exc:  # content decoding, invalid URL...
            raise self._error(
                CmcBadResponse, f"{what}: request failed ({type(exc).__name__})", path
            ) from None
        log.debug(
            "GET %s %s: HTTP %d, %d bytes in %.0f ms",
            path,
            params,
            response.status_code,
            len(response.content),
            1000 * (time.perf_counter() - started),
        )
        return self._classify(response, path, what)

    # -- classification ---------------------------------------------------------------------------

    def _classify(self, response: requests.Response, path: str, what: str) -> dict[str, Any]:
        http = response.status_code
        doc, problem = _decode(response)
        status = doc.get("status") if isinstance(doc, Mapping) else None
        code = status.get("error_code") if isinstance(status, Mapping) else None
        if isinstance(code, bool) or not isinstance(code, int):
            code = None
        cmc_message = status.get("error_message") if isinstance(status, Mapping) else None
        if code or http >= 300:
            self._raise_error(response, path, what, code or None, cmc_message, problem)
        if problem:
            raise self._error(CmcBadResponse, f"{what}: {problem} (HTTP {http})", path, http)
        shape = _shape_problem(doc, path)
        if shape:
            raise self._error(CmcBadResponse, f"{what}: {shape}", path, http)
        return doc  # type: ignore[return-value]

    def _raise_error(
        self,
        response: requests.Response,
        path: str,
        what: str,
        code: int | None,
        cmc_message: Any,
        problem: str | None,
    ) -> None:
        http = response.status_code
        said = f"{code}: {cmc_message}" if code and cmc_message else f"{code}" if code else ""
        detail = f"HTTP {http}" + (f", CoinMarketCap error {said}" if said else "")
        if problem and not said:
            detail += f", {problem}"
        kw = {"http_status": http, "error_code": code}
        if code in FATAL_CODES:
            raise self._error(CmcFatalError, f"{FATAL_CODES[code]} ({what}: {detail})", path, **kw)
        if code in RATE_LIMIT_CODES or http == 429 or code == 429:
            limit = f"{RATE_LIMIT_CODES[code]} ({code})" if code in RATE_LIMIT_CODES else "HTTP 429"
            resume_at = self._resume_at(code, response.headers.get("Retry-After"))
            raise self._error(
                CmcRateLimited,
                f"{what}: rate limited by CoinMarketCap, {limit}, until {_iso(resume_at)} ({detail})",
                path,
                resume_at=resume_at,
                limit=limit,
                **kw,
            )
        if http in (401, 403) or code in (401, 403):
            raise self._error(
                CmcFatalError,
                f"CoinMarketCap refused the API key or its plan ({what}: {detail}); check {KEY_SETTING} "
                f"and the plan at {PLAN_PAGE}",
                path,
                **kw,
            )
        if http == 402 or code == 402:
            raise self._error(
                CmcFatalError,
                f"the API key's plan needs payment at {PLAN_PAGE} ({what}: {detail})",
                path,
                **kw,
            )
        if http >= 500 or 500 <= (code or 0) < 600 or http == 408:
            raise self._error(CmcTransientError, f"{what}: server error ({detail})", path, **kw)
        if http == 400 or code == 400:
            raise self._error(
                CmcFatalError,
                f"CoinMarketCap rejected the request ({what}: {detail}); check [market] convert and limit",
                path,
                **kw,
            )
        if http == 404 or 300 <= http < 400:
            where = response.headers.get("Location")
            moved = f", redirected to {where}" if where else ""
            raise self._error(
                CmcFatalError,
                f"{self.base_url}{path} is not CoinMarketCap's API ({what}: {detail}{moved}); "
                "check [coinmarketcap] base_url",
                path,
                **kw,
            )
        raise self._error(CmcBadResponse, f"{what}: unexpected error ({detail})", path, **kw)

    def _resume_at(self, code: int | None, retry_after: str | None) -> float:
        """When a rate limit can have reset: ``Retry-After`` if sent (at least 1 s), else by code."""
        now = self.clock.now()
        waited = retry_after_s(retry_after, now)
        if waited is not None:
            return now + max(1.0, waited)
        if code == 1009:
            return next_utc_day(now)
        if code == 1010:
            return next_utc_month(now)
        return now + 60.0  # 1008 (limits reset every minute), 1011, a bare 429

    def _error(self, cls: type[CmcError], message: str, path: str, http_status: int | None = None, **kw: Any):
        return cls(
            self._redact(message), endpoint=_ENDPOINT_NAMES.get(path, path), http_status=http_status, **kw
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***")


# -- helpers --------------------------------------------------------------------------------------


def merge_pages(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One listings document from its pages (see :meth:`CmcClient.listings`)."""
    first = docs[0]
    if len(docs) == 1:
        return first
    status = dict(first["status"])
    status["credit_count"] = sum(_credit_count(doc) for doc in docs)
    data: list[Any] = []
    seen: set[Any] = set()
    for doc in docs:
        for item in doc["data"]:
            key = item.get("id") if isinstance(item, Mapping) else None
            if isinstance(key, int) and key in seen:
                continue
            seen.add(key)
            data.append(item)
    return {**first, "status": status, "data": data}


def next_utc_day(now: float) -> float:
    day = datetime.fromtimestamp(now, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return (day + timedelta(days=1)).timestamp()


def next_utc_month(now: float) -> float:
    when = datetime.fromtimestamp(now, tz=UTC)
    year, month = (when.year + 1, 1) if when.month == 12 else (when.year, when.month + 1)
    return datetime(year, month, 1, tzinfo=UTC).timestamp()


def _iso(epoch_s: float) -> str:
    return iso_from_ms(round(epoch_s * 1000))


def _credit_count(doc: Mapping[str, Any]) -> int:
    value = doc.get("status", {}).get("credit_count")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


_JSON = msgspec.json.Decoder()
_TITLE = re.compile(rb"<title[^>]*>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)


def _decode(response: requests.Response) -> tuple[Any, str | None]:
    """(JSON document or None, what is wrong with the body or None)."""
    body = response.content
    kind = response.headers.get("Content-Type", "")
    if not body.strip():
        return None, "empty body"
    if "html" in kind.lower() or body.lstrip()[:1] == b"<":
        title = _TITLE.search(body[:4096])
        named = f" titled {title.group(1)[:80].decode('utf-8', 'replace')!r}" if title else ""
        return None, f"expected JSON, got an HTML page{named}"
    try:
        return _JSON.decode(body), None  # C speed; the parser then reads it with typed Structs
    except msgspec.DecodeError:
        pass  # say precisely what is wrong, as the standard library's parser tells it
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"body is not UTF-8 (byte {exc.start})"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            return None, f"truncated JSON: the body ends after {len(body)} bytes in the middle of a value"
        return None, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"


def _shape_problem(doc: Any, path: str) -> str | None:
    """What is wrong with a successful answer's shape, or None."""
    if not isinstance(doc, Mapping):
        return f"expected a JSON object, got {_json_type(doc)}"
    status = doc.get("status")
    if not isinstance(status, Mapping):
        return "no 'status' object"
    if "data" not in doc:
        return "no 'data' in a successful answer"
    data = doc["data"]
    if path == LISTINGS_PATH and not isinstance(data, list):
        return f"'data' must be an array of coins, got {_json_type(data)}"
    if path != LISTINGS_PATH and not isinstance(data, Mapping):
        return f"'data' must be an object, got {_json_type(data)}"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "a number"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (args, ``reason``, ``__cause__``, ``__context__``)."""
    found: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(found) < 20:
        item = todo.pop(0)
        if any(item is seen for seen in found):
            continue
        found.append(item)
        for inner in (*item.args, getattr(item, "reason", None), item.__cause__, item.__context__):
            if isinstance(inner, BaseException):
                todo.append(inner)
    return found


def _connection_problem(exc: BaseException) -> str:
    names = {type(e).__name__ for e in _causes(exc)}
    text = " ".join(str(e) for e in _causes(exc))
    if "ReadTimeoutError" in names:
        return "timed out while reading the answer"
    if "RemoteDisconnected" in names or "without response" in text:
        return "the server closed the connection without answering"
    if "ConnectionResetError" in names or "reset by peer" in text:
        return "the connection was reset"
    if "ConnectionRefusedError" in names or "refused" in text:
        return "connection refused"
    if "NameResolutionError" in names or "resolve" in text:
        return "cannot resolve the host name"
    if "SSLError" in names:
        return "TLS handshake failed"
    return "connection failed (" + ", ".join(sorted(names - {"ConnectionError", "MaxRetryError"})) + ")"


def _broken(exc: BaseException) -> str:
    for cause in _causes(exc):
        if type(cause).__name__ == "IncompleteRead":
            return f"the connection closed after {cause.partial} bytes, {cause.expected} more were announced"
    if "ConnectionResetError" in {type(e).__name__ for e in _causes(exc)}:
        return "the connection was reset mid-body"
    return "the connection broke mid-body"
