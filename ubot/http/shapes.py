"""The HTTP-only shapes, declared once: query parameters, the market's answers, the error.

The gateway decodes every query string into its operation's query shape (an unknown parameter, a
repeated one or a malformed value is a 400 naming it), and ``/openapi.json`` is generated from these
classes and those of ``ubot/users/shapes.py``. The market answers are written by other code
(``market/view.py``, ``health.py``, ``stream/events.py``): their shapes here are what the document
promises, and the contract test checks the answers against it.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from ubot.bus import BusHealth
from ubot.heartbeat import RolesHealth
from ubot.market.candles import TIMEFRAMES
from ubot.market.snapshot import GLOBAL_FIELDS, GLOBAL_INT_FIELDS, INT_FIELDS, NUMERIC_FIELDS
from ubot.scan.messages import ScannerStats
from ubot.users.shapes import MAX_TIME_MS, Instant, Time, Timeframe

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_ALERTS = 500
DEFAULT_ALERTS = 50
MAX_ID = 2**62  # as the routes' int(max=...) converters: larger ids overflow the database
SYMBOLS_TEXT_MAX = 4096

__all__ = ["MAX_TIME_MS", "TIMEFRAMES"]

Id = Annotated[int, Meta(ge=1, le=MAX_ID)]
Number = float | None


def limit(maximum: int, default: int) -> Any:
    return Annotated[int, Meta(ge=1, le=maximum, description=f"at most this many (default {default})")]


class Error(Struct, omit_defaults=True):
    """Every error: a title, a description, and for a request field at fault its name (``field``)
    and, in a condition, the 1-based ``column``."""

    title: str
    description: str
    field: str | UnsetType = UNSET
    column: Annotated[int, Meta(ge=1)] | UnsetType = UNSET


# --- query parameters ----------------------------------------------------------------------


class Query(Struct, forbid_unknown_fields=True, kw_only=True):
    """No query parameters: any one is refused (a typo is not silently ignored)."""


class LinkQuery(Query):
    token: Annotated[
        str,
        Meta(pattern=r"^[A-Za-z0-9_-]{43}$", max_length=43, description="the token of the e-mail's link"),
    ]


class SnapshotQuery(Query):
    symbols: (
        Annotated[
            str,
            Meta(
                pattern=r"[^\s,]",
                max_length=SYMBOLS_TEXT_MAX,
                description="only these coins: a comma-separated list of symbols or CoinMarketCap ids",
            ),
        ]
        | UnsetType
    ) = UNSET


class RangeQuery(Query):
    start: Annotated[Instant, Meta(description="from this time on")] | UnsetType = UNSET
    end: Annotated[Instant, Meta(description="up to this time (not before start)")] | UnsetType = UNSET
    limit: limit(MAX_LIMIT, DEFAULT_LIMIT) = DEFAULT_LIMIT  # type: ignore[valid-type]


class CandlesQuery(RangeQuery):
    timeframe: Annotated[Timeframe, Meta(description="the candle size")] = "1h"


class OverlayQuery(CandlesQuery, kw_only=True):
    expression: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=500,
            description="a number in the condition language over the candles: price and indicators, "
            "e.g. sma(20) or bb_upper(20, 2)",
        ),
    ]


class AlertsQuery(Query):
    since: Annotated[Instant, Meta(description="only alerts fired at or after this time")] | UnsetType = UNSET
    before: (
        Annotated[Id, Meta(description="only alerts older than this one (its id): the next page")] | UnsetType
    ) = UNSET
    strategy: Annotated[Id, Meta(description="only this strategy's alerts")] | UnsetType = UNSET
    coin: Annotated[Id, Meta(description="only the alerts about this coin (its id)")] | UnsetType = UNSET
    limit: limit(MAX_ALERTS, DEFAULT_ALERTS) = DEFAULT_ALERTS  # type: ignore[valid-type]


class StreamQuery(Query):
    last_event_id: (
        Annotated[str, Meta(pattern=r"^[0-9]{1,20}(-[0-9]{1,20})?$", description="as Last-Event-ID")]
        | UnsetType
    ) = UNSET
    access_token: (
        Annotated[str, Meta(max_length=512, description="the bearer token, for EventSource")] | UnsetType
    ) = UNSET


def ms(value: datetime | int | UnsetType) -> int | None:
    """Epoch milliseconds of an :data:`Instant` query value; None when not given."""
    if value is UNSET:
        return None
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)


# --- the market's answers ------------------------------------------------------------------


def _numbers(names: tuple[str, ...], ints: frozenset[str]) -> list[tuple[str, Any]]:
    return [(name, int | None if name in ints else Number) for name in names]


Coin = msgspec.defstruct(
    "Coin",
    [("id", int), ("symbol", str), ("name", str), ("slug", str), *_numbers(NUMERIC_FIELDS, INT_FIELDS)]
    + [("last_updated", Time)],
    forbid_unknown_fields=True,
)
GlobalQuote = msgspec.defstruct(
    "GlobalQuote", [*_numbers(GLOBAL_FIELDS, GLOBAL_INT_FIELDS), ("last_updated", Time)]
)
GlobalPoint = msgspec.defstruct(
    "GlobalPoint", [("timestamp", Time), *_numbers(GLOBAL_FIELDS, GLOBAL_INT_FIELDS)]
)
QuotePoint = msgspec.defstruct("QuotePoint", [("timestamp", Time), *_numbers(NUMERIC_FIELDS, INT_FIELDS)])


class Snapshot(Struct):
    timestamp: Time
    convert: str
    coins: list[Coin]  # type: ignore[valid-type]
    global_: GlobalQuote | None = msgspec.field(name="global")  # type: ignore[valid-type]
    unknown_symbols: list[str] | UnsetType = UNSET


class Candle(Struct):
    open_time: Time
    open: Number
    high: Number
    low: Number
    close: Number


class Candles(Struct):
    id: int
    symbol: str
    timeframe: Timeframe
    candles: list[Candle]


class OverlayPoint(Struct):
    open_time: Time
    value: Annotated[Number, Meta(description="null where there is not enough history yet")]


class Overlay(Struct):
    id: int
    symbol: str
    timeframe: Timeframe
    expression: str
    points: Annotated[list[OverlayPoint], Meta(description="one per candle of the same query, ascending")]


class Quotes(Struct):
    id: int
    symbol: str
    quotes: list[QuotePoint]  # type: ignore[valid-type]


class GlobalHistory(Struct):
    global_: list[GlobalPoint] = msgspec.field(name="global")  # type: ignore[valid-type]


class ClockHealth(Struct):
    interval_s: float
    ticking: bool
    lateness_ms_p50: Number
    lateness_ms_p99: Number
    lateness_ms_max: Number
    missed_ticks: int


class Health(Struct):
    status: Literal["ok", "degraded", "starting"]
    source: str
    ticks: Annotated[int, Meta(ge=0)]
    last_snapshot_at: Time | None
    clock: ClockHealth | None
    last_tick_ms: dict[str, float]
    ticks_ok: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    ticks_skipped: Annotated[int, Meta(ge=0)] | UnsetType = UNSET
    source_status: Annotated[dict[str, Any], Meta(description="the source's own status")] | UnsetType = UNSET
    scanner: ScannerStats | UnsetType = UNSET
    reason: str | UnsetType = UNSET
    source_exhausted: bool | UnsetType = UNSET
    faults: (
        Annotated[
            dict[str, str],
            Meta(
                description="per stage, work beside the ticks that fails now (ohlc: writing the closed "
                "candles, kept for the next attempt); status degraded until it works again"
            ),
        ]
        | UnsetType
    ) = UNSET


class GatewayHealth(Struct):
    """``--role gateway``'s ``/health``: its bus, the engine's latest snapshot, and every scanner's
    and notifier's heartbeat (``ubot/heartbeat.py``)."""

    status: Literal["ok", "degraded", "starting"]
    role: Literal["gateway"]
    bus: BusHealth
    last_snapshot_at: Time | None
    roles: Annotated[RolesHealth | None, Meta(description="null while the bus is unreachable")]


