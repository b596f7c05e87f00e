"""``GET /v1/stream``: live events as Server-Sent Events (``text/event-stream``), read from the
:class:`~ubot.stream.hub.StreamHub`.

What a client receives, in this order:

* ``retry: <ms>`` (how long an ``EventSource`` waits before reconnecting) and, on a fresh
  connection, ``id: <ms>-<seq>``: the position to resume from should the connection drop before any
  event;
* events, each ``id: <ms>-<seq>`` (the bus's entry id, the same on every gateway) / ``event: <name>`` / ``data: <one line of JSON>`` and a blank line:
  ``snapshot`` (public, once per tick) and, for an authenticated client, its own ``alert`` events
  (never anyone else's); see :mod:`ubot.stream.events` for the data;
* ``: heartbeat`` comment lines when nothing happened for ``heartbeat_s`` seconds, so proxies keep
  the connection and the server notices clients that left;
* ``event: reset`` when the client asked to resume from an id the server no longer has (it fell out
  of the ring of recent events, or comes from before a restart): events were missed. Its ``id`` is
  the current position and its data names what to re-fetch::

      {"last_id": "1729036800000-3", "refetch": ["/v1/snapshot", "/v1/me/alerts"]}

Resuming: the ``Last-Event-ID`` header (sent by ``EventSource`` on reconnection), else the
``last_event_id`` query parameter (for the first request, where ``EventSource`` sets no header).
Ids are valid on any gateway process, after any restart, as long as the bus keeps the entry
(``ms-seq``; the plain numbers of earlier versions are unknown ids: a reset).
Without either the stream starts with the next event: open the stream first, then fetch the state.

Authentication is optional: ``Authorization: Bearer <token>``, or ``?access_token=<token>`` because
``EventSource`` cannot send headers. A token in a URL can end up in logs (proxies, browser history):
uBot never logs the query string of this route (gunicorn's access log is off), but prefer the header
where the client can send it. A token that is sent must be valid (401). It is checked again at every
heartbeat: once revoked or expired, the stream ends (and reconnecting gets the 401).

Each open stream holds one of gunicorn's threads, so at most ``max_streams`` are open at once (by
default half of the 8 threads, leaving the rest to the other requests); beyond, 503 with a
``Retry-After`` (``EventSource`` does not reconnect after an error status: the client decides).
Every stream ends when the hub closes, so a stopping server does not wait for them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Generator, Iterator

import falcon

from ubot.bus import EntryId
from ubot.http.api import operation
from ubot.http.gateway import NotEnabled, Unavailable
from ubot.http.shapes import StreamQuery
from ubot.stream.hub import UNKNOWN, Batch, StreamHub

log = logging.getLogger(__name__)

MEDIA_EVENT_STREAM = "text/event-stream"
DEFAULT_MAX_STREAMS = 4
DEFAULT_HEARTBEAT_S = 15.0
DEFAULT_RETRY_MS = 3000
HEARTBEAT = b": heartbeat\n\n"


def frame(event_id: EntryId, event: str, data: str) -> bytes:
    """One event in the SSE wire format (``data`` is one line: JSON has no raw newlines)."""
    return f"id: {event_id}\nevent: {event}\ndata: {data}\n\n".encode()


#: What GET (and HEAD) /v1/stream take and answer.
STREAM = operation(
    "Live events (Server-Sent Events): snapshot events, and your alert events",
    {
        200: ("the event stream", MEDIA_EVENT_STREAM),
        401: "the token sent is unknown, expired or revoked",
        503: "too many streams are open (with Retry-After), or the stream is not enabled",
    },
    query=StreamQuery,
    description="An endless response: ``snapshot`` events for everyone, ``alert`` events for an "
    "authenticated client (Authorization: Bearer, or ?access_token= for EventSource), "
    "``: heartbeat`` comments, ``event: reset`` when a resumed id is too old. Each event's data "
    "is one line of JSON: SnapshotEvent, AlertEvent or ResetEvent (components/schemas).",
    parameters=(
        {
            "name": "Last-Event-ID",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "resume after this event (an unknown id starts with a reset)",
        },
    ),
)


class StreamSlots:
    """A counter of open streams with a limit, safe across gunicorn's threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self._open >= self.limit:
                return False
            self._open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._open -= 1


