"""Parsing CoinMarketCap listings and global metrics into a Snapshot: strict where it must be,
lenient where CMC documents nulls, and always saying what was dropped."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from ubot.market.snapshot import (
    GLOBAL_FIELDS,
    GLOBAL_INT_FIELDS,
    GLOBAL_TOP_FIELDS,
    NUMERIC_FIELDS,
    MarketDataError,
    parse_global,
    parse_listings,
)
from ubot.timeutil import parse_iso_ms

STATUS_TS = "2024-09-30T12:01:07.123Z"


def _quote(price, last_updated="2024-09-30T12:00:00.000Z", **changes):
    quote = {
        "price": price,
        "volume_24h": 21_453_117_982.55,
        "volume_change_24h": 105.3206,
        "percent_change_1h": -0.12,
        "percent_change_24h": 1.75,
        "percent_change_7d": 4.2,
        "percent_change_30d": 8.01,
        "percent_change_60d": -3.3,
        "percent_change_90d": 2.0,
        "market_cap": price * 19_761_537,
        "market_cap_dominance": 55.8482,
        "fully_diluted_market_cap": price * 21_000_000,
        "tvl": None,
        "last_updated": last_updated,
    }
    quote.update(changes)
    return quote


def btc():
    return {
        "id": 1,
        "name": "Bitcoin",
        "symbol": "BTC",
        "slug": "bitcoin",
        "num_market_pairs": 11_950,
        "date_added": "2010-07-13T00:00:00.000Z",
        "tags": ["mineable", "pow"],
        "max_supply": 21_000_000,
        "circulating_supply": 19_761_537,
        "total_supply": 19_761_537,
        "infinite_supply": False,
        "platform": None,
        "cmc_rank": 1,
        "self_reported_circulating_supply": None,
        "self_reported_market_cap": None,
        "tvl_ratio": None,
        "last_updated": "2024-09-30T12:00:00.000Z",
        "quote": {"USD": _quote(63_781.92300253501)},
    }


def eth():
    item = btc()
    item.update(
        id=1027,
        name="Ethereum",
        symbol="ETH",
        slug="ethereum",
        num_market_pairs=9_800,
        max_supply=None,
        circulating_supply=120_350_000.5,
        total_supply=120_350_000.5,
        infinite_supply=True,
        cmc_rank=2,
        last_updated="2024-09-30T11:59:00.000Z",
        quote={"USD": _quote(2_601.5, last_updated="2024-09-30T11:59:30.000Z")},
    )
    return item


def usdt():
    item = {
        "id": 825,
        "name": "Tether USDt",
        "symbol": "USDT",
        "slug": "tether",
        "num_market_pairs": 98_000,
        "date_added": "2015-02-25T00:00:00.000Z",
        "tags": ["stablecoin"],
        "max_supply": None,
        "circulating_supply": 119_000_000_000,
        "total_supply": 121_000_000_000,
        # tokens: platform before infinite_supply, as CMC sends them
        "platform": {
            "id": 1027,
            "name": "Ethereum",
            "symbol": "ETH",
            "slug": "ethereum",
            "token_address": "0xdac17f958d2ee523a2206206994597c13d831ec7",
        },
        "infinite_supply": True,
        "cmc_rank": 3,
        "self_reported_circulating_supply": None,
        "self_reported_market_cap": None,
        "tvl_ratio": None,
        "last_updated": "2024-09-30T12:00:00.000Z",
        "quote": {"USD": _quote(1.0002, percent_change_30d=None, percent_change_60d=None, tvl=None)},
    }
    return item


def listing(*items, **status):
    head = {
        "timestamp": STATUS_TS,
        "error_code": 0,
        "error_message": None,
        "elapsed": 18,
        "credit_count": 1,
        "notice": None,
        "total_count": 9_915,
    }
    head.update(status)
    return {"status": head, "data": list(items) if items else [btc(), eth(), usdt()]}


def global_doc(**changes):
    usd = {
        "total_market_cap": 2_251_234_567_890.12,
        "total_volume_24h": 70_123_456_789.5,
        "total_volume_24h_reported": 1_900_000_000_000.0,
        "altcoin_volume_24h": 40_000_000_000.0,
        "altcoin_volume_24h_reported": 1_000_000_000_000.0,
        "altcoin_market_cap": 959_000_000_000.0,
        "defi_volume_24h": 4_100_000_000.0,
        "defi_volume_24h_reported": 20_000_000_000.0,
        "defi_24h_percentage_change": 3.1,
        "defi_market_cap": 88_000_000_000.0,
        "stablecoin_volume_24h": 60_000_000_000.0,
        "stablecoin_volume_24h_reported": 400_000_000_000.0,
        "stablecoin_24h_percentage_change": -1.2,
        "stablecoin_market_cap": 170_000_000_000.0,
        "derivatives_volume_24h": 300_000_000_000.0,
        "derivatives_volume_24h_reported": 300_000_000_000.0,
        "derivatives_24h_percentage_change": 12.5,
        "total_market_cap_yesterday": 2_200_000_000_000.0,
        "total_volume_24h_yesterday": 65_000_000_000.0,
        "total_market_cap_yesterday_percentage_change": 2.3,
        "total_volume_24h_yesterday_percentage_change": 7.8,
        "last_updated": "2024-10-16T00:19:59.999Z",
    }
    data = {
        "active_cryptocurrencies": 9_915,
        "total_cryptocurrencies": 31_735,
        "active_market_pairs": 86_748,
        "active_exchanges": 751,
        "total_exchanges": 9_394,
        "eth_dominance": 13.585559193657,
        "btc_dominance": 57.396428129187,
        "eth_dominance_yesterday": 13.77706373,
        "btc_dominance_yesterday": 56.83310653,
        "defi_volume_24h": 4_100_000_000.0,
        "stablecoin_market_cap": 170_000_000_000.0,
        "quote": {"USD": usd},
        "last_updated": "2024-10-16T00:19:59.999Z",
    }
    data.update(changes)
    status = {
        "timestamp": "2024-10-16T00:21:56.668Z",
        "error_code": 0,
        "error_message": None,
        "elapsed": 11,
        "credit_count": 1,
        "notice": None,
    }
    return {"status": status, "data": data}


def value(snap, coin_id, field):
    index = snap.ids.tolist().index(coin_id)
    return snap.column(field)[index]


# -- a realistic listing --------------------------------------------------------------------------


def test_realistic_listing_parses():
    doc = json.loads(json.dumps(listing()))  # exactly what comes off the wire
    snap = parse_listings(doc, "USD")
    assert snap.timestamp_ms == parse_iso_ms(STATUS_TS)
    assert snap.convert == "USD"
    assert len(snap) == 3
    assert snap.ids.tolist() == [1, 1027, 825]
    assert snap.symbols == ("BTC", "ETH", "USDT")
    assert snap.names == ("Bitcoin", "Ethereum", "Tether USDt")
    assert snap.slugs == ("bitcoin", "ethereum", "tether")
    assert snap.ids.dtype == np.int64 and snap.quote_ts_ms.dtype == np.int64
    assert set(snap.columns) == set(NUMERIC_FIELDS)
    assert all(
        snap.column(name).dtype == np.float64 and len(snap.column(name)) == 3 for name in NUMERIC_FIELDS
    )
    assert value(snap, 1, "price") == 63_781.92300253501
    assert value(snap, 1, "rank") == 1
    assert value(snap, 825, "rank") == 3
    assert value(snap, 1, "num_market_pairs") == 11_950
    assert value(snap, 1, "max_supply") == 21_000_000
    assert value(snap, 1027, "circulating_supply") == 120_350_000.5
    assert value(snap, 1, "market_cap_dominance") == 55.8482
    assert value(snap, 1, "volume_change_24h") == 105.3206
    assert (snap.dropped, snap.nulled, snap.warnings) == (0, 0, ())
    assert snap.global_metrics is None


def test_nullable_fields_become_nan_without_a_warning():
    snap = parse_listings(listing())
    assert math.isnan(value(snap, 1027, "max_supply"))
    assert math.isnan(value(snap, 825, "max_supply"))
    assert math.isnan(value(snap, 825, "percent_change_30d"))
    assert math.isnan(value(snap, 825, "percent_change_60d"))
    assert value(snap, 825, "percent_change_90d") == 2.0
    assert (snap.dropped, snap.nulled) == (0, 0)


def test_missing_optional_fields_become_nan():
    item = btc()
    del item["cmc_rank"], item["num_market_pairs"], item["quote"]["USD"]["volume_change_24h"]
    snap = parse_listings(listing(item))
    assert math.isnan(value(snap, 1, "rank"))
    assert math.isnan(value(snap, 1, "num_market_pairs"))
    assert math.isnan(value(snap, 1, "volume_change_24h"))
    assert snap.nulled == 0


@pytest.mark.parametrize(
    ("where", "field", "bad"),
    [
        ("item", "max_supply", "21000000"),
        ("item", "circulating_supply", True),  # a boolean is not a number
        ("item", "cmc_rank", [1]),
        ("item", "num_market_pairs", {"n": 1}),
        ("quote", "volume_24h", "1e9"),
        ("quote", "percent_change_1h", False),
        ("quote", "market_cap", float("inf")),
        ("quote", "market_cap_dominance", float("nan")),
    ],
)
def test_wrong_type_optional_field_is_nulled_and_counted(where, field, bad):
    item = btc()
    (item if where == "item" else item["quote"]["USD"])[field] = bad
    snap = parse_listings(listing(item, eth()))
    column = "rank" if field == "cmc_rank" else field
    assert len(snap) == 2
    assert math.isnan(value(snap, 1, column))
    assert not math.isnan(value(snap, 1027, "price"))
    assert snap.nulled == 1
    assert snap.dropped == 0


def test_several_wrong_types_are_all_counted():
    item = btc()
    item["total_supply"] = "lots"
    item["quote"]["USD"]["percent_change_7d"] = "up"
    other = eth()
    other["cmc_rank"] = True
    snap = parse_listings(listing(item, other))
    assert snap.nulled == 3


def _without(key, quote=False):
    item = btc()
    del (item["quote"]["USD"] if quote else item)[key]
    return item


def _with(key, bad, quote=False):
    item = btc()
    (item["quote"]["USD"] if quote else item)[key] = bad
    return item


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (_without("id"), "coin #1: 'id' must be a positive integer, got None; dropped"),
        (_with("id", "1"), "coin #1: 'id' must be a positive integer, got '1'; dropped"),
        (_with("id", True), "coin #1: 'id' must be a positive integer, got True; dropped"),
        (_with("id", 1.0), "coin #1: 'id' must be a positive integer, got 1.0; dropped"),
        (_with("id", 0), "coin #1: 'id' must be a positive integer, got 0; dropped"),
        (_without("symbol"), "coin #1: id 1: 'symbol' must be a non-empty string; dropped"),
        (_with("symbol", " "), "coin #1: id 1: 'symbol' must be a non-empty string; dropped"),
        (_with("symbol", 42), "coin #1: id 1: 'symbol' must be a non-empty string; dropped"),
        (_without("name"), "coin #1: id 1: 'name' must be a string; dropped"),
        (_with("name", None), "coin #1: id 1: 'name' must be a string; dropped"),
        (_without("quote"), "coin #1: id 1: no 'quote.USD' object; dropped"),
        (_with("quote", {"EUR": {"price": 1.0}}), "coin #1: id 1: no 'quote.USD' object; dropped"),
        (_with("quote", {"USD": 63000.0}), "coin #1: id 1: no 'quote.USD' object; dropped"),
        (_without("price", quote=True), "coin #1: id 1: 'quote.USD.price' must be a number >= 0; dropped"),
        (_with("price", None, quote=True), "coin #1: id 1: 'quote.USD.price' must be a number >= 0; dropped"),
        (
            _with("price", "63000", quote=True),
            "coin #1: id 1: 'quote.USD.price' must be a number >= 0; dropped",
        ),
        (_with("price", True, quote=True), "coin #1: id 1: 'quote.USD.price' must be a number >= 0; dropped"),
        (_with("price", -1.0, quote=True), "coin #1: id 1: 'quote.USD.price' must be a number >= 0; dropped"),
        ("BTC", "coin #1: expected an object, got str; dropped"),
        (None, "coin #1: expected an object, got NoneType; dropped"),
    ],
)
def test_coin_without_an_essential_field_is_dropped_with_a_warning(item, expected):
    snap = parse_listings(listing(eth(), item, usdt()))
    assert snap.ids.tolist() == [1027, 825]
    assert snap.symbols == ("ETH", "USDT")
    assert snap.dropped == 1
    assert snap.warnings == (expected,)


def test_zero_price_is_a_price():
    snap = parse_listings(listing(_with("price", 0, quote=True)))
    assert value(snap, 1, "price") == 0.0 and snap.dropped == 0


def test_duplicate_ids_are_dropped():
    twin = btc()
    twin["symbol"] = "BTC2"
    snap = parse_listings(listing(btc(), eth(), twin))
    assert snap.ids.tolist() == [1, 1027]
    assert snap.symbols == ("BTC", "ETH")
    assert snap.dropped == 1
    assert snap.warnings == ("coin #2: duplicate id 1; dropped",)


def test_other_convert():
    item = btc()
    item["quote"] = {"EUR": _quote(58_000.5)}
    snap = parse_listings(listing(item), convert="EUR")
    assert snap.convert == "EUR" and value(snap, 1, "price") == 58_000.5
    assert parse_listings(listing(item), convert="USD").dropped == 1


def test_empty_listing():
    snap = parse_listings({**listing(), "data": []})
    assert len(snap) == 0
    assert snap.ids.shape == (0,)
    assert all(snap.column(name).shape == (0,) for name in NUMERIC_FIELDS)


# -- timestamps -----------------------------------------------------------------------------------


def test_each_quote_keeps_its_own_last_updated():
    snap = parse_listings(listing())
    assert snap.quote_ts_ms.tolist() == [
        parse_iso_ms("2024-09-30T12:00:00.000Z"),
        parse_iso_ms("2024-09-30T11:59:30.000Z"),  # the quote's, not the item's 11:59:00
        parse_iso_ms("2024-09-30T12:00:00.000Z"),
    ]


def test_quote_without_last_updated_takes_the_status_timestamp():
    item = btc()
    del item["quote"]["USD"]["last_updated"], item["last_updated"]
    snap = parse_listings(listing(item))
    assert snap.quote_ts_ms.tolist() == [parse_iso_ms(STATUS_TS)]
    assert snap.nulled == 0


def test_bad_quote_last_updated_takes_the_status_timestamp_and_is_counted():
    item = btc()
    item["quote"]["USD"]["last_updated"] = "yesterday"
    snap = parse_listings(listing(item))
    assert snap.quote_ts_ms.tolist() == [parse_iso_ms(STATUS_TS)]
    assert snap.nulled == 1


# -- the document as a whole ----------------------------------------------------------------------


def test_cmc_error_status_raises_with_code_and_message():
    doc = {
        "status": {
            "timestamp": "2026-02-19T19:37:21.882Z",
            "error_code": 1001,
            "error_message": "This API Key is invalid.",
            "elapsed": 0,
            "credit_count": 0,
        }
    }
    with pytest.raises(MarketDataError) as info:
        parse_listings(doc)
    assert str(info.value) == "listings: CoinMarketCap error 1001: This API Key is invalid."


def test_cmc_error_without_a_message():
    doc = listing(error_code=500, error_message=None)
    with pytest.raises(MarketDataError, match=r"^listings: CoinMarketCap error 500: no message$"):
        parse_listings(doc)


def test_error_code_null_is_success():
    assert len(parse_listings(listing(error_code=None))) == 3


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "listings: expected a JSON object, got list"),
        ("oops", "listings: expected a JSON object, got str"),
        ({"data": []}, "listings: missing 'status' object"),
        ({"status": "ok", "data": []}, "listings: missing 'status' object"),
        (
            {"status": {"timestamp": STATUS_TS, "error_code": 0}},
            "listings: 'data' must be an array, got NoneType",
        ),
        (
            {"status": {"timestamp": STATUS_TS, "error_code": 0}, "data": {"1": {}}},
            "listings: 'data' must be an array, got dict",
        ),
        (
            {"status": {"error_code": 0}, "data": []},
            "listings: status.timestamp is not an ISO-8601 time: None",
        ),
        (
            {"status": {"timestamp": "30/09/2024", "error_code": 0}, "data": []},
            "listings: status.timestamp is not an ISO-8601 time: '30/09/2024'",
        ),
        (
            {"status": {"timestamp": 1727697667, "error_code": 0}, "data": []},
            "listings: status.timestamp is not an ISO-8601 time: 1727697667",
        ),
    ],
)
def test_unusable_documents_raise_precise_errors(doc, message):
    with pytest.raises(MarketDataError) as info:
        parse_listings(doc)
    assert str(info.value) == message


# -- global metrics -------------------------------------------------------------------------------


def test_global_metrics_parse():
    snap = parse_listings(listing(), "USD", global_doc())
    metrics = snap.global_metrics
    assert metrics.timestamp_ms == parse_iso_ms("2024-10-16T00:19:59.999Z")
    assert set(metrics.values) == set(GLOBAL_FIELDS)
    assert metrics.values["active_cryptocurrencies"] == 9_915
    assert metrics.values["btc_dominance"] == 57.396428129187
    assert metrics.values["total_market_cap"] == 2_251_234_567_890.12
    assert metrics.values["derivatives_volume_24h"] == 300_000_000_000.0
    assert snap.warnings == ()


def test_global_metrics_nulls_and_wrong_types_become_none():
    doc = global_doc(btc_dominance=None, total_exchanges="9394")
    del doc["data"]["eth_dominance"]
    metrics = parse_global(doc)
    assert metrics.values["btc_dominance"] is None
    assert metrics.values["eth_dominance"] is None
    assert metrics.values["total_exchanges"] is None
    assert metrics.values["active_exchanges"] == 751


def test_global_metrics_timestamp_falls_back_to_the_status():
    doc = global_doc()
    del doc["data"]["last_updated"]
    assert parse_global(doc).timestamp_ms == parse_iso_ms("2024-10-16T00:21:56.668Z")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("status"), "global metrics: missing 'status' object"),
        (
            lambda d: d["status"].update(error_code=1006, error_message="nope"),
            "CoinMarketCap error 1006: nope",
        ),
        (lambda d: d.update(data=[]), "global metrics: 'data' must be an object, got list"),
        (lambda d: d["data"].pop("quote"), "global metrics: no 'data.quote.USD' object"),
        (
            lambda d: (d["data"].pop("last_updated"), d["status"].pop("timestamp")),
            "global metrics: status.timestamp is not an ISO-8601 time: None",
        ),
    ],
)
def test_bad_global_doc_is_left_out_with_a_warning_and_listings_kept(mutate, message):
    doc = global_doc()
    mutate(doc)
    with pytest.raises(MarketDataError, match=message):
        parse_global(doc)
    snap = parse_listings(listing(), "USD", doc)
    assert snap.global_metrics is None
    assert len(snap) == 3
    assert snap.dropped == 0
    assert len(snap.warnings) == 1
    assert message in snap.warnings[0] and snap.warnings[0].endswith("; global metrics left out")


def test_global_doc_that_is_not_an_object():
    snap = parse_listings(listing(), "USD", ["not", "global"])
    assert snap.global_metrics is None
    assert snap.warnings == ("global metrics: expected a JSON object, got list; global metrics left out",)


def test_global_int_fields_are_the_counts():
    assert {
        "active_cryptocurrencies",
        "total_cryptocurrencies",
        "active_market_pairs",
        "active_exchanges",
        "total_exchanges",
    } == GLOBAL_INT_FIELDS
    assert set(GLOBAL_TOP_FIELDS) >= GLOBAL_INT_FIELDS


# -- immutability ---------------------------------------------------------------------------------


def test_arrays_are_read_only():
    snap = parse_listings(listing())
    for array in (snap.ids, snap.quote_ts_ms, *snap.columns.values()):
        with pytest.raises(ValueError, match="read-only"):
            array[0] = 0
    with pytest.raises(TypeError):
        snap.columns["price"] = np.zeros(3)


def test_parsing_does_not_modify_the_document():
    doc = listing(btc(), _with("price", "x", quote=True), usdt())
    before = copy.deepcopy(doc)
    parse_listings(doc, "USD", global_doc())
    assert doc == before


# -- bytes as received ----------------------------------------------------------------------------


def _same(a, b) -> None:
    for name in (
        "timestamp_ms",
        "symbols",
        "names",
        "slugs",
        "dropped",
        "nulled",
        "warnings",
        "global_metrics",
    ):
        assert getattr(a, name) == getattr(b, name), name
    assert a.ids.tolist() == b.ids.tolist() and a.quote_ts_ms.tolist() == b.quote_ts_ms.tolist()
    for name in NUMERIC_FIELDS:
        assert np.array_equal(a.column(name), b.column(name), equal_nan=True), name


@pytest.mark.parametrize(
    "items",
    [
        [btc(), eth()],
        [btc(), _with("id", "1"), eth()],
        [_with("symbol", " "), eth(), _without("price", quote=True)],
        [btc(), _with("volume_24h", "lots", quote=True), _with("cmc_rank", True)],
        [btc(), _with("last_updated", 17), _with("slug", 3), btc()],
        [_with("quote", {"EUR": {"price": 1.0}}), eth()],
    ],
)
def test_bytes_as_received_parse_like_the_decoded_document(items):
    doc = listing(*items)
    _same(
        parse_listings(json.dumps(doc).encode(), "USD", json.dumps(global_doc()).encode()),
        parse_listings(doc, "USD", global_doc()),
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "listings: not JSON: Input data was truncated"),
        (b'{"status": {"timestamp": ', "listings: not JSON: Input data was truncated"),
        (b"[1, 2]", "listings: expected a JSON object, got list"),
        (
            b'{"status": {"timestamp": "2024-09-30T12:01:07Z", "error_code": 0}, "data": {}}',
            "listings: 'data' must be an array, got dict",
        ),
    ],
)
def test_unusable_bytes_raise_precise_errors(body, message):
    with pytest.raises(MarketDataError) as info:
        parse_listings(body)
    assert str(info.value) == message
