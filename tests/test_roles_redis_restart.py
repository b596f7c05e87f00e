# ruff: noqa: F811  (the deployment fixture of test_roles_cluster, imported, is a parameter here)
"""Redis restarts under a running deployment (issue 11): an engine that neither scans nor delivers,
a scanner, a notifier and a gateway, all on a redis-server of the test's own (the machine's shared
one is never stopped). Redis is killed mid-run (``kill -9``, nothing saved) while ticks go on, a
strategy is created through the gateway meanwhile, then Redis starts again, empty, on the same port.

Asserted: the engine kept storing a snapshot every tick (none lost in PostgreSQL) and logged the
outage once instead of a failure per tick; the gateway's ``/health`` said ``degraded`` during the
outage and ``ok`` after; the scanner scanned the snapshots stored while Redis was away (it says so)
and the strategy created meanwhile fired into the webhook; the gateway serves the newest snapshot.

PostgreSQL (``UBOT_TEST_POSTGRES_URL``, a schema of its own) as in tests/test_roles_cluster.py;
skipped when it or ``UBOT_TEST_REDIS_URL`` is unset, or when ``redis-server`` is not installed.
"""

from __future__ import annotations

import re

import requests

from tests.fakes.webhook import FakeWebhook
from tests.support.own_redis import OwnRedis, own_redis  # noqa: F401  (a fixture)
from tests.support.ports import free_port
from tests.support.processes import Process, command, launch
from tests.support.waits import wait_until
from tests.test_roles_cluster import (  # noqa: F401  (pytestmark: skipped without the services)
    TIMEOUT_S,
    Deployment,
    create,
    deployment,
    pytestmark,
    sign_up,
)
from ubot.timeutil import iso_from_ms


def start(deployment: Deployment, redis: OwnRedis, name: str, *args: str, **env: str) -> Process:
    argv = command("--db", deployment.db_url, "--redis", redis.url, "--interval", "1", "--limit", "20", *args)
    process = launch(
        argv,
        deployment.tmp_path / f"{name}.log",
        cwd=deployment.tmp_path,
        env=deployment.env() | env,
        new_session=True,
    )
    deployment.processes.append(process)
    return process


def health(base: str) -> tuple[int, dict]:
    try:
        answer = requests.get(base + "/health", timeout=5)
    except requests.ConnectionError:
        return 0, {}
    return answer.status_code, answer.json()


def snapshots(deployment: Deployment) -> list[tuple[int, int]]:
    return [(i, t) for i, t in deployment.query("SELECT id, timestamp FROM snapshot ORDER BY id")]


def test_a_redis_restart_loses_nothing_kept(deployment: Deployment, own_redis: OwnRedis) -> None:
    external = {"UBOT_CLUSTER_SCANNERS": "external", "UBOT_CLUSTER_NOTIFIERS": "external"}
    engine = start(deployment, own_redis, "engine", "--role", "engine", **external)
    wait_until(lambda: "engine: active" in engine.log, "the engine to be active", TIMEOUT_S, alive=engine)
    scanner = start(deployment, own_redis, "scanner", "--role", "scanner")
    start(deployment, own_redis, "notifier", "--role", "notifier")
    port = free_port()
    gateway = start(deployment, own_redis, "gateway", "--role", "gateway", "--bind", f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: health(base)[0] == 200, "the gateway to be ok", TIMEOUT_S, alive=gateway)
    wait_until(
        lambda: any(r.get("last_tick") for r in (health(base)[1].get("roles") or {}).get("scanners", [])),
        "the scanner to be told of ticks",
        TIMEOUT_S,
        alive=scanner,
    )

    with FakeWebhook() as hook:
        token = sign_up(base, hook.url())
        before_id = create(base, token, "before", "once")  # fires at once, through Redis (the baseline)
        create(base, token, "always", "once_per_bar")  # the scanner has work every tick

        def fired(strategy_id: int) -> bool:
            # (the first request is the webhook's verification: no strategy)
            return any(r.json().get("strategy_id") == strategy_id for r in list(hook.requests))

        wait_until(lambda: fired(before_id), "the first strategy's alert", TIMEOUT_S, alive=scanner)

        before = snapshots(deployment)
        own_redis.stop()
        wait_until(lambda: health(base)[0] == 503, "the gateway to say degraded", TIMEOUT_S, alive=gateway)
        status, doc = health(base)
        assert doc["status"] == "degraded" and doc["bus"]["connected"] is False
        # A strategy saved while Redis is away: the change notice cannot be published.
        during = create(base, token, "during", "once")
        wait_until(
            lambda: len(snapshots(deployment)) >= len(before) + 3,
            "three ticks stored while Redis is down",
            TIMEOUT_S,
            alive=engine,
        )
        own_redis.start()  # empty, same port

        wait_until(lambda: health(base)[0] == 200, "the gateway to be ok again", TIMEOUT_S, alive=gateway)
        wait_until(lambda: fired(during), "the alert of the strategy saved meanwhile", TIMEOUT_S)

    stored = snapshots(deployment)
    # a snapshot every tick throughout: one second apart, none missing around the outage
    gaps = [b - a for (_, a), (_, b) in zip(stored, stored[1:])]
    assert all(gap == 1000 for gap in gaps), gaps
    # It scanned them from PostgreSQL: as snapshots never announced, or, when the engine ticked before
    # the scanner's heartbeat put it back in the emptied Redis (a loaded machine), as the backlog of
    # the share it then took over again.
    assert re.search(r"never announced on the bus|catching up \d+ snapshot\(s\) before", scanner.log), (
        scanner.tail()
    )
    assert engine.log.count("is down (") == 1, engine.tail()  # the outage said once
    assert "publishing snapshot" not in engine.log  # no failure per tick

    def newest_served() -> bool:
        served = requests.get(base + "/v1/snapshot", timeout=5)
        return served.status_code == 200 and served.json()["timestamp"] >= iso_from_ms(stored[-1][1])

    wait_until(newest_served, "the gateway to serve a snapshot stored after the restart", TIMEOUT_S)
