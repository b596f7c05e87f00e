"""GET /v1/me/alerts over a stand-in Notifier: the shape, ownership, parameters, and 503s."""

from __future__ import annotations

import pytest
from falcon.testing import TestClient

from tests.http.conftest import Canned
from tests.http.support import CannedActor, assert_error
from tests.replayfiles import ms
from ubot.http.app import create_app
from ubot.http.gateway import Gateway
from ubot.notify.messages import AlertView, DeliveryView, GetAlerts

ALICE = {"Authorization": "Bearer token-of-7"}
BOB = {"Authorization": "Bearer token-of-8"}


def view(alert_id: int, strategy_id: int = 3, symbol: str = "BTC") -> AlertView:
    return AlertView(
        id=alert_id,
        strategy_id=strategy_id,
        strategy_name="oversold",
        coin_id=1,
        symbol=symbol,
        timeframe="1h",
        fired_at_ms=ms("2024-10-16T00:05:00Z") + alert_id,
        values={"rsi(14)": 27.5, "percent_change_24h": None},
        text=f"{symbol}: rsi(14) 27.5 < 30",
        deliveries=(
            DeliveryView("webhook", "sent", 1, None, ms("2024-10-16T00:05:01Z")),
            DeliveryView("telegram", "failed", 3, "HTTP 403", None),
        ),
    )


# Each user's alerts, newest first, as the Notifier would keep them.
ALERTS = {7: (view(12), view(11, strategy_id=4, symbol="ETH")), 8: (view(13, symbol="DOGE"),)}


@pytest.fixture
def client(canned: Canned) -> TestClient:
    canned.answer = lambda m: ALERTS.get(m.user_id, ())[: m.limit]
    return TestClient(create_app(canned.gateway))


def test_the_alerts_of_the_user_newest_first_with_their_deliveries(client, canned) -> None:
    result = client.simulate_get("/v1/me/alerts", headers=ALICE)
    assert result.status_code == 200, result.text
    assert result.headers["cache-control"] == "no-store"
    alerts = result.json["alerts"]
    assert [a["id"] for a in alerts] == [12, 11]
    assert alerts[0] == {
        "id": 12,
        "strategy_id": 3,
        "strategy_name": "oversold",
        "coin_id": 1,
        "symbol": "BTC",
        "timeframe": "1h",
        "fired_at": "2024-10-16T00:05:00.012Z",
        "values": {"rsi(14)": 27.5, "percent_change_24h": None},
        "text": "BTC: rsi(14) 27.5 < 30",
        "replayed": False,
        "deliveries": [
            {
                "channel": "webhook",
                "status": "sent",
                "attempts": 1,
                "detail": None,
                "sent_at": "2024-10-16T00:05:01.000Z",
            },
            {"channel": "telegram", "status": "failed", "attempts": 3, "detail": "HTTP 403", "sent_at": None},
        ],
    }
    assert canned.asked == [GetAlerts(user_id=7, since_ms=None, strategy_id=None, limit=50)]


def test_a_user_never_sees_another_users_alerts(client, canned) -> None:
    bob = client.simulate_get("/v1/me/alerts", headers=BOB).json["alerts"]
    assert [a["id"] for a in bob] == [13]
    # The user comes from the token only; nothing in the request can name another user.
    sneaky = client.simulate_get("/v1/me/alerts", params={"user_id": "7"}, headers=BOB)
    assert (sneaky.status_code, sneaky.json["field"]) == (400, "user_id")
    assert [m.user_id for m in canned.asked] == [8]


def test_the_parameters_reach_the_notifier(client, canned) -> None:
    params = {"since": "2024-10-16T00:00:00Z", "strategy": "4", "limit": "500"}
    assert client.simulate_get("/v1/me/alerts", params=params, headers=ALICE).status_code == 200
    assert (
        client.simulate_get("/v1/me/alerts", params={"since": "1729036800000"}, headers=ALICE).status_code
        == 200
    )
    assert client.simulate_get("/v1/me/alerts", params={"before": "12"}, headers=ALICE).status_code == 200
    assert client.simulate_get("/v1/me/alerts", params={"coin": "1027"}, headers=ALICE).status_code == 200
    assert canned.asked == [
        GetAlerts(user_id=7, since_ms=ms("2024-10-16T00:00:00Z"), strategy_id=4, limit=500),
        GetAlerts(user_id=7, since_ms=1729036800000, strategy_id=None, limit=50),
        GetAlerts(user_id=7, since_ms=None, strategy_id=None, limit=50, before=12),
        GetAlerts(user_id=7, since_ms=None, strategy_id=None, limit=50, coin_id=1027),
    ]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"strategy": "0"}, "strategy"),
        ({"strategy": "x"}, "strategy"),
        ({"strategy": str(2**63)}, "strategy"),
        ({"since": "yesterday"}, "since"),
        ({"since": "99999999999999999999"}, "since"),
        ({"since": ""}, "since"),
        ({"before": "0"}, "before"),
        ({"coin": "x"}, "coin"),
        ({"coin": "0"}, "coin"),
        ({"limit": ["1", "2"]}, "limit"),
    ],
)
def test_bad_parameters_are_a_400_naming_them(client, canned, params, name) -> None:
    body = assert_error(client.simulate_get("/v1/me/alerts", params=params, headers=ALICE), 400)
    assert f'"{name}"' in body["description"]
    assert canned.asked == []


def test_alerts_need_a_valid_token(client, canned) -> None:
    assert_error(client.simulate_get("/v1/me/alerts"), 401)
    assert_error(client.simulate_get("/v1/me/alerts", headers={"Authorization": "Bearer nope"}), 401)
    # The stream's query-string token is for /v1/stream only.
    assert_error(client.simulate_get("/v1/me/alerts", params={"access_token": "token-of-7"}), 401)
    assert canned.asked == []


def test_without_a_notifier_the_route_answers_503_not_enabled(canned) -> None:
    gateway = canned.gateway
    bare = Gateway(
        container=gateway.container,
        history=gateway.history,
        monitor=gateway.monitor,
        clock=gateway.clock,
        users=gateway.users,
    )
    body = assert_error(TestClient(create_app(bare)).simulate_get("/v1/me/alerts", headers=ALICE), 503)
    assert body == {"title": "Not enabled", "description": "Alerts are not enabled in this process."}


def test_without_accounts_the_route_answers_503_not_enabled(canned) -> None:
    gateway = canned.gateway
    bare = Gateway(
        container=gateway.container, history=gateway.history, monitor=gateway.monitor, clock=gateway.clock
    )
    result = TestClient(create_app(bare)).simulate_get("/v1/me/alerts", headers=ALICE)
    assert assert_error(result, 503)["title"] == "Not enabled"
    assert "retry-after" not in result.headers


def test_a_stopped_notifier_is_a_503_busy(canned) -> None:
    stopped = CannedActor.start(lambda message: None)
    stopped.stop()
    gateway = canned.gateway
    bare = Gateway(
        container=gateway.container,
        history=gateway.history,
        monitor=gateway.monitor,
        clock=gateway.clock,
        users=gateway.users,
        notifier=stopped,
    )
    result = TestClient(create_app(bare)).simulate_get("/v1/me/alerts", headers=ALICE)
    assert assert_error(result, 503)["title"] == "Service busy"
    assert result.headers["retry-after"] == "2"
