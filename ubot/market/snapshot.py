"""One market snapshot: CoinMarketCap's listings (+ global metrics) parsed into immutable columns.

Sources hand the Fetcher *raw* documents in CoinMarketCap's own shapes (:class:`RawMarket`: the
bytes as received, or JSON values); this module turns them into a :class:`Snapshot`, the value every
later stage receives. The wire format is declared once, as msgspec Structs (:class:`CmcListings`):
msgspec decodes a whole response straight into them in one pass in C, and the columns are taken
from there. (The simulated market computes its columns itself and hands the Snapshot directly;
tests check that it equals parsing its documents.) Coins are stored
column-wise (one read-only numpy array per numeric field, ``NaN`` for CMC's nulls) so candle maths
and, later, strategy evaluation run over all coins at once.

Parsing is strict about what uBot cannot do without and lenient about what CMC documents as
nullable: a coin missing an essential field (id, symbol, name, price) is dropped and counted; an
optional field of the wrong type becomes null and is counted too; a response that is not a listings
response at all raises :class:`MarketDataError` with a message naming the problem.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from operator import attrgetter, methodcaller
from types import MappingProxyType
from typing import Annotated, Any

import msgspec
import numpy as np

from ubot.timeutil import parse_iso_ms

#: Numeric fields of a coin's ``quote.<CONVERT>`` block that uBot keeps, in storage order.
QUOTE_FIELDS: tuple[str, ...] = (
    "price",
    "volume_24h",
    "volume_change_24h",
    "percent_change_1h",
    "percent_change_24h",
    "percent_change_7d",
    "percent_change_30d",
    "percent_change_60d",
    "percent_change_90d",
    "market_cap",
    "market_cap_dominance",
    "fully_diluted_market_cap",
)
#: Numeric fields at the top level of a listing item.
SUPPLY_FIELDS: tuple[str, ...] = (
    "circulating_supply",
    "total_supply",
    "max_supply",
    "num_market_pairs",
)
#: Every numeric column of a snapshot (``rank`` is CMC's ``cmc_rank``).
NUMERIC_FIELDS: tuple[str, ...] = ("rank", *QUOTE_FIELDS, *SUPPLY_FIELDS)
#: Numeric coin fields that are counts: integers in CMC's JSON (and ours), floats in the columns.
INT_FIELDS: frozenset[str] = frozenset({"rank", "num_market_pairs"})

#: Global metrics kept from ``/v1/global-metrics/quotes/latest`` (top level of ``data``).
GLOBAL_TOP_FIELDS: tuple[str, ...] = (
    "btc_dominance",
    "eth_dominance",
    "active_cryptocurrencies",
    "total_cryptocurrencies",
    "active_market_pairs",
    "active_exchanges",
    "total_exchanges",
)
#: Global metrics kept from ``data.quote.<CONVERT>``.
GLOBAL_QUOTE_FIELDS: tuple[str, ...] = (
    "total_market_cap",
    "total_volume_24h",
    "altcoin_market_cap",
    "altcoin_volume_24h",
    "defi_market_cap",
    "defi_volume_24h",
    "stablecoin_market_cap",
    "stablecoin_volume_24h",
    "derivatives_volume_24h",
)
GLOBAL_FIELDS: tuple[str, ...] = GLOBAL_TOP_FIELDS + GLOBAL_QUOTE_FIELDS
#: Global metrics that are counts: integers in CMC's JSON (and ours), floats in :class:`GlobalMetrics`.
GLOBAL_INT_FIELDS: frozenset[str] = frozenset(
    {
        "active_cryptocurrencies",
        "total_cryptocurrencies",
        "active_market_pairs",
        "active_exchanges",
        "total_exchanges",
    }
)


class MarketDataError(ValueError):
    """A response that cannot be used at all (wrong shape, CMC error status, bad timestamp)."""


@dataclass(frozen=True)
class RawMarket:
    """What a source returns per tick: CMC documents exactly as received (bytes) or decoded (JSON
    values); or, from a source that computes the market itself, the :class:`Snapshot` already."""

    listings: Any = None
    global_metrics: Any = None
    snapshot: Snapshot | None = None
    #: For replays: (position, total) of this item, to drive the progress display.
    position: tuple[int, int] | None = None
    #: Where it came from (a replay file name), for log lines.
    origin: str = ""


@dataclass(frozen=True)
class GlobalMetrics:
    timestamp_ms: int
    values: Mapping[str, float | None]


@dataclass(frozen=True, eq=False)
class Snapshot:
    """The market at one instant. Columns are aligned: index ``i`` is the same coin everywhere."""

    timestamp_ms: int
    convert: str
    ids: np.ndarray  # int64, CMC ids
    symbols: tuple[str, ...]
    names: tuple[str, ...]
    slugs: tuple[str, ...]
    quote_ts_ms: np.ndarray  # int64, each quote's own last_updated (else status.timestamp)
    columns: Mapping[str, np.ndarray]  # NUMERIC_FIELDS -> float64, NaN where CMC sent null
    global_metrics: GlobalMetrics | None = None
    #: Coins dropped while parsing, and optional fields nulled because of a wrong type.
    dropped: int = 0
    nulled: int = 0
    warnings: tuple[str, ...] = field(default=(), repr=False)

    def __len__(self) -> int:
        return len(self.symbols)

    def column(self, name: str) -> np.ndarray:
        return self.columns[name]

    @classmethod
    def of(cls, columns: Mapping[str, np.ndarray], nones: int | None = None, **fields: Any) -> Snapshot:
        """A snapshot of freshly built arrays, made read-only. The infinities in ``columns`` become
        NaN and are counted in ``nulled``; so are NaN beyond the ``nones`` nulls of the data, when
        ``nones`` is given (else every NaN is a null of the data)."""
        nulled = fields.pop("nulled", 0)
        frozen = {}
        for name in NUMERIC_FIELDS:
            column = np.ascontiguousarray(columns[name], dtype=np.float64)
            if nones is not None:
                nulled += int(np.isnan(column).sum())
            infinite = np.isinf(column)
            if infinite.any():
                nulled += int(infinite.sum())
                column[infinite] = np.nan
            column.flags.writeable = False
            frozen[name] = column
        nulled -= nones or 0
        for name in ("ids", "quote_ts_ms"):
            fields[name].flags.writeable = False
        return cls(columns=MappingProxyType(frozen), nulled=nulled, **fields)


def _number(value: Any) -> float | None:
    """A JSON number as float; ``None`` for null; raises ``TypeError`` for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError
    result = float(value)
    if not math.isfinite(result):
        raise TypeError
    return result


