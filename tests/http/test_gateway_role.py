"""A gateway role's app (no pipeline actor): /health from its bus and the latest document; the
snapshot from the bus; the database's answers through the History actor."""

from __future__ import annotations

import msgspec
from falcon.testing import TestClient

from tests.support.ports import refused_port
from ubot.bus import SNAPSHOT, InProcessBus, SnapshotDocument
from ubot.http.app import create_app
from ubot.http.gateway import Gateway
from ubot.http.shapes import GatewayHealth
from ubot.stream.hub import StreamHub
from ubot.stream.latest import LatestSnapshot
from ubot.system import AlertOptions, start_gateway_actors

BODY = b'{"timestamp":"2024-03-10T00:00:00.000Z","convert":"USD","global":null,"coins":[]}'


def app_over(bus, db):
    actors = start_gateway_actors(db, convert="USD", alerts=AlertOptions(), on_changed=lambda user_id: None)
    gateway = Gateway(
        container=None,
        history=actors.history,
        monitor=None,
        clock=None,
        users=actors.users,
        notifier=actors.history,
        snapshots=LatestSnapshot(bus),
    )
    return actors, TestClient(create_app(gateway, hub=StreamHub(bus).start()))


def test_health_is_starting_then_ok_and_the_snapshot_is_the_buss_document(db) -> None:
    bus = InProcessBus()
    actors, client = app_over(bus, db)
    try:
        starting = client.simulate_get("/health")
        assert starting.status_code == 503
        assert starting.json == {
            "status": "starting",
            "role": "gateway",
            "bus": {"kind": "in-process", "connected": True, "error": None},
            "last_snapshot_at": None,
            "roles": {"engines": [], "scanners": [], "notifiers": []},
        }
        assert client.simulate_get("/v1/snapshot").status_code == 503  # no snapshot yet
        bus.set_latest(SNAPSHOT, SnapshotDocument('"abc-1"', BODY, 7, 1_710_028_800_000))
        ok = client.simulate_get("/health")
        assert ok.status_code == 200
        assert ok.json["status"] == "ok" and ok.json["last_snapshot_at"] == "2024-03-10T00:00:00.000Z"
        served = client.simulate_get("/v1/snapshot")
        assert served.status_code == 200 and served.content == BODY and served.headers["etag"] == '"abc-1"'
        assert (
            client.simulate_get("/v1/me/alerts").status_code == 401
        )  # accounts are served: a token is asked
    finally:
        actors.stop()
        bus.close()


def test_health_is_degraded_while_redis_does_not_answer(db) -> None:
    from ubot.bus.redis_streams import RedisBus

    with refused_port() as port:
        bus = RedisBus(f"redis://127.0.0.1:{port}/0", timeout_s=0.2)
        gateway = Gateway(
            container=None, history=None, monitor=None, clock=None, snapshots=LatestSnapshot(bus)
        )  # type: ignore[arg-type]
        status, doc = gateway.health()
        bus.close()
    assert status == 503
    assert doc["status"] == "degraded" and doc["bus"]["connected"] is False
    assert doc["bus"]["error"]


def test_health_lists_each_engines_scanners_and_notifiers_heartbeat(db) -> None:
    from ubot.clocks import FakeClock
    from ubot.heartbeat import Heartbeat

    bus = InProcessBus()
    actors, client = app_over(bus, db)
    clock = FakeClock(1_710_028_800.0)
    try:
        figures = {"last_tick": 12, "snapshot_id": 40, "strategies": 7, "lag_ms": 0, "scan_ms": 41.5}
        Heartbeat(bus, "scanner", "scanner-a-1", 10.0, lambda: figures, clock).beat()
        Heartbeat(bus, "notifier", "notifier-b-2", 10.0, lambda: {"claims": 3}, clock).beat()
        Heartbeat(bus, "engine", "engine-c-3", 10.0, lambda: {"state": "active"}, clock).beat()
        Heartbeat(bus, "engine", "engine-d-4", 10.0, lambda: {"state": "standby"}, clock).beat()
        health = client.simulate_get("/health").json
        msgspec.convert(health, GatewayHealth)  # the shape the OpenAPI document declares
        roles = health["roles"]
        assert roles == {
            "engines": [
                {"role": "engine", "member": "engine-c-3", "at_ms": 1_710_028_800_000, "state": "active"},
                {"role": "engine", "member": "engine-d-4", "at_ms": 1_710_028_800_000, "state": "standby"},
            ],
            "scanners": [{"role": "scanner", "member": "scanner-a-1", "at_ms": 1_710_028_800_000, **figures}],
            "notifiers": [
                {"role": "notifier", "member": "notifier-b-2", "at_ms": 1_710_028_800_000, "claims": 3}
            ],
        }
    finally:
        actors.stop()
        bus.close()


def test_the_openapi_document_declares_the_gateways_health_with_the_roles() -> None:
    from ubot.http import openapi

    doc = openapi.document()
    answers = doc["paths"]["/health"]["get"]["responses"]
    refs = [one["$ref"] for one in answers["200"]["content"]["application/json"]["schema"]["anyOf"]]
    assert refs == ["#/components/schemas/Health", "#/components/schemas/GatewayHealth"]
    schemas = doc["components"]["schemas"]
    roles = schemas["GatewayHealth"]["properties"]["roles"]
    assert {"$ref": "#/components/schemas/RolesHealth"} in roles["anyOf"]
    assert schemas["RolesHealth"]["properties"]["scanners"]["items"] == {
        "$ref": "#/components/schemas/RoleBeat"
    }
    assert {"member", "at_ms", "state", "strategies", "claims", "lag_ms", "scan_ms"} <= set(
        schemas["RoleBeat"]["properties"]
    )
