"""The simulated market: CMC-faithful documents, deterministic prices, consistent numbers."""

from __future__ import annotations

import json
import math

import msgspec
import numpy as np
import pytest

from ubot.market.simulated import ACTIVE_CRYPTOCURRENCIES, SimulatedSource, credit_count
from ubot.market.snapshot import parse_listings
from ubot.market.source import FatalSourceError
from ubot.timeutil import iso_from_ms, parse_iso_ms

T0 = parse_iso_ms("2024-10-16T00:21:00.000Z")
HOUR = 3_600_000
DAY = 24 * HOUR

ITEM_KEYS = [
    "id",
    "name",
    "symbol",
    "slug",
    "num_market_pairs",
    "date_added",
    "tags",
    "max_supply",
    "circulating_supply",
    "total_supply",
    "infinite_supply",
    "platform",
    "cmc_rank",
    "self_reported_circulating_supply",
    "self_reported_market_cap",
    "tvl_ratio",
    "last_updated",
    "quote",
]
# Tokens: CMC sends platform before infinite_supply.
TOKEN_KEYS = [*ITEM_KEYS[:10], "platform", "infinite_supply", *ITEM_KEYS[12:]]
QUOTE_KEYS = [
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
    "tvl",
    "last_updated",
]
STATUS_KEYS = [
    "timestamp",
    "error_code",
    "error_message",
    "elapsed",
    "credit_count",
    "notice",
    "total_count",
]
STABLECOINS = {"USDT", "USDC", "DAI", "USDe"}


@pytest.fixture(scope="module")
def big() -> SimulatedSource:
    return SimulatedSource(limit=5000)


def by_id(raw) -> dict[int, dict]:
    return {item["id"]: item for item in raw.listings["data"]}


def usd(item: dict) -> dict:
    return item["quote"]["USD"]


def test_output_parses_cleanly() -> None:
    raw = SimulatedSource().documents(T0)
    snap = parse_listings(raw.listings, global_doc=raw.global_metrics)
    assert (len(snap), snap.dropped, snap.nulled) == (100, 0, 0)
    assert snap.warnings == ()
    assert snap.timestamp_ms == T0
    assert (snap.quote_ts_ms == T0).all()
    assert snap.global_metrics is not None
    assert snap.global_metrics.timestamp_ms == T0
    assert all(value is not None for value in snap.global_metrics.values.values())
    assert raw.origin == "simulated"


def test_big_listing_parses_cleanly(big: SimulatedSource) -> None:
    raw = big.documents(T0)
    snap = parse_listings(raw.listings, global_doc=raw.global_metrics)
    assert (len(snap), snap.dropped, snap.nulled) == (5000, 0, 0)
    assert len(set(snap.ids.tolist())) == 5000
    assert raw.listings["status"]["credit_count"] == 25
    json.dumps(raw.listings)  # plain JSON types only
    json.dumps(raw.global_metrics)


def test_status_block() -> None:
    raw = SimulatedSource(limit=250).documents(T0 + 123)
    status = raw.listings["status"]
    assert list(status) == STATUS_KEYS
    assert status["timestamp"] == iso_from_ms(T0 + 123) == "2024-10-16T00:21:00.123Z"
    assert status["error_code"] == 0
    assert status["error_message"] is None
    assert status["notice"] is None
    assert isinstance(status["elapsed"], int)
    assert status["credit_count"] == 2
    assert status["total_count"] == ACTIVE_CRYPTOCURRENCIES
    global_status = raw.global_metrics["status"]
    assert list(global_status) == STATUS_KEYS[:-1]
    assert global_status["credit_count"] == 1


@pytest.mark.parametrize(("coins", "credits"), [(1, 1), (100, 1), (200, 1), (201, 2), (500, 3), (5000, 25)])
def test_credit_count_rule(coins: int, credits: int) -> None:
    assert credit_count(coins) == credits
    assert SimulatedSource(limit=coins).documents(T0).listings["status"]["credit_count"] == credits


