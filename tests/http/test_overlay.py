"""GET /v1/coins/{key}/overlay: an expression of the condition language at every candle of a coin,
over the candles GET /v1/coins/{key}/candles gives for the same query."""

from __future__ import annotations

import numpy as np
import pytest

from tests.http.support import assert_error

BTC = 1


def overlay(client, expression: str, key: str = "BTC", **params) -> dict:
    result = client.simulate_get(f"/v1/coins/{key}/overlay", params={"expression": expression, **params})
    assert result.status_code == 200, result.text
    return result.json


def test_an_overlay_has_one_value_per_candle(served) -> None:
    candles = served.replay.candles(BTC, "1m")
    closes = np.array([c["close"] for c in candles])
    doc = overlay(served.client, "sma(2)", timeframe="1m")
    assert (doc["id"], doc["symbol"], doc["timeframe"], doc["expression"]) == (BTC, "BTC", "1m", "sma(2)")
    assert [p["open_time"] for p in doc["points"]] == [c["open_time"] for c in candles]
    values = [p["value"] for p in doc["points"]]
    assert values[0] is None  # one candle is not enough history for sma(2)
    assert values[1:] == pytest.approx(list((closes[1:] + closes[:-1]) / 2))
    # Arithmetic over price and indicators
    doc = overlay(served.client, "price - sma(2)", timeframe="1m")
    assert [p["value"] for p in doc["points"]][1:] == pytest.approx(list((closes[1:] - closes[:-1]) / 2))


def test_the_candles_before_the_range_warm_the_indicators_up(served) -> None:
    candles = served.replay.candles(BTC, "1m")
    assert len(candles) >= 3
    doc = overlay(served.client, "sma(2)", timeframe="1m", start=candles[2]["open_time"])
    assert [p["open_time"] for p in doc["points"]] == [c["open_time"] for c in candles[2:]]
    assert doc["points"][0]["value"] == pytest.approx((candles[1]["close"] + candles[2]["close"]) / 2)
    # limit keeps the latest, as for the candles
    doc = overlay(served.client, "sma(2)", timeframe="1m", limit=1)
    assert [p["open_time"] for p in doc["points"]] == [candles[-1]["open_time"]]
    assert doc["points"][0]["value"] == pytest.approx((candles[-2]["close"] + candles[-1]["close"]) / 2)


@pytest.mark.parametrize(
    ("expression", "column", "says"),
    [
        ("sma(20) > price", 1, "an overlay is a number"),
        ("sma(20) + volume_24h", 11, "no volume_24h"),
        ("smaa(20)", 1, "smaa"),
        ("rsi(14) >> 2", 9, "'>>'"),
    ],
)
def test_an_expression_that_is_not_an_overlay_is_a_422_with_its_column(
    served, expression, column, says
) -> None:
    result = served.client.simulate_get("/v1/coins/BTC/overlay", params={"expression": expression})
    assert result.status_code == 422, result.text
    body = result.json
    assert (body["title"], body["field"], body["column"]) == ("Invalid overlay", "expression", column)
    assert says in body["description"]


def test_no_expression_is_a_400_and_an_unknown_coin_a_404(served) -> None:
    body = assert_error(served.client.simulate_get("/v1/coins/BTC/overlay"), 400)
    assert body["field"] == "expression"
    body = assert_error(
        served.client.simulate_get("/v1/coins/NOPE/overlay", params={"expression": "sma(2)"}), 404
    )
    assert body["title"] == "Unknown coin"
