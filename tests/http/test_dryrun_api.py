"""``POST /v1/conditions/dry-run`` and ``POST /v1/me/strategies/{id}/dry-run`` through the real app,
actors and database, over the stored candles of a replay (BTC's 1m closes at 00:03..00:06 are
67000.5, 67250.25, 66875.75, 67500.0; the 00:07 candle is still open, never stored)."""

from __future__ import annotations

import pytest
from falcon.testing import TestClient

from tests.http.support import assert_error, gateway_of
from tests.http.test_users_api import register_and_login
from ubot.http.app import create_app
from ubot.scan import dryrun

RANGE = {"start": "2024-10-16T00:00:00Z", "end": "2024-10-16T01:00:00Z"}
RULES = {"condition": "price > 67100", "timeframe": "1m", "symbols": ["btc"], **RANGE}


@pytest.fixture
def client(served) -> TestClient:
    actors = served.actors
    return TestClient(create_app(gateway_of(actors, users=actors.users, dry_runs=actors.dry_runs)))


def test_a_condition_dry_run_answers_the_crossings_over_stored_candles(client) -> None:
    auth = register_and_login(client, "dora")
    result = client.simulate_post("/v1/conditions/dry-run", json=RULES, headers=auth)
    assert result.status_code == 200, result.text
    # 00:03 is the first tick (false: armed), 00:04 crosses, 00:05 falls, 00:06 crosses again.
    assert result.json == {
        "firings": [
            {
                "time": "2024-10-16T00:04:00.000Z",
                "coin_id": 1,
                "symbol": "BTC",
                "values": {"price": 67250.25},
            },
            {"time": "2024-10-16T00:06:00.000Z", "coin_id": 1, "symbol": "BTC", "values": {"price": 67500.0}},
        ],
        "coins": 1,
        "candles": 4,
        "from": "2024-10-16T00:03:00.000Z",
        "to": "2024-10-16T00:06:00.000Z",
        "truncated": False,
    }
    per_bar = client.simulate_post(
        "/v1/conditions/dry-run", json={**RULES, "frequency": "once_per_bar", "top_n": None}, headers=auth
    )
    assert [f["time"][11:16] for f in per_bar.json["firings"]] == ["00:04", "00:06"]


def test_a_saved_strategy_dry_runs_with_its_own_rules(client) -> None:
    auth = register_and_login(client, "erin")
    strategy = {
        "name": "btc up",
        "condition": "price > 67100",
        "timeframe": "1m",
        "symbols": ["BTC"],
        "frequency": "once",
    }
    created = client.simulate_post("/v1/me/strategies", json=strategy, headers=auth)
    assert created.status_code == 201, created.text
    path = f"/v1/me/strategies/{created.json['id']}/dry-run"
    result = client.simulate_post(path, json=RANGE, headers=auth)
    assert result.status_code == 200, result.text
    assert [(f["time"], f["symbol"]) for f in result.json["firings"]] == [("2024-10-16T00:04:00.000Z", "BTC")]
    other = register_and_login(client, "fred")
    assert_error(client.simulate_post(path, json=RANGE, headers=other), 404)
    assert_error(client.simulate_post(path, json=RANGE), 401)


def test_refusals_name_the_field_and_the_bound(client) -> None:
    auth = register_and_login(client, "gina")

    def refused(**changes) -> dict:
        body = {**RULES, **changes}
        return assert_error(client.simulate_post("/v1/conditions/dry-run", json=body, headers=auth), 422)

    assert refused(top_n=5)["field"] == "symbols"
    long = refused(end="2024-12-16T00:00:00Z")
    assert long["field"] == "end" and f"at most {dryrun.MAX_DAYS} days" in long["description"]
    many = refused(symbols=None, top_n=dryrun.MAX_COINS + 1)
    assert many["field"] == "top_n" and f"{dryrun.MAX_COINS} coins" in many["description"]
    typo = client.simulate_post(
        "/v1/conditions/dry-run", json={**RULES, "condition": "price > sma(20"}, headers=auth
    )
    assert typo.status_code == 422 and typo.json["field"] == "condition" and typo.json["column"] == 12
    field = refused(condition="volume_24h > 5")
    assert "volume_24h is not kept" in field["description"]
    empty = refused(start="2024-11-01T00:00:00Z", end="2024-11-02T00:00:00Z")
    assert empty["field"] == "start"
    assert (
        "the stored history runs from 2024-10-16T00:03:00.000Z to 2024-10-16T00:06:00.000Z"
        in (empty["description"])
    )
    assert refused(symbols=["NOPE"])["description"].endswith("no stored history of NOPE")
    assert_error(
        client.simulate_post("/v1/conditions/dry-run", json={**RULES, "extra": 1}, headers=auth), 400
    )


def test_one_dry_run_per_user_at_once() -> None:
    admission = dryrun.Admission(per_user=1)
    admission.enter(7)
    with pytest.raises(dryrun.InProgress, match="1 dry run in progress, the most at once"):
        admission.enter(7)
    admission.enter(8)  # another user is not held back
    admission.leave(7)
    admission.enter(7)