def test_same_seed_same_time_same_documents() -> None:
    a = SimulatedSource(limit=300, seed=7).documents(T0)
    b = SimulatedSource(limit=300, seed=7).documents(T0)
    assert a.listings == b.listings
    assert a.global_metrics == b.global_metrics


def test_different_seeds_differ() -> None:
    a = by_id(SimulatedSource(seed=1).documents(T0))
    b = by_id(SimulatedSource(seed=2).documents(T0))
    assert usd(a[1])["price"] != usd(b[1])["price"]
    assert usd(a[1027])["price"] != usd(b[1027])["price"]


def test_history_does_not_change_the_path() -> None:
    walked = SimulatedSource(limit=500, seed=3)
    walked.documents(T0)
    walked.documents(T0 + 60_000)
    after_ticks = walked.documents(T0 + 120_000)  # mostly served from cached grid values
    walked.documents(T0 + 400 * DAY)  # far away: nothing reusable
    after_jump = walked.documents(T0 + 120_000)
    fresh = SimulatedSource(limit=500, seed=3).documents(T0 + 120_000)
    for raw in (after_ticks, after_jump):
        assert raw.listings == fresh.listings
        assert raw.global_metrics == fresh.global_metrics


def test_prices_positive_and_moving(big: SimulatedSource) -> None:
    before = by_id(big.documents(T0))
    after = by_id(big.documents(T0 + 60_000))
    common = before.keys() & after.keys()
    assert len(common) > 4900
    assert all(usd(item)["price"] > 0 for item in before.values())
    moved = sum(usd(before[i])["price"] != usd(after[i])["price"] for i in common)
    assert moved == len(common)
    # ... but by a realistic amount over one minute.
    btc_move = usd(after[1])["price"] / usd(before[1])["price"] - 1
    assert 0 < abs(btc_move) < 0.01


def test_stablecoins_stay_near_the_peg() -> None:
    source = SimulatedSource(limit=50, seed=11)
    for step in range(0, 1000 * DAY, 7 * DAY + 12_345):
        raw = source.documents(T0 + step)
        prices = {i["symbol"]: usd(i)["price"] for i in raw.listings["data"]}
        assert prices.keys() >= STABLECOINS
        for symbol in STABLECOINS:
            assert abs(prices[symbol] - 1.0) < 0.02, (symbol, step, prices[symbol])


def test_ranks_follow_market_cap(big: SimulatedSource) -> None:
    data = big.documents(T0).listings["data"]
    assert [item["cmc_rank"] for item in data] == list(range(1, 5001))
    caps = [usd(item)["market_cap"] for item in data]
    assert caps == sorted(caps, reverse=True)
    # A shorter listing is the head of the longer one.
    head = SimulatedSource(limit=100).documents(T0).listings["data"]
    assert [i["id"] for i in head] == [i["id"] for i in data[:100]]


def test_majors_are_real_coins() -> None:
    coins = by_id(SimulatedSource().documents(T0))
    assert (coins[1]["symbol"], coins[1]["name"], coins[1]["slug"]) == ("BTC", "Bitcoin", "bitcoin")
    assert (coins[1027]["symbol"], coins[1027]["name"]) == ("ETH", "Ethereum")
    assert coins[1]["cmc_rank"] == 1
    assert coins[1]["max_supply"] == 21_000_000
    assert coins[1027]["max_supply"] is None
    assert coins[1]["platform"] is None
    usdt = coins[825]
    assert usdt["symbol"] == "USDT"
    assert usdt["platform"] == {
        "id": 1027,
        "name": "Ethereum",
        "symbol": "ETH",
        "slug": "ethereum",
        "token_address": "0xdac17f958d2ee523a2206206994597c13d831ec7",
    }
    assert "stablecoin" in usdt["tags"]
    assert 20_000 < usd(coins[1])["price"] < 250_000


