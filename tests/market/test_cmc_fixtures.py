"""CoinMarketCap's documented responses (``tests/fixtures/cmc/``) against everything of ours that
speaks or reads that wire format: the simulated market, the fake server and the parsers.

The tables below are the documentation (``/work/shared/reference/coinmarketcap-api.md``) as data:
every field of every body, in CMC's observed key order, with its JSON type and whether CMC may
send null. The captured files must satisfy them; so must every body the simulated source and the
fake server produce (no field missing, none CMC does not send, no wrong type, no null where CMC
never sends one, the same key order); and the parsers must read every field they use from the
captured bodies, take the documented nulls and left-out fields as missing values, and refuse the
documented error bodies.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import requests

from tests.fakecmc import CAPTURED, KEY, T0_MS, Error, FakeCmc, Ok, captured, captured_error
from tests.replayfiles import ms
from ubot.clocks import FakeClock
from ubot.market.coinmarketcap import (
    GLOBAL_PATH,
    KEY_INFO_PATH,
    LISTINGS_PATH,
    CmcClient,
    CmcError,
    CmcFatalError,
    CmcRateLimited,
    CmcTransientError,
)
from ubot.market.credits import KeyInfo, parse_key_info
from ubot.market.simulated import SimulatedSource
from ubot.market.snapshot import (
    GLOBAL_QUOTE_FIELDS,
    GLOBAL_TOP_FIELDS,
    QUOTE_FIELDS,
    SUPPLY_FIELDS,
    MarketDataError,
    check_status,
    parse_global,
    parse_listings,
)

# -- the documentation as data ----------------------------------------------------------------------
# A field's kind: "integer", "number" (an integer or a float), "string", "time" (ISO-8601 UTC with
# milliseconds), "boolean", "strings" (an array of strings), "object" or "objects" (an array of
# objects); a trailing "?" means CMC may send null. Dict order is CMC's observed key order.

SUCCESS_STATUS = {
    "timestamp": "time",
    "error_code": "integer",  # 0 on success, never null (observed)
    "error_message": "string?",  # null on success (observed)
    "elapsed": "integer",
    "credit_count": "integer",
    "notice": "string?",
}
LISTINGS_STATUS = {**SUCCESS_STATUS, "total_count": "integer"}  # listings only, not in the spec
ERROR_STATUS = {  # the five fields of a real error body: no notice, and no data beside it
    "timestamp": "time",
    "error_code": "integer",
    "error_message": "string",
    "elapsed": "integer",
    "credit_count": "integer",
}
COIN = {
    "id": "integer",
    "name": "string",
    "symbol": "string",
    "slug": "string",
    "num_market_pairs": "integer",
    "date_added": "time",
    "tags": "strings",
    "max_supply": "number?",
    "circulating_supply": "number",
    "total_supply": "number",
    "infinite_supply": "boolean",
    "platform": "object?",
    "cmc_rank": "integer",
    "self_reported_circulating_supply": "number?",
    "self_reported_market_cap": "number?",
    "tvl_ratio": "number?",
    "last_updated": "time",
    "quote": "object",
}
#: A token's item: the same fields, ``platform`` before ``infinite_supply`` (the 2024 capture).
TOKEN_ORDER = [*list(COIN)[:10], "platform", "infinite_supply", *list(COIN)[12:]]
PLATFORM = {
    "id": "integer",
    "name": "string",
    "symbol": "string",
    "slug": "string",
    "token_address": "string",
}
COIN_QUOTE = {
    "price": "number",
    "volume_24h": "number",
    "volume_change_24h": "number",
    "percent_change_1h": "number?",  # null for values that do not apply (changelog v1.16.0)
    "percent_change_24h": "number?",
    "percent_change_7d": "number?",
    "percent_change_30d": "number?",
    "percent_change_60d": "number?",
    "percent_change_90d": "number?",
    "market_cap": "number",
    "market_cap_dominance": "number",
    "fully_diluted_market_cap": "number",
    "tvl": "number?",
    "last_updated": "time",
}
#: Listing fields an ``aux`` parameter can leave out (the key is then absent, not null).
AUX_FIELDS = ("num_market_pairs", "cmc_rank", "date_added", "tags", "platform", "max_supply")
AUX_FIELDS += ("circulating_supply", "total_supply")
GLOBAL_DATA = {
    "active_cryptocurrencies": "integer",
    "total_cryptocurrencies": "integer",
    "active_market_pairs": "integer",
    "active_exchanges": "integer",
    "total_exchanges": "integer",
    "eth_dominance": "number",
    "btc_dominance": "number",
    "eth_dominance_yesterday": "number",
    "btc_dominance_yesterday": "number",
    "eth_dominance_24h_percentage_change": "number",
    "btc_dominance_24h_percentage_change": "number",
    "defi_volume_24h": "number",
    "defi_volume_24h_reported": "number",
    "defi_market_cap": "number",
    "defi_24h_percentage_change": "number",
    "stablecoin_volume_24h": "number",
    "stablecoin_volume_24h_reported": "number",
    "stablecoin_market_cap": "number",
    "stablecoin_24h_percentage_change": "number",
    "derivatives_volume_24h": "number",
    "derivatives_volume_24h_reported": "number",
    "derivatives_24h_percentage_change": "number",
    "quote": "object",
    "last_updated": "time",
}
GLOBAL_QUOTE = {
    "total_market_cap": "number",
    "total_volume_24h": "number",
    "total_volume_24h_reported": "number",
    "altcoin_volume_24h": "number",
    "altcoin_volume_24h_reported": "number",
    "altcoin_market_cap": "number",
    "defi_volume_24h": "number",
    "defi_volume_24h_reported": "number",
    "defi_24h_percentage_change": "number",
    "defi_market_cap": "number",
    "stablecoin_volume_24h": "number",
    "stablecoin_volume_24h_reported": "number",
    "stablecoin_24h_percentage_change": "number",
    "stablecoin_market_cap": "number",
    "derivatives_volume_24h": "number",
    "derivatives_volume_24h_reported": "number",
    "derivatives_24h_percentage_change": "number",
    "total_market_cap_yesterday": "number",
    "total_volume_24h_yesterday": "number",
    "total_market_cap_yesterday_percentage_change": "number",
    "total_volume_24h_yesterday_percentage_change": "number",
    "last_updated": "time",
}
KEY_INFO = {"plan": "object", "usage": "object"}
KEY_PLAN = {
    "credit_limit_monthly": "integer",
    "credit_limit_monthly_reset": "string",
    "credit_limit_monthly_reset_timestamp": "time",
    "rate_limit_minute": "integer",
}
KEY_USAGE = {"current_minute": "object", "current_day": "object", "current_month": "object"}
KEY_MINUTE = {"requests_made": "integer", "requests_left": "integer"}
KEY_DAY = {"credits_used": "integer", "credits_left": "integer?"}  # null: a plan with no daily limit
KEY_MONTH = {"credits_used": "integer", "credits_left": "integer"}

ERROR_FILES = sorted(path.stem for path in CAPTURED.glob("error_*.json"))
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# -- checking a body against the tables --------------------------------------------------------------


def kind_problem(value: Any, kind: str) -> str | None:
    """Why ``value`` is not of ``kind`` (see above), or None."""
    if value is None:
        return None if kind.endswith("?") else "null, which CMC never sends here"
    kind = kind.rstrip("?")
    is_int = isinstance(value, int) and not isinstance(value, bool)
    ok = {
        "integer": is_int,
        "number": is_int or (isinstance(value, float) and math.isfinite(value)),
        "string": isinstance(value, str),
        "time": isinstance(value, str) and ISO_MS.match(value) is not None,
        "boolean": isinstance(value, bool),
        "strings": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "object": isinstance(value, dict),
        "objects": isinstance(value, list) and all(isinstance(v, dict) for v in value),
    }[kind]
    return None if ok else f"{json.dumps(value)[:60]} is not {kind}"


def object_problems(
    value: Any, table: Mapping[str, str], where: str, order: list[str] | None = None
) -> list[str]:
    """Every way the object ``value`` differs from ``table``: missing or undocumented fields,
    wrong types and nulls, and the key order (``order``, default the table's)."""
    if not isinstance(value, dict):
        return [f"{where}: not an object"]
    problems = [f"{where}.{name}: missing" for name in table if name not in value]
    problems += [f"{where}.{name}: not a field CMC sends" for name in value if name not in table]
    for name, kind in table.items():
        problem = kind_problem(value.get(name), kind) if name in value else None
        if problem:
            problems.append(f"{where}.{name}: {problem}")
    if not problems and list(value) != (order or list(table)):
        problems.append(f"{where}: keys in the order {list(value)}, CMC sends {order or list(table)}")
    return problems


def listings_problems(doc: Any, convert: str = "USD") -> list[str]:
    problems = object_problems(doc, {"status": "object", "data": "objects"}, "$", order=list(doc))
    if problems:
        return problems
    problems = object_problems(doc["status"], LISTINGS_STATUS, "$.status")
    if not doc["data"]:
        return [*problems, "$.data: no coin"]
    for index, item in enumerate(doc["data"]):
        where = f"$.data[{index}]"
        token = isinstance(item, dict) and item.get("platform") is not None
        problems += object_problems(item, COIN, where, order=TOKEN_ORDER if token else None)
        if token:
            problems += object_problems(item["platform"], PLATFORM, f"{where}.platform")
        quotes = item.get("quote") if isinstance(item, dict) else None
        if isinstance(quotes, dict):
            problems += object_problems(quotes, {convert: "object"}, f"{where}.quote")
            problems += object_problems(quotes.get(convert), COIN_QUOTE, f"{where}.quote.{convert}")
    return problems


def global_problems(doc: Any, convert: str = "USD") -> list[str]:
    problems = object_problems(doc, {"status": "object", "data": "object"}, "$", order=list(doc))
    if problems:
        return problems
    problems = object_problems(doc["status"], SUCCESS_STATUS, "$.status")
    problems += object_problems(doc["data"], GLOBAL_DATA, "$.data")
    quotes = doc["data"].get("quote")
    problems += object_problems(quotes, {convert: "object"}, "$.data.quote")
    if isinstance(quotes, dict):
        problems += object_problems(quotes.get(convert), GLOBAL_QUOTE, f"$.data.quote.{convert}")
    return problems


def key_info_problems(doc: Any) -> list[str]:
    problems = object_problems(doc, {"status": "object", "data": "object"}, "$", order=list(doc))
    if problems:
        return problems
    data = doc["data"]
    problems = object_problems(doc["status"], SUCCESS_STATUS, "$.status")
    problems += object_problems(data, KEY_INFO, "$.data")
    problems += object_problems(data.get("plan"), KEY_PLAN, "$.data.plan")
    usage = data.get("usage")
    problems += object_problems(usage, KEY_USAGE, "$.data.usage")
    if isinstance(usage, dict):
        for name, table in (
            ("current_minute", KEY_MINUTE),
            ("current_day", KEY_DAY),
            ("current_month", KEY_MONTH),
        ):
            problems += object_problems(usage.get(name), table, f"$.data.usage.{name}")
    return problems


def error_problems(text: str) -> list[str]:
    """An error body: ``{"status": <five fields>}`` only, pretty-printed with 4 spaces as CMC's are."""
    doc = json.loads(text)
    problems = object_problems(doc, {"status": "object"}, "$")
    if problems:
        return problems
    problems = object_problems(doc["status"], ERROR_STATUS, "$.status")
    if doc["status"]["credit_count"] != 0:
        problems.append("$.status.credit_count: errors cost no credit, CMC sends 0")
    if text.strip() != json.dumps(doc, indent=4):
        problems.append("not pretty-printed with 4 spaces and ': ' separators")
    return problems


def error_code_of(name: str) -> int:
    """``error_401_1001`` -> 1001, ``error_400`` -> 400."""
    return int(name.split("_")[-1])


# -- the captured files say what the documentation says ---------------------------------------------


def test_the_captured_listings_global_and_key_info_are_the_documented_shapes() -> None:
    assert listings_problems(captured("listings_latest")) == []
    assert global_problems(captured("global_metrics_quotes_latest")) == []
    assert key_info_problems(captured("key_info")) == []


@pytest.mark.parametrize("name", ERROR_FILES)
def test_each_captured_error_is_the_documented_body(name: str) -> None:
    text = (CAPTURED / f"{name}.json").read_text(encoding="utf-8")
    assert error_problems(text) == []
    assert json.loads(text)["status"]["error_code"] == error_code_of(name)


def test_the_checks_see_a_missing_field_an_extra_one_a_wrong_type_a_null_and_the_order() -> None:
    """The checker itself: each kind of drift is reported, naming the field."""
    doc = captured("listings_latest")
    btc, eth = doc["data"][0], doc["data"][1]
    del btc["slug"]
    btc["quote"]["USD"]["volume_24h"] = None
    eth["cmc_rank"] = 2.0
    eth["rank"] = 2
    doc["data"][2]["infinite_supply"] = doc["data"][2].pop("infinite_supply")  # a token in coin order
    assert listings_problems(doc) == [
        "$.data[0].slug: missing",
        "$.data[0].quote.USD.volume_24h: null, which CMC never sends here",
        "$.data[1].rank: not a field CMC sends",
        "$.data[1].cmc_rank: 2.0 is not integer",
        f"$.data[2]: keys in the order {list(doc['data'][2])}, CMC sends {TOKEN_ORDER}",
    ]


# -- the simulated market -----------------------------------------------------------------------------


@pytest.mark.parametrize("convert", ["USD", "EUR"])
def test_the_simulated_market_sends_every_documented_field_and_no_other(convert: str) -> None:
    source = SimulatedSource(limit=300, seed=3, convert=convert)
    for at_ms in (T0_MS, T0_MS + 90 * 86_400_000 + 1234):
        raw = source.documents(at_ms)
        assert listings_problems(dict(raw.listings), convert)[:10] == []
        assert global_problems(dict(raw.global_metrics or {}), convert)[:10] == []
    tokens = [item for item in raw.listings["data"] if item["platform"] is not None]
    assert tokens and len(tokens) < len(raw.listings["data"])  # both item layouts were checked


# -- the fake server, over a socket ------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeCmc]:
    server = FakeCmc().start()
    yield server
    server.stop()


def get(fake: FakeCmc, path: str, key: str | None = KEY, **query: Any) -> requests.Response:
    headers = {"X-CMC_PRO_API_KEY": key} if key else {}
    return requests.get(fake.base_url + path, params=query, headers=headers, timeout=10)


def test_the_fake_serves_documented_listings_global_metrics_and_key_info(fake) -> None:
    assert listings_problems(get(fake, LISTINGS_PATH, limit=50).json())[:10] == []
    assert (
        listings_problems(get(fake, LISTINGS_PATH, start=4998, limit=5).json())[:10] == []
    )  # paged past 5000
    assert listings_problems(get(fake, LISTINGS_PATH, limit=5, convert="EUR").json(), "EUR")[:10] == []
    assert global_problems(get(fake, GLOBAL_PATH).json())[:10] == []
    assert global_problems(get(fake, GLOBAL_PATH, convert="EUR").json(), "EUR")[:10] == []
    assert key_info_problems(get(fake, KEY_INFO_PATH).json()) == []


@pytest.mark.parametrize("name", ERROR_FILES)
def test_the_fake_sends_each_error_as_the_captured_body(fake, name: str) -> None:
    code = error_code_of(name)
    if code == 1001:
        response = get(fake, LISTINGS_PATH, key="not-the-key")
    elif code == 1002:
        response = get(fake, LISTINGS_PATH, key=None)
    else:
        fake.script(LISTINGS_PATH, Error(code))
        response = get(fake, LISTINGS_PATH)
    expected = captured(name)  # the verbatim message too
    assert response.status_code == int(name.split("_")[1])
    assert error_problems(response.text) == []
    assert response.json()["status"] | {"timestamp": None} == expected["status"] | {"timestamp": None}


# -- the parsers, on the captured bodies --------------------------------------------------------------


def number_or_nan(value: Any) -> float:
    return math.nan if value is None else float(value)


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def assert_read(doc: dict[str, Any], snapshot: Any) -> None:
    """Every coin of ``doc`` is in ``snapshot``, in order, with every field the parser keeps."""
    items = doc["data"]
    assert snapshot.timestamp_ms == ms(doc["status"]["timestamp"])
    assert snapshot.ids.tolist() == [item["id"] for item in items]
    assert list(snapshot.symbols) == [item["symbol"] for item in items]
    assert list(snapshot.names) == [item["name"] for item in items]
    assert list(snapshot.slugs) == [item["slug"] for item in items]
    assert snapshot.quote_ts_ms.tolist() == [ms(item["quote"]["USD"]["last_updated"]) for item in items]
    wrong = []
    for index, item in enumerate(items):
        sources = {"rank": item.get("cmc_rank")}
        sources |= {name: item["quote"]["USD"].get(name) for name in QUOTE_FIELDS}
        sources |= {name: item.get(name) for name in SUPPLY_FIELDS}
        for name, value in sources.items():
            read = float(snapshot.column(name)[index])
            if not same(read, number_or_nan(value)):
                wrong.append(f"{item['symbol']}.{name}: sent {value}, read {read}")
    assert wrong == []


def test_the_parser_reads_every_field_it_keeps_from_the_captured_bodies() -> None:
    listings, global_doc = captured("listings_latest"), captured("global_metrics_quotes_latest")
    snapshot = parse_listings(listings, "USD", global_doc)
    assert (snapshot.dropped, snapshot.nulled, snapshot.warnings) == (0, 0, ())
    assert_read(listings, snapshot)
    metrics = snapshot.global_metrics
    assert metrics is not None and metrics.timestamp_ms == ms(global_doc["data"]["last_updated"])
    data, quote = global_doc["data"], global_doc["data"]["quote"]["USD"]
    expected = {name: float(data[name]) for name in GLOBAL_TOP_FIELDS}
    expected |= {name: float(quote[name]) for name in GLOBAL_QUOTE_FIELDS}
    assert dict(metrics.values) == expected
    assert parse_global(global_doc).values == metrics.values


NULLABLE_READ = [name for name, kind in COIN.items() if kind == "number?" and name in SUPPLY_FIELDS]
NULLABLE_READ += [name for name, kind in COIN_QUOTE.items() if kind == "number?" and name in QUOTE_FIELDS]


@pytest.mark.parametrize("field", NULLABLE_READ)
def test_a_documented_null_is_a_missing_value_not_an_error(field: str) -> None:
    listings = captured("listings_latest")
    btc = listings["data"][0]
    (btc["quote"]["USD"] if field in COIN_QUOTE else btc)[field] = None
    snapshot = parse_listings(listings)
    assert (snapshot.dropped, snapshot.nulled) == (0, 0)
    assert math.isnan(snapshot.column(field)[0])
    assert_read(listings, snapshot)


def test_every_documented_null_at_once_keeps_the_coin() -> None:
    listings = captured("listings_latest")
    for item in listings["data"]:
        for field, kind in COIN.items():
            if kind.endswith("?") and field != "platform":  # a token's platform is never null
                item[field] = None
        for field, kind in COIN_QUOTE.items():
            if kind.endswith("?"):
                item["quote"]["USD"][field] = None
    assert listings_problems(listings) == []  # still a body CMC may send
    snapshot = parse_listings(listings)
    assert (snapshot.dropped, snapshot.nulled) == (0, 0)
    assert_read(listings, snapshot)


def test_aux_fields_left_out_are_missing_values() -> None:
    listings = captured("listings_latest")
    for item in listings["data"]:
        for field in AUX_FIELDS:
            del item[field]
    snapshot = parse_listings(listings)
    assert (snapshot.dropped, snapshot.nulled) == (0, 0)
    assert_read(listings, snapshot)


def test_the_key_info_parser_reads_the_captured_body() -> None:
    assert parse_key_info(captured("key_info")) == KeyInfo(
        credit_limit_monthly=10_000,
        rate_limit_minute=30,
        credit_limit_daily=None,
        monthly_reset_at="2024-11-01T00:00:00.000Z",
        day_used=42,
        day_left=None,
        month_used=4876,
        month_left=5124,
    )


@pytest.mark.parametrize("name", ERROR_FILES)
def test_a_captured_error_body_is_refused_by_the_parser_naming_code_and_message(name: str) -> None:
    status = captured(name)["status"]
    with pytest.raises(MarketDataError) as raised:
        check_status(captured(name), "listings")
    assert (
        str(raised.value)
        == f"listings: CoinMarketCap error {status['error_code']}: {status['error_message']}"
    )


# -- the client, on the captured bodies served by the fake ---------------------------------------------


@pytest.fixture
def client(fake) -> Iterator[CmcClient]:
    cmc = CmcClient(KEY, fake.base_url, clock=FakeClock(T0_MS / 1000), sleeper=lambda s: None, max_attempts=1)
    yield cmc
    cmc.close()


def test_the_client_passes_the_captured_bodies_on_unchanged(fake, client) -> None:
    fake.script(LISTINGS_PATH, Ok(captured("listings_latest")))
    fake.script(GLOBAL_PATH, Ok(captured("global_metrics_quotes_latest")))
    assert client.listings(5) == captured("listings_latest")
    assert client.global_metrics() == captured("global_metrics_quotes_latest")
    assert parse_key_info(client.key_info()).credit_limit_monthly == fake.plan_monthly


ERROR_CLASSES: dict[int, type[CmcError]] = {
    1001: CmcFatalError,
    1002: CmcFatalError,
    1006: CmcFatalError,
    1008: CmcRateLimited,
    1010: CmcRateLimited,
    400: CmcFatalError,
    500: CmcTransientError,
}


@pytest.mark.parametrize("name", ERROR_FILES)
def test_the_client_reads_each_captured_error_body(fake, client, name: str) -> None:
    fake.script(LISTINGS_PATH, captured_error(name))
    status = captured(name)["status"]
    with pytest.raises(ERROR_CLASSES[status["error_code"]]) as raised:
        client.listings(5)
    assert f"CoinMarketCap error {status['error_code']}: {status['error_message']}" in str(raised.value)
