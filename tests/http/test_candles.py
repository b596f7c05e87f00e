"""GET /v1/coins/{symbol_or_id}/candles: stored candles plus the still-open one, as the prices imply."""

from __future__ import annotations

import pytest

from tests.http.support import assert_error
from tests.replayfiles import ms
from ubot.models.tables import Candle

BTC, HYDRO, HOLO = 1, 3116, 2682


def candles(client, key: str, **params) -> dict:
    result = client.simulate_get(f"/v1/coins/{key}/candles", params=params)
    assert result.status_code == 200, result.text
    return result.json


@pytest.mark.parametrize("timeframe", ["1m", "5m", "15m", "1h", "4h", "1d"])
def test_candles_are_what_the_prices_imply(served, timeframe) -> None:
    for coin_id in (BTC, 1027, 825, 5426, HYDRO, HOLO):
        doc = candles(served.client, str(coin_id), timeframe=timeframe)
        assert doc["id"] == coin_id
        assert doc["timeframe"] == timeframe
        assert doc["candles"] == served.replay.candles(coin_id, timeframe), (coin_id, timeframe)


def test_ascending_with_the_open_candle_last(served) -> None:
    doc = candles(served.client, "BTC", timeframe="5m")
    assert doc["symbol"] == "BTC"
    times = [c["open_time"] for c in doc["candles"]]
    assert times == ["2024-10-16T00:00:00.000Z", "2024-10-16T00:05:00.000Z"]
    # The 00:05 candle is still open: it is never in the database, it comes from the Container (the
    # closed 00:00 one is written with the next batch of closed candles, or already was).
    stored = [
        row.open_time
        for row in Candle.select()
        .where((Candle.coin == BTC) & (Candle.timeframe == "5m"))
        .order_by(Candle.open_time)
    ]
    assert stored in ([], [ms("2024-10-16T00:00:00Z")])
    assert doc["candles"][-1] == {
        "open_time": "2024-10-16T00:05:00.000Z",
        "open": 66875.75,
        "high": 67500.0,
        "low": 66875.75,
        "close": 67125.5,
    }
    # Each 1m candle is served once, not twice.
    one_minute = [c["open_time"] for c in candles(served.client, "BTC", timeframe="1m")["candles"]]
    assert one_minute == sorted(set(one_minute))
    assert len(one_minute) == served.replay.good_files


def test_default_timeframe_is_1h(served) -> None:
    doc = candles(served.client, "btc")
    assert doc["timeframe"] == "1h"
    assert doc["candles"] == [
        {
            "open_time": "2024-10-16T00:00:00.000Z",
            "open": 67000.5,
            "high": 67500.0,
            "low": 66875.75,
            "close": 67125.5,
        }
    ]


def test_limit_keeps_the_latest(served) -> None:
    expected = served.replay.candles(BTC, "1m")
    assert candles(served.client, "BTC", timeframe="1m", limit=2)["candles"] == expected[-2:]
    assert candles(served.client, "BTC", timeframe="1m", limit=1)["candles"] == expected[-1:]
    assert candles(served.client, "BTC", timeframe="1m", limit=1000)["candles"] == expected


def test_start_and_end_bound_the_open_time(served) -> None:
    expected = served.replay.candles(BTC, "1m")
    doc = candles(
        served.client, "BTC", timeframe="1m", start="2024-10-16T00:04:00Z", end="2024-10-16T00:06:00Z"
    )
    assert doc["candles"] == expected[1:4]
    # Epoch milliseconds work too, and both ends are inclusive.
    doc = candles(
        served.client, "BTC", timeframe="1m", start=ms("2024-10-16T00:04:00Z"), end=ms("2024-10-16T00:04:00Z")
    )
    assert doc["candles"] == expected[1:2]
    # An end before the open candle leaves it out; a start at it keeps only it.
    five = served.replay.candles(BTC, "5m")
    assert candles(served.client, "BTC", timeframe="5m", end="2024-10-16T00:04:59Z")["candles"] == five[:1]
    assert candles(served.client, "BTC", timeframe="5m", start="2024-10-16T00:05:00Z")["candles"] == five[1:]
    assert candles(served.client, "BTC", timeframe="5m", start="2024-10-16T01:00:00Z")["candles"] == []
    # limit applies within the range
    doc = candles(
        served.client,
        "BTC",
        timeframe="1m",
        start="2024-10-16T00:03:00Z",
        end="2024-10-16T00:05:00Z",
        limit=2,
    )
    assert doc["candles"] == expected[1:3]


def test_a_shared_symbol_is_the_best_ranked_coin_and_an_id_is_exact(served) -> None:
    for key in ("HOT", "hot", "Hot"):
        doc = candles(served.client, key, timeframe="5m")
        assert (doc["id"], doc["symbol"]) == (HYDRO, "HOT")
        assert doc["candles"] == served.replay.candles(HYDRO, "5m")
    doc = candles(served.client, str(HOLO), timeframe="5m")
    assert (doc["id"], doc["symbol"]) == (HOLO, "HOT")
    assert doc["candles"] == served.replay.candles(HOLO, "5m")
    assert doc["candles"] != served.replay.candles(HYDRO, "5m")


def test_unknown_coin_is_404(served) -> None:
    for key in ("NOPE", "424242", "NULLP", "x" * 65, "99999999999999999999", "%C2%B2", "%D9%A1"):
        body = assert_error(served.client.simulate_get(f"/v1/coins/{key}/candles"), 404)
        assert body["title"] == "Unknown coin"


def test_unknown_coin_is_404_before_any_snapshot(idle) -> None:
    assert_error(idle.client.simulate_get("/v1/coins/BTC/candles"), 404)


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"timeframe": "2m"}, "timeframe"),
        ({"timeframe": "1M"}, "timeframe"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2024-13-01T00:00:00Z"}, "end"),
        ({"start": "-5"}, "start"),
        ({"start": "99999999999999999999"}, "start"),
        ({"end": "9" * 5000}, "end"),
        ({"end": "²"}, "end"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"start": ""}, "start"),
        ({"start": "2024-10-16T00:06:00"}, "start"),  # no zone
        ({"limit": ["1", "2"]}, "limit"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_parameters_are_400(served, params, named) -> None:
    body = assert_error(served.client.simulate_get("/v1/coins/BTC/candles", params=params), 400)
    assert body["field"] == named
    assert f'"{named}"' in body["description"]
    assert body["description"][0].isupper(), body["description"]


def test_a_start_after_the_end_is_a_422(served) -> None:
    params = {"start": "2024-10-16T00:06:00Z", "end": "2024-10-16T00:05:00Z"}
    body = assert_error(served.client.simulate_get("/v1/coins/BTC/candles", params=params), 422)
    assert (body["title"], body["field"]) == ("Invalid range", "start")


def test_bad_timeframe_names_the_accepted_values(served) -> None:
    body = assert_error(served.client.simulate_get("/v1/coins/BTC/candles", params={"timeframe": "2m"}), 400)
    assert (
        body["description"] == 'The "timeframe" parameter is invalid: must be one of 1m, 5m, 15m, 1h, 4h, 1d.'
    )