class Delivery(Struct):
    channel: str
    status: Annotated[
        Literal["pending", "held", "sent", "failed", "capped", "cancelled"],
        Meta(
            description="capped: over an hourly cap, not sent; cancelled: its strategy was disabled or deleted"
        ),
    ]
    attempts: Annotated[int, Meta(ge=0)]
    detail: str | None
    sent_at: Time | None


class Alert(Struct):
    id: int
    strategy_id: Annotated[int | None, Meta(description="null once the strategy is deleted")]
    strategy_name: str
    coin_id: int
    symbol: str
    timeframe: Timeframe
    fired_at: Time
    values: dict[str, Number]
    text: str
    replayed: Annotated[bool, Meta(description="raised by a replay of recordings, not the live market")]
    deliveries: list[Delivery]


class Alerts(Struct):
    alerts: list[Alert]


@dataclasses.dataclass(frozen=True)
class BrowserSession:
    """A browser's login (``POST /v1/sessions/browser``): the session itself is in the HttpOnly
    cookie; the page sends ``csrf_token`` back in ``X-CSRF-Token`` (``ubot/http/browser.py``)."""

    csrf_token: str = dataclasses.field(repr=False)
    expires_at: Time


# --- /v1/stream's events (text/event-stream: not JSON, so checked by tests/http/test_stream.py) ---


