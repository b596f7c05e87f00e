"""What travels on the bus, declared once: msgspec Structs forming one tagged union, on the wire as
MessagePack (``{"type": <tag>, ...}``; bytes travel as bytes, not base64).

Messages carry ids and small values. Whatever must be kept is written to the database first and
read back from there by the receiver (the snapshot and its candles, strategies, alerts): a message
lost with Redis costs a delay, never data.

* :class:`TickReady` (topic ``ticks``, engine -> every scanner): snapshot ``snapshot_id`` is stored
  and candled; scan it. It names the live scanners (group ``scanners``) as the engine saw them when
  it published the tick, so every scanner splits that tick's strategies over the same list
  (rendezvous hashing): none is scanned twice or skipped for a tick, even while scanners come and go.
* :class:`StreamEvent` (topic ``events``, engine and notifiers -> every gateway): one event of
  ``GET /v1/stream``, ``snapshot`` (public) or ``alert`` (its user's only), its data already JSON
  text (the gateway copies it); the entry id is the event's SSE id.
* :class:`StrategiesChanged` (topic ``strategies``, whoever changed them -> every scanner): a user's
  strategies or settings changed; read them again from the database.
* :class:`SessionsRevoked` (topic ``sessions``, the gateway that ended them -> every gateway):
  sessions ended (logout, one session logged out by its id, log out everywhere, password change,
  the oldest beyond the limit): drop them from the session cache now (``ubot/users/sessions.py``).
  The database is written first.
* :class:`SnapshotDocument` (the latest value ``snapshot``, engine -> gateways): the served
  ``/v1/snapshot`` body and its ETag, for gateways that hold no state.

A new message type is one more Struct here, added to :data:`Message`. An entry a reader cannot
decode (malformed, or a type from a newer peer) is logged and skipped: :func:`decode` raises
:class:`MalformedMessage`, and the bus readers catch it.
"""

from __future__ import annotations

import msgspec

#: The topics and latest-value keys the roles use (the bus itself accepts any valid name).
TICKS = "ticks"
EVENTS = "events"
STRATEGIES = "strategies"
SNAPSHOT = "snapshot"
SCANNERS = "scanners"  # the membership group of the scanner role
SESSIONS = "sessions"


class TickReady(msgspec.Struct, frozen=True, tag="tick", tag_field="type"):
    number: int  # the engine's tick counter (1, 2, ... since it became active)
    snapshot_id: int
    snapshot_ms: int  # the snapshot's market time, epoch ms
    scheduled_ms: int  # the deadline the tick belongs to
    fired_ms: int  # when it fired
    scanners: tuple[str, ...] = ()  # members("scanners") when published, sorted


class StreamEvent(msgspec.Struct, frozen=True, tag="event", tag_field="type"):
    event: str  # "snapshot" | "alert"
    data: str  # one line of JSON text (ubot.stream.events)
    user_id: int | None = None  # None: public; else visible to that user only


class StrategiesChanged(msgspec.Struct, frozen=True, tag="strategies", tag_field="type"):
    user_id: int


class SessionsRevoked(msgspec.Struct, frozen=True, tag="sessions", tag_field="type"):
    user_id: int
    token_hash: str | None = None  # one session (its SHA-256, never the token); None: all the user's


class SnapshotDocument(msgspec.Struct, frozen=True, tag="snapshot", tag_field="type"):
    etag: str
    body: bytes  # the JSON document GET /v1/snapshot serves
    snapshot_id: int
    snapshot_ms: int


Message = TickReady | StreamEvent | StrategiesChanged | SessionsRevoked | SnapshotDocument

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


class MalformedMessage(ValueError):
    """Bytes on the bus that are no :data:`Message` (the text says why, with the field's path)."""


def encode(message: Message) -> bytes:
    if not isinstance(message, Message.__args__):  # type: ignore[attr-defined]
        raise TypeError(f"{type(message).__name__} is not a bus message (see ubot.bus.messages)")
    return _encoder.encode(message)


def decode(payload: bytes) -> Message:
    try:
        return _decoder.decode(payload)
    except msgspec.DecodeError as error:  # ValidationError is a DecodeError
        raise MalformedMessage(str(error)) from None