# -- the wire format, as typed Structs (see /v1/cryptocurrency/listings/latest) -----------------
# Only the fields a snapshot keeps are declared; msgspec skips the others while decoding. A document
# that does not fit (an essential field missing or of the wrong type, an optional one of the wrong
# type) falls back to a per-coin path that says precisely what was wrong (see parse_listings).

Number = float | None  # msgspec's float accepts JSON integers too


class CmcStatus(msgspec.Struct):
    timestamp: str
    error_code: int | None = 0
    error_message: str | None = None


class CmcQuote(msgspec.Struct, gc=False):
    price: Annotated[float, msgspec.Meta(ge=0)]
    volume_24h: Number = None
    volume_change_24h: Number = None
    percent_change_1h: Number = None
    percent_change_24h: Number = None
    percent_change_7d: Number = None
    percent_change_30d: Number = None
    percent_change_60d: Number = None
    percent_change_90d: Number = None
    market_cap: Number = None
    market_cap_dominance: Number = None
    fully_diluted_market_cap: Number = None
    last_updated: str | None = None


class CmcListing(msgspec.Struct, gc=False):
    id: Annotated[int, msgspec.Meta(gt=0)]
    symbol: Annotated[str, msgspec.Meta(pattern=r"\S")]
    name: str
    quote: dict[str, CmcQuote]
    slug: str | None = None
    cmc_rank: Number = None
    circulating_supply: Number = None
    total_supply: Number = None
    max_supply: Number = None
    num_market_pairs: Number = None
    last_updated: str | None = None


