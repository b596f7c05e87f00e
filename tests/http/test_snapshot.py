"""GET /v1/snapshot: the latest snapshot, filtered by ?symbols=, with ETag / If-None-Match."""

from __future__ import annotations

from tests.http.support import assert_error
from tests.replayfiles import COINS, iso

COIN_FIELDS = {
    "id",
    "symbol",
    "name",
    "rank",
    "price",
    "volume_24h",
    "market_cap",
    "percent_change_1h",
    "percent_change_24h",
    "percent_change_7d",
}


def test_503_json_before_the_first_snapshot(idle) -> None:
    result = idle.client.simulate_get("/v1/snapshot")
    body = assert_error(result, 503)
    assert body["title"] == "No snapshot yet"
    assert "etag" not in result.headers
    assert_error(idle.client.simulate_get("/v1/snapshot", params={"symbols": "BTC"}), 503)


def test_shape_of_the_latest_snapshot(served) -> None:
    result = served.client.simulate_get("/v1/snapshot")
    assert result.status_code == 200
    assert result.headers["content-type"].startswith("application/json")
    doc = result.json
    assert doc["timestamp"] == iso(served.replay.snapshot_times[-1])
    assert "unknown_symbols" not in doc
    assert [c["id"] for c in doc["coins"]] == [c.id for c in COINS]
    for coin, spec in zip(doc["coins"], COINS, strict=True):
        assert set(coin) >= COIN_FIELDS
        item = served.replay.latest[spec.id]
        quote = item["quote"]["USD"]
        assert (coin["symbol"], coin["name"], coin["rank"]) == (spec.symbol, spec.name, spec.rank)
        assert coin["price"] == spec.prices[-1]
        for name in (
            "volume_24h",
            "market_cap",
            "percent_change_1h",
            "percent_change_24h",
            "percent_change_7d",
        ):
            assert coin[name] == quote[name], (spec.symbol, name)
    sol = next(c for c in doc["coins"] if c["symbol"] == "SOL")
    assert sol["volume_24h"] is None and sol["market_cap"] is None and sol["percent_change_7d"] is None
    assert sol["price"] == 154.0
    glob = doc["global"]
    assert glob["total_market_cap"] == 2_254_000_000_000.0
    assert glob["btc_dominance"] == 57.75
    assert glob["last_updated"] == iso(served.replay.global_times[-1])


def test_symbols_filter_is_case_insensitive_keeps_order_and_lists_unknown(served) -> None:
    client = served.client
    doc = client.simulate_get("/v1/snapshot", params={"symbols": "btc,ETH"}).json
    assert [c["symbol"] for c in doc["coins"]] == ["BTC", "ETH"]
    assert "unknown_symbols" not in doc
    doc = client.simulate_get("/v1/snapshot", params={"symbols": "eth, Btc"}).json
    assert [c["symbol"] for c in doc["coins"]] == ["ETH", "BTC"]
    doc = client.simulate_get("/v1/snapshot", params={"symbols": "sol,NOPE,btc,zzz"}).json
    assert [c["symbol"] for c in doc["coins"]] == ["SOL", "BTC"]
    assert doc["unknown_symbols"] == ["NOPE", "ZZZ"]
    assert doc["timestamp"] == iso(served.replay.snapshot_times[-1])
    assert doc["global"]["total_market_cap"] == 2_254_000_000_000.0
    # A symbol shared by two coins is the better-ranked one.
    doc = client.simulate_get("/v1/snapshot", params={"symbols": "hot"}).json
    assert [(c["id"], c["rank"]) for c in doc["coins"]] == [(3116, 5)]


def test_symbols_filter_takes_coinmarketcap_ids_too(served) -> None:
    doc = served.client.simulate_get("/v1/snapshot", params={"symbols": "2682,btc,99999"}).json
    assert [(c["id"], c["symbol"]) for c in doc["coins"]] == [(2682, "HOT"), (1, "BTC")]
    assert doc["unknown_symbols"] == ["99999"]


def test_symbols_filter_rejects_an_empty_list(served) -> None:
    body = assert_error(served.client.simulate_get("/v1/snapshot", params={"symbols": " , "}), 400)
    assert body["description"].startswith('The "symbols" parameter is invalid')
    assert body["field"] == "symbols"


def test_etag_and_if_none_match(served) -> None:
    client = served.client
    first = client.simulate_get("/v1/snapshot")
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = client.simulate_get("/v1/snapshot", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    for header in (f'"other", {etag}', f"W/{etag}", "*"):
        assert client.simulate_get("/v1/snapshot", headers={"If-None-Match": header}).status_code == 304
    other = client.simulate_get("/v1/snapshot", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200
    assert other.content == first.content
    # A filtered answer has its own ETag, and honours it too.
    filtered = client.simulate_get("/v1/snapshot", params={"symbols": "BTC"})
    assert filtered.headers["etag"] != etag
    tag = filtered.headers["etag"]
    assert (
        client.simulate_get(
            "/v1/snapshot", params={"symbols": "BTC"}, headers={"If-None-Match": tag}
        ).status_code
        == 304
    )
    assert (
        client.simulate_get(
            "/v1/snapshot", params={"symbols": "ETH"}, headers={"If-None-Match": tag}
        ).status_code
        == 200
    )


def test_a_new_snapshot_changes_the_etag(idle) -> None:
    client = idle.client
    idle.tick()
    first = client.simulate_get("/v1/snapshot")
    etag = first.headers["etag"]
    assert client.simulate_get("/v1/snapshot", headers={"If-None-Match": etag}).status_code == 304
    idle.tick()
    second = client.simulate_get("/v1/snapshot", headers={"If-None-Match": etag})
    assert second.status_code == 200
    assert second.headers["etag"] != etag
    assert second.json["timestamp"] == iso(idle.replay.snapshot_times[1])
    assert first.json["timestamp"] == iso(idle.replay.snapshot_times[0])
    assert (
        client.simulate_get("/v1/snapshot", headers={"If-None-Match": second.headers["etag"]}).status_code
        == 304
    )
