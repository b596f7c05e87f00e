"""The latest snapshot as the gateway serves it: JSON bytes built once per tick, with an ETag.

Built by the Container actor when a snapshot arrives; immutable afterwards, so gateway threads can
read it freely. ``?symbols=`` answers are built from the per-coin documents prepared here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ubot.market.snapshot import GLOBAL_FIELDS, GLOBAL_INT_FIELDS, QUOTE_FIELDS, SUPPLY_FIELDS, Snapshot
from ubot.timeutil import iso_from_ms

_INT_FIELDS = frozenset({"rank", "num_market_pairs"})


def etag_of(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


def _clean(values: list[float], integer: bool) -> list[Any]:
    if integer:
        return [None if v != v else int(v) for v in values]
    return [None if v != v else v for v in values]


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
    coins: tuple[Mapping[str, Any], ...]
    global_doc: Mapping[str, Any] | None
    by_symbol: Mapping[str, int]  # upper-case symbol -> coin index (best rank wins)
    by_id: Mapping[int, int]

    @classmethod
    def build(cls, snap: Snapshot) -> SnapshotView:
        names = ("rank", *QUOTE_FIELDS, *SUPPLY_FIELDS)
        columns = [_clean(snap.column(n).tolist(), n in _INT_FIELDS) for n in names]
        iso: dict[int, str] = {}  # most quotes share a handful of timestamps
        stamps = [iso.get(ms) or iso.setdefault(ms, iso_from_ms(ms)) for ms in snap.quote_ts_ms.tolist()]
        keys = ("id", "symbol", "name", "slug", *names, "last_updated")
        rows = zip(snap.ids.tolist(), snap.symbols, snap.names, snap.slugs, *columns, stamps, strict=True)
        coins = [dict(zip(keys, row)) for row in rows]
        global_doc = None
        if snap.global_metrics is not None:
            values = snap.global_metrics.values
            global_doc = {name: _global_value(values.get(name), name) for name in GLOBAL_FIELDS}
            global_doc["last_updated"] = iso_from_ms(snap.global_metrics.timestamp_ms)
        by_symbol: dict[str, int] = {}
        ranks = snap.column("rank")
        # Best rank first (unranked last, ties by position), so setdefault keeps the best per symbol.
        for i in np.lexsort((np.arange(len(ranks)), np.nan_to_num(ranks, nan=np.inf))).tolist():
            by_symbol.setdefault(snap.symbols[i].upper(), i)
        body = _render(snap.timestamp_ms, snap.convert, global_doc, coins)
        return cls(
            timestamp_ms=snap.timestamp_ms,
            convert=snap.convert,
            body=body,
            etag=etag_of(body),
            coins=tuple(coins),
            global_doc=global_doc,
            by_symbol=by_symbol,
            by_id={c["id"]: i for i, c in enumerate(coins)},
        )

    def filtered(self, symbols: Iterable[str]) -> tuple[bytes, str]:
        """The document restricted to ``symbols`` (upper-case), in the order asked."""
        wanted = list(dict.fromkeys(symbols))
        found = [self.coins[self.by_symbol[s]] for s in wanted if s in self.by_symbol]
        missing = [s for s in wanted if s not in self.by_symbol]
        body = _render(self.timestamp_ms, self.convert, self.global_doc, found, missing)
        return body, etag_of(body)


def _render(
    timestamp_ms: int,
    convert: str,
    global_doc: Mapping[str, Any] | None,
    coins: list[Mapping[str, Any]],
    missing: list[str] | None = None,
) -> bytes:
    doc: dict[str, Any] = {"timestamp": iso_from_ms(timestamp_ms)}
    doc["convert"] = convert
    doc["global"] = global_doc
    doc["coins"] = coins
    if missing:
        doc["unknown_symbols"] = missing
    return json.dumps(doc, separators=(",", ":"), allow_nan=False, check_circular=False).encode()