class StreamResource:
    auth_optional = True
    token_param = "access_token"

    def __init__(
        self,
        hub: StreamHub | None,
        authenticate: Callable[[str], int | None] | None = None,
        *,
        max_streams: int = DEFAULT_MAX_STREAMS,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        retry_ms: int = DEFAULT_RETRY_MS,
    ) -> None:
        self.hub = hub
        self.authenticate = authenticate
        self.slots = StreamSlots(max_streams)
        self.heartbeat_s = heartbeat_s
        self.retry_ms = retry_ms

    @STREAM
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self.hub is None:
            raise NotEnabled("The event stream is not enabled in this process.")
        after = _resume_from(req)
        if not self.slots.acquire():
            raise falcon.HTTPServiceUnavailable(
                title="Too many streams",
                description=f"{self.slots.limit} event streams are open, the most this server allows; "
                "try again later",
                retry_after=10,
            )
        user_id, token = req.context.user_id, req.context.token
        session = _Session(self, user_id, token)
        resp.content_type = MEDIA_EVENT_STREAM
        resp.cache_control = ["no-cache"]
        resp.set_header("X-Accel-Buffering", "no")
        resp.stream = _Body(session.chunks(self.hub, after), self.slots.release)

    @STREAM
    def on_head(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The headers of a stream, without opening one (nor taking a slot)."""
        if self.hub is None:
            raise NotEnabled("The event stream is not enabled in this process.")
        resp.content_type = MEDIA_EVENT_STREAM
        resp.cache_control = ["no-cache"]


class _Session:
    """One client's stream: who it is, and whether its token still holds."""

    def __init__(self, resource: StreamResource, user_id: int | None, token: str | None) -> None:
        self.resource = resource
        self.user_id = user_id
        self.token = token

    def chunks(self, hub: StreamHub, after: EntryId | None) -> Generator[bytes, None, None]:
        heartbeat_s = self.resource.heartbeat_s
        head = f"retry: {self.resource.retry_ms}\n"
        if after is None:
            after = hub.last_id
            head += f"id: {after}\n"
        yield (head + "\n").encode()
        cursor = after
        try:
            while True:
                batch = hub.read(cursor, self.user_id, heartbeat_s)
                cursor = batch.cursor
                chunk = self._render(batch)
                if chunk:
                    yield chunk
                elif not batch.closed:
                    if not self._still_authorized():
                        return
                    yield HEARTBEAT
                if batch.closed:
                    return
        except Exception:  # never let gunicorn log the request line (it may carry a token)
            log.exception("event stream of user %s failed", self.user_id)

    def _render(self, batch: Batch) -> bytes:
        parts = [frame(e.id, e.event, e.data) for e in batch.events]
        if batch.reset:
            refetch = ["/v1/snapshot"] if self.user_id is None else ["/v1/snapshot", "/v1/me/alerts"]
            data = json.dumps({"last_id": str(batch.cursor), "refetch": refetch}, separators=(",", ":"))
            parts.insert(0, frame(batch.cursor, "reset", data))
        return b"".join(parts)

    def _still_authorized(self) -> bool:
        authenticate = self.resource.authenticate
        if self.token is None or authenticate is None:
            return True
        try:
            return authenticate(self.token) == self.user_id
        except Unavailable:
            return True  # the UserManager is busy or stopping: not a reason to drop the client


class _Body:
    """The response body: iterates the chunks; ``close()`` (called by the WSGI server when the
    response ends, or the client left) stops them and frees the stream's slot, once."""

    def __init__(self, chunks: Generator[bytes, None, None], release: Callable[[], None]) -> None:
        self._chunks = chunks
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        return self._chunks

    def close(self) -> None:
        try:
            self._chunks.close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def _resume_from(req: falcon.Request) -> EntryId | None:
    """The id to resume after: ``Last-Event-ID`` first (``EventSource`` sends the newest one when it
    reconnects), else ``?last_event_id=`` (its form is checked with the query: 400 otherwise). An id
    that is not a bus entry id (``ms-seq``) is unknown: the stream starts with a reset."""
    header = (req.get_header("Last-Event-ID") or "").strip()
    if header:
        return event_id(header)
    raw = req.get_param("last_event_id")
    if raw is None:
        return None
    return event_id(raw.strip())


def event_id(text: str) -> EntryId:
    """A client's event id; :data:`~ubot.stream.hub.UNKNOWN` (a reset) when it is none of ours."""
    try:
        return EntryId.parse(text)
    except ValueError:
        return UNKNOWN
