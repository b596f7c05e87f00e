"""The latest snapshot as the gateway serves it: JSON bytes built once per tick, with an ETag.

Built by the Container actor when a snapshot arrives; immutable afterwards, so gateway threads can
read it freely. ``?symbols=`` answers are built from the per-coin documents prepared here.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

import numpy as np

from ubot.market.snapshot import (
    GLOBAL_FIELDS,
    GLOBAL_INT_FIELDS,
    INT_FIELDS,
    QUOTE_FIELDS,
    SUPPLY_FIELDS,
    Snapshot,
)
from ubot.timeutil import iso_from_ms


def etag_of(body: bytes) -> str:
    """A strong validator: CRC-32 and length of the body (not a security boundary, just change)."""
    return f'"{zlib.crc32(body):08x}-{len(body):x}"'


def _global_value(value: float | None, name: str) -> Any:
    if value is None or value != value:
        return None
    return int(value) if name in GLOBAL_INT_FIELDS else value


@dataclass(frozen=True, eq=False)
class SnapshotView:
    timestamp_ms: int
    convert: str
    body: bytes
    etag: str
    fragments: tuple[str, ...]  # each coin's JSON object, serialized once
    ids: tuple[int, ...]
    symbols: tuple[str, ...]
    global_json: str  # the "global" member's JSON (an object or null)
    by_symbol: Mapping[str, int]  # upper-case symbol -> coin index (best rank wins)
    by_id: Mapping[int, int]

    @property
    def coins(self) -> tuple[dict[str, Any], ...]:
        """The coin documents as dicts (parsed back: for tests and tools, not the hot path)."""
        return tuple(json.loads(fragment) for fragment in self.fragments)

    @classmethod
    def build(cls, snap: Snapshot) -> SnapshotView:
        names = ("rank", *QUOTE_FIELDS, *SUPPLY_FIELDS)
        iso: dict[int, str] = {}  # most quotes share a handful of timestamps
        stamps = [
            iso.get(ms) or iso.setdefault(ms, _quote(iso_from_ms(ms))) for ms in snap.quote_ts_ms.tolist()
        ]
        # Each coin is rendered by one %-template over pre-rendered columns: the same bytes
        # json.dumps would give (float repr, escaped strings), without building 5,000 dicts.
        keys = ("id", "symbol", "name", "slug", *names, "last_updated")
        template = "{" + ",".join(f'"{key}":%s' for key in keys) + "}"
        ids = snap.ids.tolist()
        rows = zip(
            map(str, ids),
            map(_quote, snap.symbols),
            map(_quote, snap.names),
            map(_quote, snap.slugs),
            *(_json_column(snap.column(n), n in INT_FIELDS) for n in names),
            stamps,
            strict=True,
        )
        fragments = tuple(template % row for row in rows)
        global_doc = None
        if snap.global_metrics is not None:
            values = snap.global_metrics.values
            global_doc = {name: _global_value(values.get(name), name) for name in GLOBAL_FIELDS}
            global_doc["last_updated"] = iso_from_ms(snap.global_metrics.timestamp_ms)
        global_json = json.dumps(global_doc, separators=(",", ":"), allow_nan=False)
        by_symbol: dict[str, int] = {}
        ranks = snap.column("rank")
        # Best rank first (unranked last, ties by position), so setdefault keeps the best per symbol.
        for i in np.lexsort((np.arange(len(ranks)), np.nan_to_num(ranks, nan=np.inf))).tolist():
            by_symbol.setdefault(snap.symbols[i].upper(), i)
        body = _render(snap.timestamp_ms, snap.convert, global_json, fragments)
        return cls(
            timestamp_ms=snap.timestamp_ms,
            convert=snap.convert,
            body=body,
            etag=etag_of(body),
            fragments=fragments,
            ids=tuple(ids),
            symbols=snap.symbols,
            global_json=global_json,
            by_symbol=by_symbol,
            by_id={coin_id: i for i, coin_id in enumerate(ids)},
        )

    def filtered(self, symbols: Iterable[str]) -> tuple[bytes, str]:
        """The document restricted to ``symbols`` (upper-case symbols, or CoinMarketCap ids in
        digits), in the order asked; the keys it does not have are listed as ``unknown_symbols``."""
        wanted = list(dict.fromkeys(symbols))
        where = {key: self.index_of(key) for key in wanted}
        found = [self.fragments[where[key]] for key in wanted if where[key] is not None]
        missing = [key for key in wanted if where[key] is None]
        body = _render(self.timestamp_ms, self.convert, self.global_json, found, missing)
        return body, etag_of(body)

    def index_of(self, key: str) -> int | None:
        """The row of a coin: by id when ``key`` is ASCII digits, else by (upper-case) symbol."""
        if key.isascii() and key.isdigit():
            return self.by_id.get(int(key)) if len(key) < 19 else None
        return self.by_symbol.get(key)


_quote = encode_basestring_ascii  # a str as a JSON string literal, as json.dumps writes it


def _json_column(values: np.ndarray, integer: bool) -> list[str]:
    """A numeric column as JSON literals: repr of each float (what json.dumps writes), null for NaN."""
    missing = np.isnan(values)
    if integer:
        texts = list(map(str, np.where(missing, 0, values).astype(np.int64).tolist()))
    else:
        texts = list(map(float.__repr__, values.tolist()))
    for i in np.flatnonzero(missing).tolist():
        texts[i] = "null"
    return texts


def _render(
    timestamp_ms: int,
    convert: str,
    global_json: str,
    fragments: Iterable[str],
    missing: list[str] | None = None,
) -> bytes:
    head = f'{{"timestamp":{_quote(iso_from_ms(timestamp_ms))},"convert":{_quote(convert)},'
    tail = "]"
    if missing:
        tail += ',"unknown_symbols":' + json.dumps(missing, separators=(",", ":"))
    return (head + f'"global":{global_json},"coins":[' + ",".join(fragments) + tail + "}").encode()
