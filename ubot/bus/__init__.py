"""What crosses processes: one interface (:class:`Bus`), an in-process implementation
(:class:`InProcessBus`, role ``all``) and a Redis Streams one (:class:`RedisBus`, the other roles).

- :mod:`ubot.bus.base`: the interface, the typed layer (encode, decode, skip what cannot be
  decoded), :class:`Subscription` (a reader's cursor), the errors and the health view.
- :mod:`ubot.bus.messages`: the messages (msgspec Structs, one tagged union, MessagePack on the
  wire) and the topic names.
- :mod:`ubot.bus.ids`: entry ids (``ms-seq``, Redis' order) and the rule for missed entries.
- :mod:`ubot.bus.memory`, :mod:`ubot.bus.redis_streams`: the two implementations.
- :mod:`ubot.bus.relay`: :class:`Relay`, a thread that follows a topic and hands each batch to a
  callback (the reading loop of every role).

Nothing kept travels only on the bus: the database is written first, messages carry ids and small
values, and a reader that missed entries (trimmed, Redis restarted) catches up from the database.
"""

from ubot.bus.base import Batch, Bus, BusClosed, BusHealth, BusUnavailable, Entry, Subscription
from ubot.bus.ids import ZERO, EntryId
from ubot.bus.memory import InProcessBus
from ubot.bus.messages import (
    EVENTS,
    SCANNERS,
    SESSIONS,
    SNAPSHOT,
    STRATEGIES,
    TICKS,
    MalformedMessage,
    Message,
    SessionsRevoked,
    SnapshotDocument,
    StrategiesChanged,
    StreamEvent,
    TickReady,
)
from ubot.bus.relay import Relay

__all__ = [
    "EVENTS",
    "SCANNERS",
    "SESSIONS",
    "SNAPSHOT",
    "STRATEGIES",
    "TICKS",
    "ZERO",
    "Batch",
    "Bus",
    "BusClosed",
    "BusHealth",
    "BusUnavailable",
    "Entry",
    "EntryId",
    "InProcessBus",
    "MalformedMessage",
    "Message",
    "Relay",
    "SessionsRevoked",
    "SnapshotDocument",
    "StrategiesChanged",
    "StreamEvent",
    "Subscription",
    "TickReady",
]
