"""A fake CoinMarketCap Pro API on 127.0.0.1: CMC's wire format, and every fault it can produce.

``FakeCmc`` is a small threaded HTTP/1.1 server (keep-alive, like CMC's) that answers
``/v1/cryptocurrency/listings/latest`` (with ``start``/``limit``/``convert`` paging),
``/v1/global-metrics/quotes/latest`` and ``/v1/key/info``. Success bodies are compact JSON generated
by the simulated market (gzip'ed when the client accepts it); error bodies are pretty-printed with
4 spaces and carry the five status fields, as CMC's do. The key header is checked like CMC does
(401/1002 when missing, 401/1001 when wrong).

The bodies CoinMarketCap documents are kept in ``tests/fixtures/cmc/`` (:func:`captured`,
:func:`captured_error`): ``/v1/key/info`` is served from that file (plan and usage set from the
fake's fields); listings, global metrics and error bodies are checked field by field against it
(``tests/market/test_cmc_fixtures.py``). A test can serve a captured body as is with
``Ok(captured(...))`` or ``captured_error(...)``.

Each endpoint has a queue of scripted behaviours (:meth:`FakeCmc.script`); an empty queue answers
with success. Every request is recorded (path, query, headers, client port) in :attr:`FakeCmc.seen`.
Slow answers wait on :attr:`FakeCmc.release`, set by :meth:`FakeCmc.stop`, so no test sleeps.

With ``step_ms`` the market's time moves on at each tick's listings call, so that successive ticks
of a running uBot are new snapshots rather than duplicates.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import math
import socket
import struct
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.fakes.serving import Serving
from ubot.market.coinmarketcap import GLOBAL_PATH, KEY_INFO_PATH, LISTINGS_PATH
from ubot.market.simulated import ACTIVE_CRYPTOCURRENCIES, UNIVERSE_SIZE, SimulatedSource
from ubot.market.snapshot import RawMarket
from ubot.timeutil import iso_from_ms, parse_iso_ms

T0_MS = parse_iso_ms("2026-11-24T08:31:00.000Z")
KEY = "c0ffee00-1bca-4e8e-9a24-22ff2c3d462c"
#: Ids of the coins past the simulated universe (served only by paged calls beyond 5000).
EXTRA_ID_BASE = 900_000
#: CoinMarketCap's bodies as documented (see the README there).
CAPTURED = Path(__file__).resolve().parent / "fixtures" / "cmc"

#: CMC's platform errors: code -> (HTTP status, verbatim message).
ERRORS: dict[int, tuple[int, str]] = {
    1001: (401, "This API Key is invalid."),
    1002: (401, "API key missing."),
    1003: (402, "Your API Key must be activated. Please go to pro.coinmarketcap.com/account/plan."),
    1004: (402, "Your API Key's subscription plan has expired."),
    1005: (403, "An API Key is required for this call."),
    1006: (403, "Your API Key subscription plan doesn't support this endpoint."),
    1007: (403, "This API Key has been disabled. Please contact support."),
    1008: (
        429,
        "You've exceeded your API Key's HTTP request rate limit. Rate limits reset every minute.",
    ),
    1009: (429, "You've exceeded your API Key's daily rate limit."),
    1010: (429, "You've exceeded your API Key's monthly rate limit."),
    1011: (429, "You've hit an IP rate limit."),
    400: (400, 'Invalid value for "convert": "XYZ"'),
    500: (500, "An internal server error occurred"),
}


# -- behaviours -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ok:
    """A success; ``doc`` as given, else generated. ``credit_count`` overrides the status's."""

    doc: Any = None
    credit_count: int | None = None


@dataclass(frozen=True)
class Error:
    """A CMC error body (pretty-printed, five status fields). HTTP status defaults from the code."""

    code: int
    http: int | None = None
    message: str | None = None
    retry_after: str | None = None


@dataclass(frozen=True)
class Slow:
    """Answer only once the test releases the server (beyond any short client timeout)."""


@dataclass(frozen=True)
class Reset:
    """Reset the connection (TCP RST) without answering."""


@dataclass(frozen=True)
class Close:
    """Close the connection without answering."""


@dataclass(frozen=True)
class Html:
    """An HTML error page, as a CDN or proxy sends."""

    http: int = 502
    title: str = "502 Bad Gateway"


@dataclass(frozen=True)
class Truncated:
    """A success whose body stops halfway through the announced Content-Length."""


@dataclass(frozen=True)
class TruncatedJson:
    """A success body cut in the middle of the JSON (Content-Length matches what is sent)."""


@dataclass(frozen=True)
class Raw:
    """Any body at all (wrong-shape JSON, invalid JSON...)."""

    body: str | bytes
    http: int = 200
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)