def test_percent_changes_match_earlier_prices(big: SimulatedSource) -> None:
    now = by_id(big.documents(T0))
    lags = {"percent_change_1h": HOUR, "percent_change_24h": DAY, "percent_change_7d": 7 * DAY}
    for key, lag in lags.items():
        before = by_id(big.documents(T0 - lag))
        common = now.keys() & before.keys()
        assert len(common) > 4000
        for coin_id in common:
            expected = 100 * (usd(now[coin_id])["price"] / usd(before[coin_id])["price"] - 1)
            assert usd(now[coin_id])[key] == pytest.approx(expected, abs=1e-7), (coin_id, key)


def test_volume_change_matches_earlier_volume(big: SimulatedSource) -> None:
    now = by_id(big.documents(T0))
    before = by_id(big.documents(T0 - DAY))
    for coin_id in now.keys() & before.keys():
        expected = 100 * (usd(now[coin_id])["volume_24h"] / usd(before[coin_id])["volume_24h"] - 1)
        assert usd(now[coin_id])["volume_change_24h"] == pytest.approx(expected, abs=1e-4)


def test_derived_quote_fields(big: SimulatedSource) -> None:
    raw = big.documents(T0)
    for item in raw.listings["data"]:
        quote = usd(item)
        assert quote["volume_24h"] > 0
        assert quote["market_cap"] == pytest.approx(quote["price"] * item["circulating_supply"])
        supply = item["max_supply"] if item["max_supply"] is not None else item["total_supply"]
        assert quote["fully_diluted_market_cap"] == pytest.approx(quote["price"] * supply, abs=0.01)
        assert item["total_supply"] >= item["circulating_supply"]
        assert item["max_supply"] is None or item["max_supply"] >= item["total_supply"]
        assert quote["last_updated"] == item["last_updated"] == iso_from_ms(T0)


def test_global_metrics_consistent(big: SimulatedSource) -> None:
    raw = big.documents(T0)
    coins = by_id(raw)
    data = raw.global_metrics["data"]
    quote = data["quote"]["USD"]
    listed = sum(usd(item)["market_cap"] for item in coins.values())
    assert listed < quote["total_market_cap"] < listed * 1.05
    assert data["btc_dominance"] == pytest.approx(usd(coins[1])["market_cap_dominance"], abs=1e-4)
    assert data["btc_dominance"] == pytest.approx(
        100 * usd(coins[1])["market_cap"] / quote["total_market_cap"]
    )
    assert data["eth_dominance"] == pytest.approx(
        100 * usd(coins[1027])["market_cap"] / quote["total_market_cap"]
    )
    assert 35 < data["btc_dominance"] < 75
    assert quote["altcoin_market_cap"] == pytest.approx(
        quote["total_market_cap"] - usd(coins[1])["market_cap"]
    )
    stables = sum(usd(i)["market_cap"] for i in coins.values() if "stablecoin" in i["tags"])
    assert quote["stablecoin_market_cap"] == pytest.approx(stables)
    assert quote["total_volume_24h"] > sum(usd(i)["volume_24h"] for i in coins.values())
    yesterday = big.documents(T0 - DAY).global_metrics["data"]
    assert data["btc_dominance_yesterday"] == pytest.approx(yesterday["btc_dominance"])
    assert quote["total_market_cap_yesterday"] == pytest.approx(yesterday["quote"]["USD"]["total_market_cap"])


def test_key_order_matches_cmc() -> None:
    data = SimulatedSource(limit=200).documents(T0).listings["data"]
    coin = next(item for item in data if item["platform"] is None)
    token = next(item for item in data if item["platform"] is not None)
    assert list(coin) == ITEM_KEYS
    assert list(token) == TOKEN_KEYS
    assert list(token["platform"]) == ["id", "name", "symbol", "slug", "token_address"]
    assert list(coin["quote"]) == ["USD"]
    assert list(usd(coin)) == QUOTE_KEYS
    for item in data:
        assert list(item) == (ITEM_KEYS if item["platform"] is None else TOKEN_KEYS)
        assert isinstance(item["tags"], list)
        assert all(isinstance(tag, str) for tag in item["tags"])