class CmcListings(msgspec.Struct):
    status: CmcStatus
    data: list[CmcListing]


_LISTINGS = msgspec.json.Decoder(CmcListings)
_ITEM_NUMBERS = attrgetter("cmc_rank", *SUPPLY_FIELDS)
_QUOTE_NUMBERS = attrgetter(*QUOTE_FIELDS)
_COUNT_NONE = methodcaller("count", None)
_ANY = msgspec.json.Decoder()
assert tuple(f for f in CmcQuote.__struct_fields__ if f != "last_updated") == QUOTE_FIELDS
assert set(SUPPLY_FIELDS) <= set(CmcListing.__struct_fields__)


def check_status(doc: Any, what: str) -> Mapping[str, Any]:
    """Validate a CMC response's envelope; return its ``status``. Raises :class:`MarketDataError`."""
    if not isinstance(doc, Mapping):
        raise MarketDataError(f"{what}: expected a JSON object, got {type(doc).__name__}")
    status = doc.get("status")
    if not isinstance(status, Mapping):
        raise MarketDataError(f"{what}: missing 'status' object")
    code = status.get("error_code")
    if code not in (0, None):
        message = status.get("error_message") or "no message"
        raise MarketDataError(f"{what}: CoinMarketCap error {code}: {message}")
    return status


def _timestamp(status: Mapping[str, Any], what: str) -> int:
    try:
        return parse_iso_ms(status.get("timestamp"))
    except (ValueError, TypeError):
        raise MarketDataError(
            f"{what}: status.timestamp is not an ISO-8601 time: {status.get('timestamp')!r}"
        ) from None


def decode_json(doc: Any, what: str) -> Any:
    """``doc`` as JSON values: bytes are decoded, anything else is already JSON values."""
    if isinstance(doc, bytes | bytearray | memoryview):
        try:
            return _ANY.decode(doc)
        except msgspec.DecodeError as exc:
            raise MarketDataError(f"{what}: not JSON: {exc}") from None
    return doc


def parse_listings(doc: Any, convert: str = "USD", global_doc: Any = None) -> Snapshot:
    """Parse a ``/v1/cryptocurrency/listings/latest`` response (and optionally a global-metrics one).

    ``doc`` is the response's bytes as received, or its JSON already decoded (dicts and lists).
    Raises :class:`MarketDataError` when the document as a whole is unusable.
    """
    what = "listings"
    warnings: list[str] = []
    nulled = 0
    try:  # one pass in C: the whole document fits the wire format
        if isinstance(doc, bytes | bytearray | memoryview):
            typed = _LISTINGS.decode(doc)
        else:
            typed = msgspec.convert(doc, CmcListings)
        status = typed.status
        if status.error_code not in (0, None):
            message = status.error_message or "no message"
            raise MarketDataError(f"{what}: CoinMarketCap error {status.error_code}: {message}")
        timestamp_ms = _timestamp({"timestamp": status.timestamp}, what)
        items = typed.data
    except msgspec.MsgspecError:  # something does not fit: find out what, coin by coin
        plain = decode_json(doc, what)
        status_doc = check_status(plain, what)
        timestamp_ms = _timestamp(status_doc, what)
        data = plain.get("data")
        if not isinstance(data, list):
            raise MarketDataError(f"{what}: 'data' must be an array, got {type(data).__name__}") from None
        items, nulled = _lenient(data, convert, warnings)

    global_metrics = None
    if global_doc is not None:
        try:
            global_metrics = parse_global(global_doc, convert)
        except MarketDataError as exc:
            warnings.append(f"{exc}; global metrics left out")
    from_json = isinstance(doc, bytes | bytearray | memoryview)
    return _columns(items, convert, timestamp_ms, global_metrics, warnings, nulled, from_json)