def captured(name: str) -> Any:
    """The captured body ``tests/fixtures/cmc/<name>.json``, parsed (a fresh copy each call)."""
    return json.loads((CAPTURED / f"{name}.json").read_text(encoding="utf-8"))


def captured_error(name: str) -> Raw:
    """The captured error body ``tests/fixtures/cmc/error_<HTTP>_<code>.json`` byte for byte, with
    the HTTP status its name gives (e.g. ``captured_error("error_429_1008")``)."""
    http = int(name.split("_")[1])
    return Raw((CAPTURED / f"{name}.json").read_bytes(), http=http)


def rate_limited(code: int = 1008, retry_after: str | int | None = None) -> Error:
    return Error(code, 429, retry_after=None if retry_after is None else str(retry_after))


@dataclass(frozen=True)
class Seen:
    """One request the fake received."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    peer_port: int


# -- the server -----------------------------------------------------------------------------------


@dataclass
class FakeCmc(Serving):
    api_key: str | None = KEY  # None: accept any key
    now_ms: int = T0_MS  # the market's time and status.timestamp
    seed: int = 42
    total_coins: int = ACTIVE_CRYPTOCURRENCIES  # coins CMC has: pages past this come back short
    plan_monthly: int = 10_000
    plan_minute: int = 30
    day_used: int = 12
    month_used: int = 345
    #: Each listings call that starts a tick (``start=1``) after the first moves :attr:`now_ms` on
    #: by this much, so consecutive ticks get new data (the n-th tick is served at T0 + n * step).
    step_ms: int = 0
    seen: list[Seen] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._queues: dict[str, deque[Any]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._ticks_served = 0

    # -- control ----------------------------------------------------------------------------------

    def start(self) -> FakeCmc:
        fake = self

        class Handler(_Handler):
            owner = fake

        # The documents of a tick of the default request made beforehand: the first tick's answer
        # comes as quickly as the next ones'.
        self.listings_doc()
        self.global_doc()
        self._serve(_Server(("127.0.0.1", 0), Handler))
        return self

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, path: str, *behaviours: Any) -> None:
        """Queue behaviours for ``path``; each request takes the next (success once empty)."""
        with self._lock:
            self._queues[path].extend(behaviours)

    def calls(self, path: str | None = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if path is None or s.path == path]

    # -- documents --------------------------------------------------------------------------------

    def listings_doc(self, start: int = 1, limit: int = 100, convert: str = "USD") -> dict[str, Any]:
        end = min(start + limit - 1, self.total_coins)
        base = _simulated(self.seed, min(end, UNIVERSE_SIZE), convert, self.now_ms).listings
        items = list(base["data"][start - 1 : end])
        for index in range(max(start - 1, UNIVERSE_SIZE), end):  # past the simulated universe
            model = base["data"][index % UNIVERSE_SIZE]
            items.append(
                {
                    **model,
                    "id": EXTRA_ID_BASE + index,
                    "name": f"Extra {index + 1}",
                    "symbol": f"XTR{index + 1}",
                    "slug": f"extra-{index + 1}",
                    "cmc_rank": index + 1,
                }
            )
        status = dict(base["status"])
        status["credit_count"] = max(1, math.ceil(len(items) / 200)) + len(convert.split(",")) - 1
        return {"status": status, "data": items}

    def global_doc(self, convert: str = "USD") -> dict[str, Any]:
        doc = _simulated(self.seed, 1, convert, self.now_ms).global_metrics
        assert doc is not None
        return dict(doc)

    def key_info_doc(self) -> dict[str, Any]:
        """The captured ``/v1/key/info`` body with this fake's plan, usage and time."""
        doc = captured("key_info")
        doc["status"]["timestamp"] = iso_from_ms(self.now_ms)
        plan, usage = doc["data"]["plan"], doc["data"]["usage"]
        plan["credit_limit_monthly"] = self.plan_monthly
        plan["credit_limit_monthly_reset"] = "In 6 days, 15 hours, 29 minutes"
        plan["credit_limit_monthly_reset_timestamp"] = "2026-12-01T00:00:00.000Z"
        plan["rate_limit_minute"] = self.plan_minute
        usage["current_minute"].update(requests_made=1, requests_left=self.plan_minute - 1)
        usage["current_day"]["credits_used"] = self.day_used  # credits_left: null (no daily limit)
        usage["current_month"].update(
            credits_used=self.month_used, credits_left=self.plan_monthly - self.month_used
        )
        return doc

    def _status(self, code: int, message: str | None, credit_count: int = 0) -> dict[str, Any]:
        return {
            "timestamp": iso_from_ms(self.now_ms),
            "error_code": code,
            "error_message": message,
            "elapsed": 0 if code else 9,
            "credit_count": credit_count,
            **({} if code else {"notice": None}),
        }

    def error_body(self, code: int, message: str | None = None) -> bytes:
        """CMC's error body: pretty-printed, 4 spaces, the five status fields, no data."""
        text = message or ERRORS.get(code, (code, f"error {code}"))[1]
        return json.dumps({"status": self._status(code, text)}, indent=4).encode()

    def _new_tick(self) -> None:
        with self._lock:
            if self._ticks_served:
                self.now_ms += self.step_ms
            self._ticks_served += 1

    def _next(self, path: str) -> Any:
        with self._lock:
            queue = self._queues[path]
            return queue.popleft() if queue else Ok()