def test_synthetic_coins_fill_the_tail(big: SimulatedSource) -> None:
    data = big.documents(T0).listings["data"]
    synthetic = [item for item in data if item["id"] >= 100_000]
    assert len(synthetic) > 4900
    sample = synthetic[0]
    number = sample["id"] - 100_000 + 1
    assert sample["name"] == f"Simcoin {number}"
    assert sample["symbol"] == f"SIM{number}"
    assert sample["slug"] == f"simcoin-{number}"
    # Market caps span several orders of magnitude, like the real market.
    assert usd(data[0])["market_cap"] / usd(data[-1])["market_cap"] > 1e5


def test_daily_moves_are_realistic() -> None:
    source = SimulatedSource(limit=300, seed=5)
    btc, small = [], []
    for day in range(60):
        coins = by_id(source.documents(T0 + day * DAY))
        btc.append(usd(coins[1])["percent_change_24h"])
        small.extend(usd(i)["percent_change_24h"] for i in coins.values() if i["cmc_rank"] > 200)

    def rms(values: list[float]) -> float:
        return math.sqrt(sum(v * v for v in values) / len(values))

    assert 1.0 < rms(btc) < 5.0
    assert rms(small) > rms(btc)


def test_other_currencies() -> None:
    eur = by_id(SimulatedSource(convert="EUR").documents(T0))
    dollars = by_id(SimulatedSource().documents(T0))
    assert list(eur[1]["quote"]) == ["EUR"]
    assert eur[1]["quote"]["EUR"]["price"] == pytest.approx(usd(dollars[1])["price"] * 0.92)
    raw = SimulatedSource(convert="EUR").documents(T0)
    snap = parse_listings(raw.listings, convert="EUR", global_doc=raw.global_metrics)
    assert (snap.dropped, snap.nulled) == (0, 0)
    in_btc = by_id(SimulatedSource(convert="BTC").documents(T0))
    assert in_btc[1]["quote"]["BTC"]["price"] == pytest.approx(1.0)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(FatalSourceError, match="XAU"):
        SimulatedSource(convert="XAU")
    with pytest.raises(ValueError, match="limit"):
        SimulatedSource(limit=0)
    with pytest.raises(ValueError, match="limit"):
        SimulatedSource(limit=5001)


def test_close_is_harmless() -> None:
    source = SimulatedSource()
    assert source.name == "simulated"
    source.close()


@pytest.mark.parametrize("convert", ["USD", "EUR", "BTC"])
def test_the_columns_handed_on_are_what_parsing_the_documents_gives(convert: str) -> None:
    """fetch() skips writing and parsing the documents: its snapshot must be exactly theirs."""
    source = SimulatedSource(limit=800, seed=5, convert=convert)
    for at_ms in (T0, T0 + 61_000 + 400 * DAY):
        handed = source.fetch(at_ms).snapshot
        raw = source.documents(at_ms)
        parsed = parse_listings(
            msgspec.json.encode(raw.listings), convert, msgspec.json.encode(raw.global_metrics)
        )
        for name in ("timestamp_ms", "convert", "symbols", "names", "slugs", "dropped", "nulled", "warnings"):
            assert getattr(handed, name) == getattr(parsed, name), name
        assert handed.ids.tolist() == parsed.ids.tolist()
        assert handed.quote_ts_ms.tolist() == parsed.quote_ts_ms.tolist()
        assert set(handed.columns) == set(parsed.columns)
        for name, column in parsed.columns.items():
            assert np.array_equal(handed.column(name), column, equal_nan=True), name
            assert not handed.column(name).flags.writeable
        assert handed.global_metrics == parsed.global_metrics