def _columns(
    items: list[CmcListing | None],
    convert: str,
    timestamp_ms: int,
    global_metrics: GlobalMetrics | None,
    warnings: list[str],
    nulled: int,
    from_json: bool,
) -> Snapshot:
    """The snapshot of decoded coins (``None`` for a coin already dropped with a warning)."""
    ids = [item.id if item is not None else None for item in items]
    quotes = [item.quote.get(convert) if item is not None else None for item in items]
    kept = items
    if None in quotes or len(set(ids)) != len(ids):  # rare: drop coin by coin, saying why
        candidates, kept, quotes, seen = quotes, [], [], set()
        for position, (item, quote) in enumerate(zip(items, candidates, strict=True)):
            if item is None:
                continue
            if quote is None:
                warnings.append(f"coin #{position}: id {item.id}: no 'quote.{convert}' object; dropped")
            elif item.id in seen:
                warnings.append(f"coin #{position}: duplicate id {item.id}; dropped")
            else:
                seen.add(item.id)
                kept.append(item)
                quotes.append(quote)
        ids = [item.id for item in kept]

    item_rows = list(map(_ITEM_NUMBERS, kept))
    quote_rows = list(map(_QUOTE_NUMBERS, quotes))
    # Decoded JSON has no NaN and no infinity, but Python values handed in may: those are nulled and
    # counted, told apart from the data's own nulls by counting these.
    nones = None if from_json else sum(map(_COUNT_NONE, item_rows)) + sum(map(_COUNT_NONE, quote_rows))
    head = np.array(item_rows, dtype=np.float64).reshape(len(kept), 1 + len(SUPPLY_FIELDS))  # None: NaN
    body = np.array(quote_rows, dtype=np.float64).reshape(len(kept), len(QUOTE_FIELDS))
    columns = {name: head[:, i] for i, name in enumerate(("cmc_rank", *SUPPLY_FIELDS))}
    columns["rank"] = columns.pop("cmc_rank")
    columns.update((name, body[:, i]) for i, name in enumerate(QUOTE_FIELDS))

    # Each quote's own time, else the coin's, else the status's; most share a handful of values.
    texts = [quote.last_updated or item.last_updated for item, quote in zip(kept, quotes, strict=True)]
    times: dict[str | None, int] = {None: timestamp_ms}
    for text in set(texts) - {None}:
        try:
            times[text] = parse_iso_ms(text)
        except (ValueError, TypeError):
            times[text] = timestamp_ms
            nulled += texts.count(text)
    stamps = list(map(times.__getitem__, texts))
    return Snapshot.of(
        timestamp_ms=timestamp_ms,
        convert=convert,
        ids=np.array(ids, dtype=np.int64),
        symbols=tuple(item.symbol for item in kept),
        names=tuple(item.name for item in kept),
        slugs=tuple(item.slug or "" for item in kept),
        quote_ts_ms=np.array(stamps, dtype=np.int64),
        columns=columns,
        global_metrics=global_metrics,
        dropped=sum(1 for w in warnings if w.startswith("coin #")),
        nulled=nulled,
        warnings=tuple(warnings),
        nones=nones,
    )


