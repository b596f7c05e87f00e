"""Small CoinMarketCap-shaped documents for the model tests, parsed by the real parser.

``cmc.snapshot(ts, [cmc.coin(1, 100.0), ...])`` is a :class:`~ubot.market.snapshot.Snapshot` of
those coins at ``ts`` (epoch ms); ``cmc.coin`` takes any listing or quote field as a keyword.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from peewee import Database

from ubot.market.snapshot import GLOBAL_QUOTE_FIELDS, QUOTE_FIELDS, Snapshot, parse_listings
from ubot.models.db import is_sqlite, open_database
from ubot.models.tables import ALL_TABLES
from ubot.timeutil import iso_from_ms, parse_iso_ms

T0 = parse_iso_ms("2024-03-09T23:50:00.000Z")


def coin(
    coin_id: int,
    price: float | None,
    *,
    symbol: str | None = None,
    name: str | None = None,
    ts: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """One listing item. ``ts``: the quote's ``last_updated`` (default: the snapshot's time)."""
    symbol = symbol or f"C{coin_id}"
    quote: dict[str, Any] = {"price": price}
    item: dict[str, Any] = {
        "id": coin_id,
        "name": name or f"Coin {coin_id}",
        "symbol": symbol,
        "slug": (name or f"coin-{coin_id}").lower().replace(" ", "-"),
        "cmc_rank": coin_id,
        "num_market_pairs": 10 * coin_id,
        "circulating_supply": 1000.0 * coin_id,
        "total_supply": 2000.0 * coin_id,
        "max_supply": None,
        "quote": {"USD": quote},
    }
    for key, value in fields.items():
        (quote if key in QUOTE_FIELDS else item)[key] = value
    if ts is not None:
        quote["last_updated"] = iso_from_ms(ts)
    return item


def listings(ts_ms: int, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "status": {"timestamp": iso_from_ms(ts_ms), "error_code": 0, "error_message": None},
        "data": items,
    }


def global_doc(ts_ms: int, **values: Any) -> dict[str, Any]:
    quote = {name: values.pop(name) for name in list(values) if name in GLOBAL_QUOTE_FIELDS}
    data = {**values, "last_updated": iso_from_ms(ts_ms), "quote": {"USD": quote}}
    return {"status": {"timestamp": iso_from_ms(ts_ms), "error_code": 0}, "data": data}


def snapshot(
    ts_ms: int, items: list[dict[str, Any]], global_values: dict[str, Any] | None = None
) -> Snapshot:
    doc = global_doc(ts_ms, **global_values) if global_values is not None else None
    snap = parse_listings(listings(ts_ms, items), "USD", doc)
    assert not snap.warnings, snap.warnings
    return snap


@pytest.fixture
def cmc() -> SimpleNamespace:
    return SimpleNamespace(T0=T0, coin=coin, listings=listings, global_doc=global_doc, snapshot=snapshot)


@pytest.fixture
def empty(database_url) -> Iterator[Database]:
    """A database without any uBot table (the schema tests build old versions in it)."""
    database = open_database(database_url)
    if not is_sqlite(database):
        database.drop_tables(ALL_TABLES, cascade=True, safe=True)
    assert database.get_tables() == []
    yield database
    database.close()
