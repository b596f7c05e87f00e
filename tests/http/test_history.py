"""Raw history: GET /v1/coins/{symbol_or_id}/quotes and GET /v1/global, with start/end/limit."""

from __future__ import annotations

import pytest

from tests.http.support import assert_error
from tests.replayfiles import COINS, iso


def get(client, path: str, **params) -> dict:
    result = client.simulate_get(path, params=params)
    assert result.status_code == 200, result.text
    return result.json


def test_quotes_of_a_coin_ascending(served) -> None:
    replay = served.replay
    doc = get(served.client, "/v1/coins/eth/quotes")
    assert (doc["id"], doc["symbol"]) == (1027, "ETH")
    quotes = doc["quotes"]
    assert [q["timestamp"] for q in quotes] == [iso(t) for t in replay.quote_times]
    assert [q["price"] for q in quotes] == replay.prices[1027]
    assert all(q["rank"] == 2 for q in quotes)
    assert quotes[-1]["market_cap"] == replay.latest[1027]["quote"]["USD"]["market_cap"]
    assert quotes[-1]["circulating_supply"] == 120_300_000.0
    assert quotes[-1]["max_supply"] is None


def test_quotes_keep_nulls(served) -> None:
    quotes = get(served.client, "/v1/coins/5426/quotes")["quotes"]
    assert len(quotes) == served.replay.good_files
    for quote in quotes:
        assert quote["volume_24h"] is None
        assert quote["market_cap"] is None
        assert quote["percent_change_1h"] is None
        assert quote["circulating_supply"] is None
        assert quote["num_market_pairs"] is None
        assert quote["rank"] == 4
    assert [q["price"] for q in quotes] == list(COINS[3].prices)


def test_quotes_range_and_limit(served) -> None:
    times = [iso(t) for t in served.replay.quote_times]
    doc = get(served.client, "/v1/coins/BTC/quotes", start="2024-10-16T00:04:00Z", end="2024-10-16T00:06:00Z")
    assert [q["timestamp"] for q in doc["quotes"]] == times[1:4]
    doc = get(served.client, "/v1/coins/BTC/quotes", limit=2)
    assert [q["timestamp"] for q in doc["quotes"]] == times[-2:]
    doc = get(served.client, "/v1/coins/BTC/quotes", end="2024-10-16T00:02:00Z")
    assert doc["quotes"] == []


def test_quotes_of_a_shared_symbol_and_an_exact_id(served) -> None:
    assert get(served.client, "/v1/coins/HOT/quotes")["id"] == 3116
    doc = get(served.client, "/v1/coins/2682/quotes")
    assert doc["id"] == 2682
    assert [q["price"] for q in doc["quotes"]] == served.replay.prices[2682]


def test_quotes_errors(served) -> None:
    assert_error(served.client.simulate_get("/v1/coins/NOPE/quotes"), 404)
    assert_error(served.client.simulate_get("/v1/coins/BTC/quotes", params={"limit": "0"}), 400)
    assert_error(served.client.simulate_get("/v1/coins/BTC/quotes", params={"start": "soon"}), 400)
    body = assert_error(
        served.client.simulate_get(
            "/v1/coins/BTC/quotes", params={"start": "2024-10-16T00:06:00Z", "end": "2024-10-16T00:05:00Z"}
        ),
        422,
    )
    assert body["title"] == "Invalid range"


def test_global_history(served) -> None:
    rows = get(served.client, "/v1/global")["global"]
    # Only the files recorded with a global response have one; {"global": null} has none.
    assert [r["timestamp"] for r in rows] == [iso(t) for t in served.replay.global_times]
    assert [r["total_market_cap"] for r in rows] == [2_251_000_000_000.0, 2_254_000_000_000.0]
    assert [r["btc_dominance"] for r in rows] == [57.375, 57.75]
    assert rows[0]["active_cryptocurrencies"] == 9916
    assert rows[0]["stablecoin_market_cap"] == 170_000_000_000.0


def test_global_range_and_limit(served) -> None:
    first, last = (iso(t) for t in served.replay.global_times)
    assert [r["timestamp"] for r in get(served.client, "/v1/global", limit=1)["global"]] == [last]
    assert [r["timestamp"] for r in get(served.client, "/v1/global", end=first)["global"]] == [first]
    assert [r["timestamp"] for r in get(served.client, "/v1/global", start=last)["global"]] == [last]
    assert get(served.client, "/v1/global", start="2024-10-17T00:00:00Z")["global"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "-1"},
        {"limit": "5000"},
        {"end": "later"},
        {"start": "99999999999999999999"},
        {"symbols": "BTC"},
    ],
)
def test_global_bad_parameters_are_400(served, params) -> None:
    assert_error(served.client.simulate_get("/v1/global", params=params), 400)


def test_global_start_after_end_is_a_422(served) -> None:
    params = {"start": "2024-10-16T01:00:00Z", "end": "2024-10-16T00:00:00Z"}
    assert_error(served.client.simulate_get("/v1/global", params=params), 422)


def test_global_before_any_snapshot_is_empty(idle) -> None:
    assert get(idle.client, "/v1/global")["global"] == []
