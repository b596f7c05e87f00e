"""``GET /v1/ws``: the event stream over a WebSocket, and snapshot updates for the symbols a client
subscribes to.

The same events as ``GET /v1/stream`` (:mod:`ubot.http.stream`), read the same way (one
:class:`~ubot.http.stream.Session` over the hub), under the same caps (the two routes share one
:class:`~ubot.stream.slots.StreamSlots`: a client's WebSockets and streams count together) and the
same authentication (``Authorization: Bearer``, or ``?access_token=``; never the session cookie, a
page of another site may open a WebSocket with it); a refusal closes the WebSocket with 3000 +
the HTTP status (3401, 3429, 3503). Resume with ``?last_event_id=`` (or ``Last-Event-ID``).

Each message is one JSON object (text), ``type`` first:

* ``{"type": "hello", "last_id": "<ms-seq>"}`` on a fresh connection (``last_id`` null on a resumed
  one): the position to resume from;
* ``{"type": "event", "id": "<ms-seq>", "event": "snapshot"|"alert"|"reset", "data": {...}}``: the
  stream's events, ``data`` as ``GET /v1/stream`` carries it;
* ``{"type": "heartbeat"}`` when nothing happened for ``[http] stream_heartbeat`` seconds (the token
  is checked again then: once revoked, the WebSocket closes with 3401);
* ``{"type": "subscribed", "symbols": [...]}`` answering a subscription, then
  ``{"type": "quotes", "etag": "...", "data": {...}}``: the latest snapshot of those symbols only (as
  ``GET /v1/snapshot?symbols=``), at once and after each ``snapshot`` event;
* ``{"type": "error", "description": "..."}`` for a message the server cannot take (the connection
  stays).

The client sends ``{"subscribe": ["BTC", "ETH"]}`` (at most :data:`MAX_SYMBOLS` symbols, each
1..20 characters; it replaces the previous subscription; ``[]`` ends it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Annotated, Any

import falcon
import falcon.asgi
import msgspec
from falcon.errors import WebSocketDisconnected

from ubot.http.api import operation
from ubot.http.gateway import Gateway, Unavailable
from ubot.http.shapes import StreamQuery
from ubot.http.stream import Session, StreamResource
from ubot.stream.hub import Batch
from ubot.users.shapes import field_of

log = logging.getLogger(__name__)

MAX_SYMBOLS = 100
#: The longest message a client may send, in bytes.
MAX_MESSAGE_BYTES = 4096
Symbol = Annotated[str, msgspec.Meta(min_length=1, max_length=20)]


class Subscribe(msgspec.Struct, forbid_unknown_fields=True):
    subscribe: Annotated[list[Symbol], msgspec.Meta(max_length=MAX_SYMBOLS)]


WS = operation(
    "The event stream and per-symbol snapshot updates over a WebSocket",
    {
        426: "this route is a WebSocket: connect with Upgrade: websocket (a plain GET or HEAD gets "
        "this answer)",
    },
    query=StreamQuery,
    description="Connect with a WebSocket (Upgrade: websocket). Messages are JSON objects: hello, "
    "event (the same events as GET /v1/stream, same ids), heartbeat, and after the client sends "
    '{"subscribe": ["BTC", ...]} the latest snapshot of those symbols (quotes) at once and after '
    "each snapshot event. Authentication: Authorization: Bearer, or ?access_token=; refusals close "
    "the WebSocket with 3000 + the HTTP status (3401, 3429, 3503). Resume with ?last_event_id=.",
)


class WebSocketResource:
    auth_optional = True
    token_param = "access_token"

    def __init__(self, stream: StreamResource, gateway: Gateway) -> None:
        self.stream = stream
        self.gateway = gateway

    @WS
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        raise falcon.HTTPError(
            falcon.HTTP_426,
            title="Upgrade required",
            description="GET /v1/ws is a WebSocket: connect with Upgrade: websocket "
            "(GET /v1/stream serves the same events as Server-Sent Events).",
            headers={"Upgrade": "websocket"},
        )

    async def on_websocket(self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket) -> None:
        stream = self.stream
        after, slot = stream.admit(req)
        user_id, token = req.context.user_id, req.context.token
        try:
            await ws.accept()
            await _Connection(self, ws, Session(stream, user_id, token)).run(after)
        except WebSocketDisconnected:
            pass
        except Exception:  # never let the server log the request line (it may carry a token)
            log.exception("WebSocket of user %s failed", user_id)
        finally:
            stream.slots.release(slot)


class _Connection:
    def __init__(self, resource: WebSocketResource, ws: falcon.asgi.WebSocket, session: Session) -> None:
        self.resource = resource
        self.ws = ws
        self.session = session
        self.symbols: tuple[str, ...] = ()
        self.gone = asyncio.Event()
        self.sending = asyncio.Lock()  # one message at a time, whichever task sends it

    async def run(self, after: Any) -> None:
        receiver = asyncio.ensure_future(self.receive())
        try:
            hub = self.resource.stream.hub
            assert hub is not None
            async for kind, value in self.session.feed(hub, after, self.gone):
                if kind == "head":
                    await self.send(
                        json.dumps({"type": "hello", "last_id": None if value is None else str(value)})
                    )
                elif kind == "batch":
                    await self.batch(value)
                else:
                    await self.send('{"type":"heartbeat"}')
        finally:
            receiver.cancel()
        if not self.gone.is_set():  # the hub closed (the server stops) or the token was revoked
            revoked = not self.resource.stream.hub.closed  # type: ignore[union-attr]
            await self.ws.close(3401 if revoked else 1001)

    async def batch(self, batch: Batch) -> None:
        if batch.reset:
            data = self.session.reset_data(batch.cursor)
            await self.send(f'{{"type":"event","id":"{batch.cursor}","event":"reset","data":{data}}}')
        for event in batch.events:
            await self.send(
                f'{{"type":"event","id":"{event.id}","event":"{event.event}","data":{event.data}}}'
            )
        if self.symbols and any(event.event == "snapshot" for event in batch.events):
            await self.quotes()

    async def receive(self) -> None:
        try:
            while True:
                message = await self.ws.receive_text()
                await self.take(message)
        except WebSocketDisconnected:
            pass
        except Exception:
            log.exception("WebSocket of user %s: a message failed", self.session.user_id)
            await self.ws.close(1011)  # internal error
        finally:
            self.gone.set()

    async def take(self, message: str) -> None:
        if len(message.encode()) > MAX_MESSAGE_BYTES:
            await self.error(f"A message may be at most {MAX_MESSAGE_BYTES} bytes; this one is longer.")
            return
        try:
            wanted = msgspec.json.decode(message, type=Subscribe)
        except msgspec.ValidationError as error:
            name, why = field_of(error, Subscribe)
            where = f"{name}: " if name else ""
            await self.error(
                f'{where}{why}; send {{"subscribe": ["BTC", ...]}} (at most {MAX_SYMBOLS} symbols).'
            )
            return
        except msgspec.DecodeError:
            await self.error('The message is not valid JSON; send {"subscribe": ["BTC", ...]}.')
            return
        self.symbols = tuple(dict.fromkeys(symbol.strip().upper() for symbol in wanted.subscribe))
        await self.send(json.dumps({"type": "subscribed", "symbols": list(self.symbols)}))
        if self.symbols:
            await self.quotes()

    async def quotes(self) -> None:
        symbols = self.symbols
        try:
            found = await self.resource.stream.offload(self.resource.gateway.snapshot, symbols)
        except Unavailable:
            await self.error("The latest snapshot is not available right now; it comes with the next one.")
            return
        if found is None:
            return  # no snapshot yet: the first snapshot event brings it
        body, etag = found
        await self.send(f'{{"type":"quotes","etag":{json.dumps(etag)},"data":{body.decode()}}}')

    async def error(self, description: str) -> None:
        await self.send(json.dumps({"type": "error", "description": description}))

    async def send(self, text: str) -> None:
        async with self.sending:
            await self.ws.send_text(text)