def _lenient(data: list[Any], convert: str, warnings: list[str]) -> tuple[list[CmcListing | None], int]:
    """Decode coin by coin: a coin without its essentials is dropped (``None``) with a warning, an
    optional field of the wrong type is nulled. Returns the coins and how many fields were nulled."""
    items: list[CmcListing | None] = []
    nulled = 0
    for position, item in enumerate(data):
        try:
            items.append(msgspec.convert(item, CmcListing))
            continue
        except msgspec.ValidationError:
            pass
        try:
            coin_id, symbol, name, quote = _essentials(item, convert)
        except ValueError as exc:
            warnings.append(f"coin #{position}: {exc}; dropped")
            items.append(None)
            continue
        row, bad = _checked(
            [
                item.get("cmc_rank"),
                *(quote.get(k) for k in QUOTE_FIELDS),
                *(item.get(k) for k in SUPPLY_FIELDS),
            ]
        )
        nulled += bad
        stamp = quote.get("last_updated") or item.get("last_updated")
        if stamp is not None and not isinstance(stamp, str):
            stamp = None
            nulled += 1
        slug = item.get("slug")
        items.append(
            CmcListing(
                id=coin_id,
                symbol=symbol,
                name=name,
                slug=slug if isinstance(slug, str) else None,
                cmc_rank=row[0],
                quote={convert: CmcQuote(*row[1 : 1 + len(QUOTE_FIELDS)], last_updated=stamp)},
                **dict(zip(SUPPLY_FIELDS, row[1 + len(QUOTE_FIELDS) :], strict=True)),
            )
        )
    return items, nulled


def _checked(row: list[Any]) -> tuple[list[float | None], int]:
    """``row`` with every value that is not a JSON number (or null) replaced by None; and how many."""
    bad = 0
    checked: list[float | None] = []
    for value in row:
        try:
            checked.append(_number(value))
        except TypeError:
            checked.append(None)
            bad += 1
    return checked, bad


def _essentials(item: Any, convert: str) -> tuple[int, str, str, Mapping[str, Any]]:
    if not isinstance(item, Mapping):
        raise ValueError(f"expected an object, got {type(item).__name__}")
    coin_id = item.get("id")
    if isinstance(coin_id, bool) or not isinstance(coin_id, int) or coin_id <= 0:
        raise ValueError(f"'id' must be a positive integer, got {coin_id!r}")
    symbol = item.get("symbol")
    if not isinstance(symbol, str) or not symbol.strip():
        raise ValueError(f"id {coin_id}: 'symbol' must be a non-empty string")
    name = item.get("name")
    if not isinstance(name, str):
        raise ValueError(f"id {coin_id}: 'name' must be a string")
    quotes = item.get("quote")
    quote = quotes.get(convert) if isinstance(quotes, Mapping) else None
    if not isinstance(quote, Mapping):
        raise ValueError(f"id {coin_id}: no 'quote.{convert}' object")
    try:
        price = _number(quote.get("price"))
    except TypeError:
        price = None
    if price is None or price < 0:
        raise ValueError(f"id {coin_id}: 'quote.{convert}.price' must be a number >= 0")
    return coin_id, symbol, name, quote


def parse_global(doc: Any, convert: str = "USD") -> GlobalMetrics:
    """Parse a ``/v1/global-metrics/quotes/latest`` response. Raises :class:`MarketDataError`."""
    what = "global metrics"
    doc = decode_json(doc, what)
    status = check_status(doc, what)
    data = doc.get("data")
    if not isinstance(data, Mapping):
        raise MarketDataError(f"{what}: 'data' must be an object, got {type(data).__name__}")
    quotes = data.get("quote")
    quote = quotes.get(convert) if isinstance(quotes, Mapping) else None
    if not isinstance(quote, Mapping):
        raise MarketDataError(f"{what}: no 'data.quote.{convert}' object")
    values: dict[str, float | None] = {}
    for source, keys in ((data, GLOBAL_TOP_FIELDS), (quote, GLOBAL_QUOTE_FIELDS)):
        for key in keys:
            try:
                values[key] = _number(source.get(key))
            except TypeError:
                values[key] = None
    stamp = data.get("last_updated") or status.get("timestamp")
    try:
        timestamp_ms = parse_iso_ms(stamp)
    except (ValueError, TypeError):
        timestamp_ms = _timestamp(status, what)
    return GlobalMetrics(timestamp_ms=timestamp_ms, values=MappingProxyType(values))
