"""The latest snapshot as the gateway serves it: JSON bytes built once per tick, with an ETag.

Built by the Container actor when a snapshot arrives; immutable afterwards, so gateway threads can
read it freely. The document's shape is declared once, as msgspec Structs (:class:`CoinDocument`,
:class:`SnapshotDocument`), and encoded by msgspec in one pass (NaN and the infinities come out as
``null``: :data:`ubot.jsonsafe.encode_json`). ``?symbols=`` answers encode the requested coins'
documents, prepared here, on demand.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np

from ubot.jsonsafe import encode_json, json_ints, json_number
from ubot.market.snapshot import (
    GLOBAL_FIELDS,
    GLOBAL_INT_FIELDS,
    INT_FIELDS,
    QUOTE_FIELDS,
    SUPPLY_FIELDS,
    Snapshot,
)
from ubot.timeutil import iso_from_ms

Number = float | None  # NaN and the infinities are written as null (msgspec's rule, see jsonsafe)


class CoinDocument(msgspec.Struct, gc=False):
    """One coin of the served snapshot, its members in the order they are written."""

    id: int
    symbol: str
    name: str
    slug: str
    rank: int | None
    price: Number
    volume_24h: Number
    volume_change_24h: Number
    percent_change_1h: Number
    percent_change_24h: Number
    percent_change_7d: Number
    percent_change_30d: Number
    percent_change_60d: Number
    percent_change_90d: Number
    market_cap: Number
    market_cap_dominance: Number
    fully_diluted_market_cap: Number
    circulating_supply: Number
    total_supply: Number
    max_supply: Number
    num_market_pairs: int | None
    last_updated: str


class SnapshotDocument(msgspec.Struct, omit_defaults=True, rename={"global_": "global"}):
    """The served snapshot (``GET /v1/snapshot``); ``unknown_symbols`` only in ``?symbols=`` answers."""

    timestamp: str
    convert: str
    global_: dict[str, Any] | None
    coins: list[CoinDocument]
    unknown_symbols: list[str] | None = None


_COLUMNS = ("rank", *QUOTE_FIELDS, *SUPPLY_FIELDS)
assert CoinDocument.__struct_fields__ == ("id", "symbol", "name", "slug", *_COLUMNS, "last_updated")


def etag_of(body: bytes) -> str:
    """A strong validator: CRC-32 and length of the body (not a security boundary, just change)."""
    return f'"{zlib.crc32(body):08x}-{len(body):x}"'


def _global_value(value: float | None, name: str) -> Any:
    number = json_number(value)
    return int(number) if number is not None and name in GLOBAL_INT_FIELDS else number


@dataclass(frozen=True, eq=False)
class SnapshotView:
    timestamp_ms: int
    convert: str
    body: bytes
    etag: str
    documents: tuple[CoinDocument, ...]  # each coin's document, built once
    ids: tuple[int, ...]
    symbols: tuple[str, ...]
    global_doc: dict[str, Any] | None

    @functools.cached_property
    def by_symbol(self) -> Mapping[str, int]:
        """Upper-case symbol -> coin index, the best rank winning (unranked last, ties by position).

        Built on first use (by a query, off the tick's path), like :attr:`by_id`."""
        documents = self.documents
        ranked = sorted(
            range(len(documents)),
            key=lambda i: (documents[i].rank is None, documents[i].rank or 0, i),
        )
        by_symbol: dict[str, int] = {}
        for i in ranked:
            by_symbol.setdefault(self.symbols[i].upper(), i)
        return by_symbol

    @functools.cached_property
    def by_id(self) -> Mapping[int, int]:
        """Coin id -> coin index."""
        return {coin_id: i for i, coin_id in enumerate(self.ids)}

    @property
    def coins(self) -> tuple[dict[str, Any], ...]:
        """The coin documents as dicts (as a client reads them: for tests and tools)."""
        return tuple(msgspec.json.decode(encode_json(self.documents)))

    @property
    def global_json(self) -> str:
        """The ``global`` member's JSON (an object or null)."""
        return encode_json(self.global_doc).decode()

    @classmethod
    def build(cls, snap: Snapshot) -> SnapshotView:
        # Most quotes share a handful of timestamps: each distinct one is formatted once.
        distinct, which = np.unique(snap.quote_ts_ms, return_inverse=True)
        stamps = np.array([iso_from_ms(ms) for ms in distinct.tolist()], dtype=object)[which].tolist()
        ids = snap.ids.tolist()
        columns = [
            json_ints(snap.column(n)) if n in INT_FIELDS else snap.column(n).tolist() for n in _COLUMNS
        ]
        documents = tuple(map(CoinDocument, ids, snap.symbols, snap.names, snap.slugs, *columns, stamps))
        global_doc = None
        if snap.global_metrics is not None:
            values = snap.global_metrics.values
            global_doc = {name: _global_value(values.get(name), name) for name in GLOBAL_FIELDS}
            global_doc["last_updated"] = iso_from_ms(snap.global_metrics.timestamp_ms)
        body = _render(snap.timestamp_ms, snap.convert, global_doc, documents)
        return cls(
            timestamp_ms=snap.timestamp_ms,
            convert=snap.convert,
            body=body,
            etag=etag_of(body),
            documents=documents,
            ids=tuple(ids),
            symbols=snap.symbols,
            global_doc=global_doc,
        )

    @classmethod
    def from_document(cls, body: bytes, etag: str, timestamp_ms: int) -> SnapshotView:
        """The view of a served document (a gateway that holds no snapshot: the bus carries the
        bytes): the same answers, ``?symbols=`` included, as the view it was built from."""
        doc = _decoder.decode(body)
        documents = tuple(doc.coins)
        ids = tuple(coin.id for coin in documents)
        symbols = tuple(coin.symbol for coin in documents)
        return cls(
            timestamp_ms=timestamp_ms,
            convert=doc.convert,
            body=body,
            etag=etag,
            documents=documents,
            ids=ids,
            symbols=symbols,
            global_doc=doc.global_,
        )

    def filtered(self, symbols: Iterable[str]) -> tuple[bytes, str]:
        """The document restricted to ``symbols`` (upper-case symbols, or CoinMarketCap ids in
        digits), in the order asked; the keys it does not have are listed as ``unknown_symbols``."""
        wanted = list(dict.fromkeys(symbols))
        where = {key: self.index_of(key) for key in wanted}
        found = [self.documents[where[key]] for key in wanted if where[key] is not None]
        missing = [key for key in wanted if where[key] is None]
        body = _render(self.timestamp_ms, self.convert, self.global_doc, found, missing or None)
        return body, etag_of(body)

    def index_of(self, key: str) -> int | None:
        """The row of a coin: by id when ``key`` is ASCII digits, else by (upper-case) symbol."""
        if key.isascii() and key.isdigit():
            return self.by_id.get(int(key)) if len(key) < 19 else None
        return self.by_symbol.get(key)


_decoder = msgspec.json.Decoder(SnapshotDocument)


def _render(
    timestamp_ms: int,
    convert: str,
    global_doc: dict[str, Any] | None,
    documents: Iterable[CoinDocument],
    missing: list[str] | None = None,
) -> bytes:
    document = SnapshotDocument(iso_from_ms(timestamp_ms), convert, global_doc, list(documents), missing)
    return encode_json(document)