class TopCoin(Struct):
    id: int
    symbol: str
    rank: int
    price: Number
    percent_change_24h: Number


class SnapshotEvent(Struct, forbid_unknown_fields=True):
    timestamp: Time
    coins: Annotated[int, Meta(ge=0)]
    top: list[TopCoin]
    etag: str | UnsetType = UNSET


class ResetEvent(Struct, forbid_unknown_fields=True):
    last_id: Annotated[str, Meta(pattern=r"^[0-9]{1,20}-[0-9]{1,20}$", description="the bus entry id")]
    refetch: list[str]


class AlertEvent(Struct, forbid_unknown_fields=True):
    """One alert, as the stream's ``alert`` event and each item of a webhook body's ``alerts`` have
    it (``notify/outbox.alert_document``)."""

    id: int
    strategy_id: int | None
    strategy_name: str
    coin_id: int
    symbol: str
    timeframe: Timeframe
    fired_at: Time
    fired_at_ms: int
    bar_open_ms: int | None
    condition: str
    values: dict[str, Number]
    subject: str
    text: str


class WebhookBody(Struct, forbid_unknown_fields=True):
    """The body of a webhook POST (``notify/outbox.batch_document``): a strategy's alerts of one tick,
    one message per destination, the most significant coin (by market cap rank) first."""

    delivery_id: Annotated[
        str,
        Meta(pattern=r"^[0-9a-f]{32}$", description="unique, the same on every retry (X-Ubot-Delivery)"),
    ]
    strategy_id: int | None
    strategy_name: str
    timeframe: Timeframe
    fired_at: Time
    skipped: Annotated[
        int,
        Meta(ge=0, description="alerts not sent to this webhook before this one: an hourly cap was reached"),
    ]
    alerts: Annotated[list[AlertEvent], Meta(min_length=1)]


class ChannelInfo(Struct):
    """A delivery channel this server has configured."""

    name: Annotated[str, Meta(description="webhook, telegram, sms, whatsapp or email")]
    setting: Annotated[str, Meta(description="the member of your settings that holds its target")]
    min_interval_s: Annotated[
        float, Meta(ge=0, description="the least time between two messages to one destination")
    ]
    verified_by: Annotated[
        str, Meta(description="how a destination proves it is yours (nothing else is sent to it before)")
    ] = ""


class Channels(Struct):
    channels: list[ChannelInfo]


class ChannelTest(Struct):
    """What the provider answered to a test message."""

    channel: str
    status: Annotated[Literal["sent", "retry", "failed"], Meta(description="retry: a fault that may pass")]
    detail: Annotated[str, Meta(description="the provider's answer, one line, without secrets")]


#: event name -> the shape of its ``data``.
EVENTS: dict[str, Any] = {"snapshot": SnapshotEvent, "alert": AlertEvent, "reset": ResetEvent}
