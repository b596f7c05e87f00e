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
  the connection;
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

A stream is a coroutine on the gateway's event loop (Falcon's Server-Sent Events: ``resp.sse``, an
async generator of ``SSEvent``), waiting on the hub (:meth:`~ubot.stream.hub.StreamHub.read_async`):
it holds no thread, so thousands can be open. They are still counted
(:class:`~ubot.stream.slots.StreamCaps`, ``[http] stream_max*``): in all (2,000 by default; 503
beyond), per client address (as :mod:`ubot.http.clientaddr` finds it; an IPv6 address counts with
its /64) and per user (429 beyond), so one client cannot take every slot. Each refusal has a
``Retry-After`` and names its cap (``EventSource`` does not reconnect after an error status: the
client decides).

A stream's slot is free as soon as its client leaves: the server's ``http.disconnect`` sets the
request's client-left event (``ubot.http.asgi.GONE``), which the stream waits on beside the hub, so
it ends at once rather than at its next write. Every stream ends when the hub closes, so a stopping
server does not wait for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import falcon
import falcon.asgi

from ubot.bus import EntryId
from ubot.http.api import operation
from ubot.http.asgi import GONE, Offload
from ubot.http.clientaddr import client_address
from ubot.http.gateway import NotEnabled, Unavailable
from ubot.http.ratelimit import client_key
from ubot.http.shapes import StreamQuery
from ubot.stream.hub import UNKNOWN, Batch, Offloader, StreamHub, sse_frame
from ubot.stream.slots import PER_ADDRESS, PER_USER, Slot, StreamCaps, StreamSlots, TooManyStreams

log = logging.getLogger(__name__)

MEDIA_EVENT_STREAM = "text/event-stream"
DEFAULT_CAPS = StreamCaps()
DEFAULT_HEARTBEAT_S = 15.0
DEFAULT_RETRY_MS = 3000
HEARTBEAT = b": heartbeat\n\n"
#: ``Retry-After`` of a refused stream, in seconds.
RETRY_AFTER_S = 10


class Frames(falcon.asgi.SSEvent):
    """Events already in the wire format, as Falcon's SSE writes them: what one read of the hub
    found goes out in one write (``id`` first, as before; ``SSEvent`` alone writes ``event`` first)."""

    def __init__(self, wire: bytes) -> None:
        super().__init__()
        self.wire = wire

    def serialize(self, handler: object = None) -> bytes:
        return self.wire


