"""gzip for JSON answers, when the client accepts it: a 5,000-coin snapshot is 3.1 MB, 0.7 MB gzipped.

Rules (one middleware, :class:`Compression`, after the protection middleware in ``create_app``):

* Only JSON bodies (``application/json``, ``*+json``) of at least :data:`MIN_BYTES`, only when
  ``Accept-Encoding`` allows gzip (``gzip`` or ``*`` with a non-zero ``q``), never the event stream
  (a ``resp.stream``, not a body) and never a body that already has a ``Content-Encoding``.
* ``Vary: Accept-Encoding`` on every JSON answer and every 304, compressed or not, so a shared cache
  keeps the two encodings apart.
* ETag: a compressed answer carries the weak form of the resource's ETag (``W/"..."``), as nginx
  does: the bytes differ from the identity answer's, the content does not. ``If-None-Match``
  compares weakly (RFC 9110, 13.1.2), so either form revalidates to 304; a 304 answers with the
  form the client holds.
* Answers with an ETag (the snapshot: the same bytes for everyone until the next tick) are
  compressed once and kept by ETag (:class:`GzipCache`); the others are compressed per request.
  The cache is filled by the first request that wants gzip after a tick, off the tick's path.
"""

from __future__ import annotations

import gzip
import threading
from collections import OrderedDict

import falcon

#: Smaller bodies are sent as they are: gzip saves a few hundred bytes at most.
MIN_BYTES = 1024
#: zlib's default level: a 5,000-coin snapshot (3.1 MB) in ~70 ms, once per tick, 4.5x smaller
#: (level 1: ~20 ms, 3.8x).
LEVEL = 6
#: Distinct ETag'd bodies kept gzipped (the full snapshot and a few ``?symbols=`` selections), and
#: the bytes they may hold (body and gzip): the oldest go first, the newest always stays.
CACHE_ENTRIES = 8
CACHE_BYTES = 8 * 2**20


def accepts_gzip(header: str | None) -> bool:
    """Whether an ``Accept-Encoding`` value allows gzip (RFC 9110, 12.5.3)."""
    if not header:
        return False
    named: float | None = None
    star: float | None = None
    for item in header.split(","):
        coding, *params = item.split(";")
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            named = quality if named is None else max(named, quality)
        elif coding == "*":
            star = quality
    chosen = named if named is not None else star
    return chosen is not None and chosen > 0  # also False for a nan q


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == falcon.MEDIA_JSON or media.endswith("+json")


def _weak(etag: str) -> str:
    return etag if etag.startswith("W/") else f"W/{etag}"


def _holds(header: str | None, tag: str) -> bool:
    """Whether ``If-None-Match`` lists exactly ``tag`` (strong or weak form as written)."""
    return bool(header) and tag in (part.strip() for part in header.split(","))  # type: ignore[union-attr]


class GzipCache:
    """The gzip of a few bodies, by ETag. The body is compared too (``is``, else ``==``: a
    memcmp), so two bodies that happen to share an ETag can never be served for each other."""

    def __init__(self, entries: int = CACHE_ENTRIES, max_bytes: int = CACHE_BYTES) -> None:
        self._entries = entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._kept: OrderedDict[str, tuple[bytes, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.compressions = 0  # for tests: how many times a body was actually compressed

    def gzip(self, etag: str, body: bytes) -> bytes:
        # Under the lock: the requests that arrive together after a tick wait for one compression
        # instead of each doing it.
        with self._lock:
            kept = self._kept.get(etag)
            if kept is not None and (kept[0] is body or kept[0] == body):
                self._kept.move_to_end(etag)
                return kept[1]
            packed = compress(body)
            self.compressions += 1
            if kept is not None:
                self._drop(etag)
            self._kept[etag] = (body, packed)
            self._bytes += len(body) + len(packed)
            while len(self._kept) > 1 and (len(self._kept) > self._entries or self._bytes > self._max_bytes):
                self._drop(next(iter(self._kept)))
            return packed

    def _drop(self, etag: str) -> None:
        body, packed = self._kept.pop(etag)
        self._bytes -= len(body) + len(packed)

    @property
    def held_bytes(self) -> int:
        return self._bytes


def compress(body: bytes) -> bytes:
    return gzip.compress(body, compresslevel=LEVEL, mtime=0)  # mtime 0: the same bytes every time


class Compression:
    def __init__(self, min_bytes: int = MIN_BYTES, cache: GzipCache | None = None) -> None:
        self.min_bytes = min_bytes
        self.cache = cache or GzipCache()

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        not_modified = resp.status_code == 304
        if (resp.stream is not None or getattr(resp, "sse", None) is not None) and not not_modified:
            return
        # Renders media, sets its content type (the WSGI method: synchronous on an ASGI response too).
        body = None if not_modified else falcon.Response.render_body(resp)
        if not (not_modified or _is_json(resp.content_type)):
            return
        resp.append_header("Vary", "Accept-Encoding")
        wanted = accepts_gzip(req.get_header("Accept-Encoding"))
        etag = resp.etag
        if not_modified:
            if wanted and etag and not _holds(req.get_header("If-None-Match"), etag):
                resp.etag = _weak(etag)  # the client holds the gzipped answer's weak ETag
            return
        if not wanted or resp.get_header("Content-Encoding") or not 200 <= resp.status_code < 300:
            return
        if body is None or len(body) < self.min_bytes:
            return
        packed = self.cache.gzip(etag, body) if etag else compress(body)
        resp.text = None
        resp.data = packed
        resp.set_header("Content-Encoding", "gzip")
        if etag:
            resp.etag = _weak(etag)
