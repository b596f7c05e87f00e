"""The served snapshot: JSON built once, integers where CMC has integers, null for NaN, an ETag."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np

from ubot.jsonsafe import encode_json, json_number
from ubot.market.simulated import SimulatedSource
from ubot.market.snapshot import GLOBAL_FIELDS, GLOBAL_INT_FIELDS, INT_FIELDS, NUMERIC_FIELDS, parse_listings
from ubot.market.view import CoinDocument, SnapshotDocument, SnapshotView, etag_of
from ubot.timeutil import iso_from_ms

STAMP = "2024-10-16T00:21:56.668Z"


def coin(coin_id, symbol, rank, price, **extra):
    item = {
        "id": coin_id,
        "name": symbol.title(),
        "symbol": symbol,
        "slug": symbol.lower(),
        "num_market_pairs": 100 + coin_id,
        "max_supply": None,
        "circulating_supply": 1_000.5,
        "total_supply": 2_000,
        "cmc_rank": rank,
        "last_updated": "2024-10-16T00:20:00.000Z",
        "quote": {
            "USD": {
                "price": price,
                "volume_24h": 5e9,
                "percent_change_1h": None,
                "percent_change_24h": -1.25,
                "market_cap": price * 1_000.5,
                "last_updated": "2024-10-16T00:20:00.000Z",
            }
        },
    }
    item.update(extra)
    return item


DEFAULT = (coin(1, "BTC", 1, 63_000.5), coin(1027, "ETH", 2, 2_600.25), coin(825, "USDT", 3, 1.0))


def listings(*items):
    items = items or DEFAULT
    return {"status": {"timestamp": STAMP, "error_code": 0}, "data": list(items)}


GLOBAL = {
    "status": {"timestamp": STAMP, "error_code": 0},
    "data": {
        "active_cryptocurrencies": 9915,
        "total_cryptocurrencies": 31735,
        "active_market_pairs": 86748,
        "active_exchanges": 751,
        "total_exchanges": 9394,
        "eth_dominance": 13.585559193657,
        "btc_dominance": 57.396428129187,
        "last_updated": "2024-10-16T00:19:59.999Z",
        "quote": {"USD": {"total_market_cap": 2.25e12, "total_volume_24h": 7.0e10, "defi_market_cap": None}},
    },
}


def view(doc=None, global_doc=GLOBAL) -> SnapshotView:
    return SnapshotView.build(parse_listings(doc or listings(), "USD", global_doc))


def test_body_is_the_whole_snapshot_as_json():
    built = view()
    doc = json.loads(built.body)
    assert list(doc) == ["timestamp", "convert", "global", "coins"]
    assert doc["timestamp"] == STAMP
    assert doc["convert"] == "USD"
    assert [c["symbol"] for c in doc["coins"]] == ["BTC", "ETH", "USDT"]
    btc = doc["coins"][0]
    assert list(btc) == ["id", "symbol", "name", "slug", *NUMERIC_FIELDS, "last_updated"]
    assert btc["id"] == 1 and btc["name"] == "Btc" and btc["slug"] == "btc"
    assert btc["price"] == 63_000.5
    assert btc["percent_change_24h"] == -1.25
    assert btc["last_updated"] == "2024-10-16T00:20:00.000Z"
    assert built.timestamp_ms == 1_729_038_116_668 and built.convert == "USD"
    assert built.coins[0] == btc


def test_nan_becomes_null():
    doc = json.loads(view().body)
    btc = doc["coins"][0]
    assert btc["max_supply"] is None  # CMC null
    assert btc["percent_change_1h"] is None  # CMC null
    assert btc["volume_change_24h"] is None  # absent
    assert doc["global"]["defi_market_cap"] is None
    assert b"NaN" not in view().body


def test_rank_and_market_pairs_are_integers():
    body = view().body
    btc = json.loads(body)["coins"][0]
    assert type(btc["rank"]) is int and btc["rank"] == 1
    assert type(btc["num_market_pairs"]) is int and btc["num_market_pairs"] == 101
    assert type(btc["total_supply"]) is float  # the other numbers stay numbers as they were
    assert b'"rank":1,' in body and b'"num_market_pairs":101,' in body


def test_missing_rank_is_null_not_an_integer():
    doc = json.loads(view(listings(coin(5, "ABC", None, 1.0))).body)
    assert doc["coins"][0]["rank"] is None


def test_global_block():
    body = view().body
    block = json.loads(body)["global"]
    assert list(block) == [*GLOBAL_FIELDS, "last_updated"]
    assert block["btc_dominance"] == 57.396428129187
    assert block["total_market_cap"] == 2.25e12
    assert block["last_updated"] == "2024-10-16T00:19:59.999Z"


def test_global_counts_are_json_integers():
    body = view().body
    block = json.loads(body)["global"]
    expected = {
        "active_cryptocurrencies": 9915,
        "total_cryptocurrencies": 31735,
        "active_market_pairs": 86748,
        "active_exchanges": 751,
        "total_exchanges": 9394,
    }
    assert set(expected) == GLOBAL_INT_FIELDS
    for name, number in expected.items():
        assert type(block[name]) is int and block[name] == number
        assert f'"{name}":{number},'.encode() in body  # 9915, not 9915.0


def test_global_counts_may_be_null():
    doc = copy.deepcopy(GLOBAL)
    doc["data"]["active_exchanges"] = None
    block = json.loads(view(global_doc=doc).body)["global"]
    assert block["active_exchanges"] is None
    assert block["total_exchanges"] == 9394


def test_no_global_metrics():
    built = view(global_doc=None)
    assert built.global_json == "null"
    assert json.loads(built.body)["global"] is None


def test_etag_is_stable_for_equal_snapshots_and_changes_with_a_price():
    first, second = view(), view()
    assert first.body == second.body
    assert first.etag == second.etag == etag_of(first.body)
    assert first.etag.startswith('"') and first.etag.endswith('"')
    moved = view(
        listings(coin(1, "BTC", 1, 63_000.51), coin(1027, "ETH", 2, 2_600.25), coin(825, "USDT", 3, 1.0))
    )
    assert moved.etag != first.etag


def test_filtered_keeps_request_order_dedups_and_lists_unknown_symbols():
    built = view()
    body, etag = built.filtered(["USDT", "BTC", "NOPE", "USDT", "BTC", "ZZZ", "NOPE"])
    doc = json.loads(body)
    assert [c["symbol"] for c in doc["coins"]] == ["USDT", "BTC"]
    assert doc["unknown_symbols"] == ["NOPE", "ZZZ"]
    assert doc["timestamp"] == STAMP and doc["convert"] == "USD"
    assert doc["global"] == json.loads(built.body)["global"]
    assert doc["coins"][1] == json.loads(built.body)["coins"][0]
    assert etag == etag_of(body) and etag != built.etag


def test_filtered_without_unknown_symbols_has_no_such_key():
    body, _ = view().filtered(["ETH"])
    doc = json.loads(body)
    assert [c["id"] for c in doc["coins"]] == [1027]
    assert "unknown_symbols" not in doc


def test_filtered_etag_is_stable():
    assert view().filtered(["ETH", "BTC"]) == view().filtered(["ETH", "BTC"])
    assert view().filtered(["ETH", "BTC"])[1] != view().filtered(["BTC", "ETH"])[1]


def test_shared_symbol_resolves_to_the_better_ranked_coin():
    doc = listings(
        coin(9001, "ABC", 812, 0.5),  # listed first, ranked worse
        coin(9002, "abc", None, 0.7),  # no rank at all
        coin(9003, "ABC", 57, 12.0),
        coin(1, "BTC", 1, 63_000.5),
    )
    built = view(doc)
    body, _ = built.filtered(["ABC"])
    assert [c["id"] for c in json.loads(body)["coins"]] == [9003]
    assert built.by_symbol["ABC"] == 2
    assert built.by_id == {9001: 0, 9002: 1, 9003: 2, 1: 3}
    assert [c["id"] for c in json.loads(built.body)["coins"]] == [9001, 9002, 9003, 1]  # all still served


def test_symbol_lookup_is_upper_case():
    built = view(listings(coin(7, "wBTC", 20, 63_000.0)))
    assert built.by_symbol == {"WBTC": 0}
    body, _ = built.filtered(["WBTC"])
    assert [c["symbol"] for c in json.loads(body)["coins"]] == ["wBTC"]


def _strict(body: bytes):
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


def test_body_is_strict_json_with_escapes_floats_and_nulls_intact():
    """msgspec writes the body: it must read back, with the standard parser, to the values."""
    doc = listings()
    doc["data"][1]["name"] = 'Ünïcode "quoted" \\ \u2028 name'
    doc["data"][0]["quote"]["USD"]["volume_24h"] = 1e-7
    built = view(doc)
    coins = _strict(built.body)["coins"]
    assert coins[1]["name"] == 'Ünïcode "quoted" \\ \u2028 name'
    assert coins[0]["volume_24h"] == 1e-7 and coins[0]["percent_change_1h"] is None
    assert list(coins[0]) == ["id", "symbol", "name", "slug", *NUMERIC_FIELDS, "last_updated"]
    assert built.coins == tuple(coins)
    body, _ = built.filtered(["BTC", "NOPE"])
    assert _strict(body)["coins"] == coins[:1] and _strict(body)["unknown_symbols"] == ["NOPE"]


def reference_body(snap) -> bytes:
    """The served document of ``snap`` built the plain way: one coin document at a time."""
    coins = []
    for i in range(len(snap)):
        values = {name: json_number(snap.column(name)[i]) for name in NUMERIC_FIELDS}
        for name in INT_FIELDS:
            values[name] = None if values[name] is None else int(values[name])
        coins.append(
            CoinDocument(
                id=int(snap.ids[i]),
                symbol=snap.symbols[i],
                name=snap.names[i],
                slug=snap.slugs[i],
                last_updated=iso_from_ms(int(snap.quote_ts_ms[i])),
                **values,
            )
        )
    global_doc = None
    if snap.global_metrics is not None:
        values = snap.global_metrics.values
        global_doc = {
            name: None
            if json_number(values.get(name)) is None
            else int(values[name])
            if name in GLOBAL_INT_FIELDS
            else json_number(values[name])
            for name in GLOBAL_FIELDS
        }
        global_doc["last_updated"] = iso_from_ms(snap.global_metrics.timestamp_ms)
    return encode_json(SnapshotDocument(iso_from_ms(snap.timestamp_ms), snap.convert, global_doc, coins))


def test_body_equals_the_document_built_coin_by_coin_at_5000_coins():
    snap = SimulatedSource(limit=5_000, seed=7).fetch(1_767_225_600_000).snapshot
    rng = np.random.default_rng(3)
    # quotes of a handful of distinct times in any order, some coins unranked, some prices NaN
    stamps = snap.timestamp_ms - rng.choice([0, 1_000, 59_999, 3_600_000], size=len(snap))
    columns = dict(snap.columns)
    for name, share in (("rank", 0.1), ("price", 0.01), ("num_market_pairs", 0.2)):
        column = columns[name].copy()
        column[rng.random(len(snap)) < share] = np.nan
        columns[name] = column
    snap = dataclasses.replace(snap, quote_ts_ms=stamps.astype(np.int64), columns=columns)

    built = SnapshotView.build(snap)

    assert built.body == reference_body(snap)
    assert built.etag == etag_of(built.body)
    assert len({coin["last_updated"] for coin in json.loads(built.body)["coins"]}) == 4


def test_body_of_parsed_listings_equals_the_document_built_coin_by_coin():
    snap = parse_listings(listings(coin(5, "OLD", None, 2.0, last_updated=STAMP), *DEFAULT), "USD", GLOBAL)
    assert SnapshotView.build(snap).body == reference_body(snap)