#: What GET (and HEAD) /v1/stream take and answer.
STREAM = operation(
    "Live events (Server-Sent Events): snapshot events, and your alert events",
    {
        200: ("the event stream", MEDIA_EVENT_STREAM),
        401: "the token sent is unknown, expired or revoked",
        429: "too many streams are open from your client address (``[http] stream_max_per_address``) "
        "or for your account (``[http] stream_max_per_user``), with Retry-After; or over the rate limit",
        503: "too many streams are open on this server (``[http] stream_max``, with Retry-After), or the "
        "stream is not enabled",
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


class StreamResource:
    auth_optional = True
    token_param = "access_token"

    def __init__(
        self,
        hub: StreamHub | None,
        authenticate: Callable[[str], int | None] | None = None,
        *,
        caps: StreamCaps = DEFAULT_CAPS,
        heartbeat_s: float = DEFAULT_HEARTBEAT_S,
        retry_ms: int = DEFAULT_RETRY_MS,
        now: Callable[[], float] = time.monotonic,
        offload: Offload | None = None,
        slots: StreamSlots | None = None,
    ) -> None:
        """``offload``: where blocking calls run (the token check at each heartbeat, a catch-up from
        the bus); ``asyncio.to_thread`` without one."""
        self.hub = hub
        self.authenticate = authenticate
        self.slots = slots or StreamSlots(caps)  # shared with GET /v1/ws (ubot/http/ws.py)
        self.heartbeat_s = heartbeat_s
        self.retry_ms = retry_ms
        self.now = now
        self.offload: Offloader = offload or asyncio.to_thread

    def admit(self, req: falcon.asgi.Request) -> tuple[EntryId | None, Slot]:
        """Where the client resumes from, and its slot (or the refusal: 503 not enabled, 429, 503);
        for this route and ``GET /v1/ws`` alike."""
        if self.hub is None:
            raise NotEnabled("The event stream is not enabled in this process.")
        after = resume_from(req)
        try:
            return after, self.slots.acquire(client_key(client_address(req)), req.context.user_id)
        except TooManyStreams as refused:
            raise refusal(refused) from None

    @STREAM
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        after, slot = self.admit(req)
        session = Session(self, req.context.user_id, req.context.token)
        resp.content_type = MEDIA_EVENT_STREAM
        resp.cache_control = ["no-cache"]
        resp.set_header("X-Accel-Buffering", "no")
        gone = req.scope.get(GONE) or asyncio.Event()
        resp.sse = session.events(self.hub, after, gone, lambda: self.slots.release(slot))

    @STREAM
    async def on_head(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        """The headers of a stream, without opening one (nor taking a slot)."""
        if self.hub is None:
            raise NotEnabled("The event stream is not enabled in this process.")
        resp.content_type = MEDIA_EVENT_STREAM
        resp.cache_control = ["no-cache"]


def refusal(refused: TooManyStreams) -> falcon.HTTPError:
    """The answer to a stream refused for want of a slot: 429 when the client's own streams fill its
    cap, 503 when the server's are all taken; each says which cap and how many."""
    if refused.cap == PER_USER:
        return falcon.HTTPTooManyRequests(
            title="Too many streams for this account",
            description=f"{_are_open(refused.limit)} for your account, the most this server "
            f"allows per user; close one, or retry in {RETRY_AFTER_S} s",
            retry_after=RETRY_AFTER_S,
        )
    if refused.cap == PER_ADDRESS:
        return falcon.HTTPTooManyRequests(
            title="Too many streams from this address",
            description=f"{_are_open(refused.limit)} from your address, the most this server "
            f"allows per client address; close one, or retry in {RETRY_AFTER_S} s",
            retry_after=RETRY_AFTER_S,
        )
    return falcon.HTTPServiceUnavailable(
        title="Too many streams",
        description=f"{_are_open(refused.limit)}, the most this server allows; retry in {RETRY_AFTER_S} s",
        retry_after=RETRY_AFTER_S,
    )


def _are_open(count: int) -> str:
    return "1 event stream is open" if count == 1 else f"{count} event streams are open"


class Session:
    """One client's stream: who it is, and whether its token still holds."""

    def __init__(self, resource: StreamResource, user_id: int | None, token: str | None) -> None:
        self.resource = resource
        self.user_id = user_id
        self.token = token

    async def feed(
        self, hub: StreamHub, after: EntryId | None, gone: asyncio.Event
    ) -> AsyncGenerator[tuple[str, Any], None]:
        """What the client is sent, whatever the transport: ``("head", id or None)`` first (the
        position a fresh client starts from; None when it resumes), then ``("batch", Batch)``
        for events (or a reset) and ``("heartbeat", None)`` when nothing happened for
        ``heartbeat_s``. It ends when the hub closes, the token no longer holds, or ``gone`` is set
        (the client left)."""
        resource = self.resource
        heartbeat_s, now, offload = resource.heartbeat_s, resource.now, resource.offload
        fresh = after is None
        if after is None:
            after = await offload(lambda: hub.last_id)  # the bus's own newest id (a round trip)
        yield "head", after if fresh else None
        cursor = after
        wrote = now()
        left = asyncio.ensure_future(gone.wait())  # one task for the stream's life, not one a read
        try:
            while not gone.is_set():
                wait = max(0.0, wrote + heartbeat_s - now())
                batch = await hub.read_async(cursor, self.user_id, wait, also=left, offload=offload)
                cursor = batch.cursor
                found = bool(batch.events) or batch.reset
                if found:
                    yield "batch", batch
                    wrote = now()
                if batch.closed or gone.is_set():
                    return
                if not found and now() - wrote >= heartbeat_s:
                    if not await offload(self._still_authorized):
                        return
                    yield "heartbeat", None
                    wrote = now()
        finally:
            left.cancel()

    async def events(
        self, hub: StreamHub, after: EntryId | None, gone: asyncio.Event, release: Callable[[], None]
    ) -> AsyncGenerator[falcon.asgi.SSEvent, None]:
        """The stream's Server-Sent Events (:meth:`feed` in the SSE wire format); ``release`` is
        called once, however it ends."""
        try:
            async for kind, value in self.feed(hub, after, gone):
                if kind == "head":
                    head = f"retry: {self.resource.retry_ms}\n" + ("" if value is None else f"id: {value}\n")
                    yield Frames((head + "\n").encode())
                elif kind == "batch":
                    yield Frames(self._render(value))
                else:
                    yield Frames(HEARTBEAT)
        except Exception:  # never let the server log the request line (it may carry a token)
            log.exception("event stream of user %s failed", self.user_id)
        finally:
            release()

    def reset_data(self, cursor: EntryId) -> str:
        refetch = ["/v1/snapshot"] if self.user_id is None else ["/v1/snapshot", "/v1/me/alerts"]
        return json.dumps({"last_id": str(cursor), "refetch": refetch}, separators=(",", ":"))

    def _render(self, batch: Batch) -> bytes:
        """The batch's frames: each event's own (:attr:`~ubot.stream.hub.Event.sse`, encoded once
        for every stream), after a reset's when there is one."""
        if len(batch.events) == 1 and not batch.reset:
            return batch.events[0].sse
        parts = [e.sse for e in batch.events]
        if batch.reset:
            parts.insert(0, sse_frame(batch.cursor, "reset", self.reset_data(batch.cursor)))
        return b"".join(parts)

    def _still_authorized(self) -> bool:
        authenticate = self.resource.authenticate
        if self.token is None or authenticate is None:
            return True
        try:
            return authenticate(self.token) == self.user_id
        except Unavailable:
            return True  # the UserManager is busy or stopping: not a reason to drop the client


def resume_from(req: falcon.Request) -> EntryId | None:
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
