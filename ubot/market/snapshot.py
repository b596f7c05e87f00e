"""One market snapshot: CoinMarketCap's listings (+ global metrics) parsed into immutable columns.

Sources hand the Fetcher *raw* documents in CoinMarketCap's own shapes (:class:`RawMarket`); this
module turns them into a :class:`Snapshot`, the value every later stage receives. Coins are stored
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
from types import MappingProxyType
from typing import Any

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
    """What a source returns per tick: CMC documents exactly as received (or generated)."""

    listings: Mapping[str, Any]
    global_metrics: Mapping[str, Any] | None = None
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


def parse_listings(doc: Any, convert: str = "USD", global_doc: Any = None) -> Snapshot:
    """Parse a ``/v1/cryptocurrency/listings/latest`` response (and optionally a global-metrics one).

    Raises :class:`MarketDataError` when the document as a whole is unusable.
    """
    what = "listings"
    status = check_status(doc, what)
    timestamp_ms = _timestamp(status, what)
    data = doc.get("data")
    if not isinstance(data, list):
        raise MarketDataError(f"{what}: 'data' must be an array, got {type(data).__name__}")

    ids: list[int] = []
    symbols: list[str] = []
    names: list[str] = []
    slugs: list[str] = []
    stamps: list[int] = []
    rows: list[list[float]] = []
    seen: set[int] = set()
    warnings: list[str] = []
    nulled = 0
    nones = 0  # nulls in the rows (legitimate, or wrong types already counted in `nulled`)
    stamp_cache: dict[str, int] = {}  # most quotes of a response share a handful of timestamps
    inf = math.inf
    for position, item in enumerate(data):
        try:  # fast path for well-formed items; anything unusual gets _essentials' full checks
            coin_id, symbol, name = item["id"], item["symbol"], item["name"]
            quote = item["quote"][convert]
            price = quote["price"]
            well_formed = (
                type(coin_id) is int
                and coin_id > 0
                and type(symbol) is str
                and symbol.strip() != ""
                and type(name) is str
                and type(quote) is dict
                and (type(price) is float or type(price) is int)
                and 0 <= price < inf
            )
        except (KeyError, TypeError, IndexError):
            well_formed = False
        if not well_formed:
            try:
                coin_id, symbol, name, quote = _essentials(item, convert)
            except ValueError as exc:
                warnings.append(f"coin #{position}: {exc}; dropped")
                continue
        if coin_id in seen:
            warnings.append(f"coin #{position}: duplicate id {coin_id}; dropped")
            continue
        seen.add(coin_id)
        row = [item.get("cmc_rank")]
        row += [quote.get(key) for key in QUOTE_FIELDS]
        row += [item.get(key) for key in SUPPLY_FIELDS]
        if not _PLAIN_NUMBER_TYPES.issuperset(map(type, row)):  # rare: check value by value
            row, bad = _checked(row)
            nulled += bad
        nones += row.count(None)
        stamp = quote.get("last_updated") or item.get("last_updated")
        if stamp is None:
            stamps.append(timestamp_ms)
        else:
            ms = stamp_cache.get(stamp) if isinstance(stamp, str) else None
            if ms is None:
                try:
                    ms = stamp_cache[stamp] = parse_iso_ms(stamp)
                except (ValueError, TypeError):
                    ms = timestamp_ms
                    nulled += 1
            stamps.append(ms)
        ids.append(coin_id)
        symbols.append(symbol)
        names.append(name)
        slug = item.get("slug")
        slugs.append(slug if isinstance(slug, str) else "")
        rows.append(row)

    global_metrics = None
    if global_doc is not None:
        try:
            global_metrics = parse_global(global_doc, convert)
        except MarketDataError as exc:
            warnings.append(f"{exc}; global metrics left out")
    matrix = np.array(rows, dtype=np.float64).reshape(len(rows), len(NUMERIC_FIELDS))  # None -> NaN
    # Python's json accepts NaN and Infinity, CMC never sends them: null them and count them.
    infinite = np.isinf(matrix)
    nulled += int(np.isnan(matrix).sum()) - nones + int(infinite.sum())
    matrix[infinite] = np.nan
    columns = {}
    for index, name in enumerate(NUMERIC_FIELDS):
        column = np.ascontiguousarray(matrix[:, index])
        column.flags.writeable = False
        columns[name] = column
    id_array = np.array(ids, dtype=np.int64)
    stamp_array = np.array(stamps, dtype=np.int64)
    id_array.flags.writeable = False
    stamp_array.flags.writeable = False
    return Snapshot(
        timestamp_ms=timestamp_ms,
        convert=convert,
        ids=id_array,
        symbols=tuple(symbols),
        names=tuple(names),
        slugs=tuple(slugs),
        quote_ts_ms=stamp_array,
        columns=MappingProxyType(columns),
        global_metrics=global_metrics,
        dropped=sum(1 for w in warnings if w.startswith("coin #")),
        nulled=nulled,
        warnings=tuple(warnings),
    )


_PLAIN_NUMBER_TYPES = frozenset({int, float, type(None)})


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