@functools.lru_cache(maxsize=32)
def _simulated(seed: int, limit: int, convert: str, at_ms: int) -> RawMarket:
    """The simulated market (deterministic, so shared by every fake; callers must not mutate it)."""
    return _source(seed, limit, convert).documents(at_ms)


@functools.lru_cache(maxsize=8)
def _source(seed: int, limit: int, convert: str) -> SimulatedSource:
    """Made once per process: making one (its universe) costs ten times a document, more than a
    tick of one second may spend on CoinMarketCap when the machine is busy; ``documents`` is a
    function of the time alone."""
    return SimulatedSource(limit=limit, seed=seed, convert=convert)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out and leave are part of the script: no traceback."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as CMC
    disable_nagle_algorithm = True  # headers and body go out at once: no delayed-ACK stalls
    server_version = "cloudflare"
    sys_version = ""
    owner: FakeCmc

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        fake = self.owner
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        with fake._lock:
            fake.seen.append(Seen(url.path, query, dict(self.headers.items()), self.client_address[1]))
        key = self.headers.get("X-CMC_PRO_API_KEY")
        if fake.api_key is not None and key != fake.api_key:
            self._error(Error(1002 if not key else 1001))
            return
        if url.path not in (LISTINGS_PATH, GLOBAL_PATH, KEY_INFO_PATH):
            self._send(404, b'{"statusCode":404,"error":"Not Found","message":"Not Found"}')
            return
        if url.path == LISTINGS_PATH and query.get("start", "1") == "1":
            fake._new_tick()
        behaviour = fake._next(url.path)
        if isinstance(behaviour, Ok):
            self._ok(url.path, query, behaviour)
        elif isinstance(behaviour, Error):
            self._error(behaviour)
        elif isinstance(behaviour, Slow):
            fake.release.wait(30)
            with contextlib.suppress(OSError):  # the client gave up long ago
                self._ok(url.path, query, Ok())
        elif isinstance(behaviour, Reset):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif isinstance(behaviour, Close):
            self.close_connection = True
        elif isinstance(behaviour, Html):
            page = (
                f"<html>\r\n<head><title>{behaviour.title}</title></head>\r\n<body>\r\n"
                f"<center><h1>{behaviour.title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
                "</body>\r\n</html>\r\n"
            ).encode()
            self._send(behaviour.http, page, "text/html")
        elif isinstance(behaviour, Truncated):
            body = self._success_body(url.path, query, Ok())
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        elif isinstance(behaviour, TruncatedJson):
            body = self._success_body(url.path, query, Ok())
            self._send(200, body[: len(body) // 2])
        elif isinstance(behaviour, Raw):
            body = behaviour.body.encode() if isinstance(behaviour.body, str) else behaviour.body
            self._send(behaviour.http, body, behaviour.content_type, behaviour.headers)
        else:
            raise TypeError(f"unknown behaviour {behaviour!r}")

    def _success_body(self, path: str, query: dict[str, str], ok: Ok) -> bytes:
        fake = self.owner
        convert = query.get("convert", "USD")
        if ok.doc is not None:
            doc = ok.doc
        elif path == LISTINGS_PATH:
            doc = fake.listings_doc(int(query.get("start", 1)), int(query.get("limit", 100)), convert)
        elif path == GLOBAL_PATH:
            doc = fake.global_doc(convert)
        else:
            doc = fake.key_info_doc()
        if ok.credit_count is not None:
            doc = {**doc, "status": {**doc["status"], "credit_count": ok.credit_count}}
        return json.dumps(doc, separators=(",", ":")).encode()

    def _ok(self, path: str, query: dict[str, str], ok: Ok) -> None:
        body = self._success_body(path, query, ok)
        headers = {}
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._send(200, body, headers=headers)

    def _error(self, error: Error) -> None:
        http = error.http or ERRORS.get(error.code, (error.code, ""))[0]
        headers = {"Retry-After": error.retry_after} if error.retry_after is not None else {}
        self._send(http, self.owner.error_body(error.code, error.message), headers=headers)

    def _send(
        self,
        http: int,
        body: bytes,
        content_type: str = "application/json; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(http)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
