# ruff: noqa: F811  (the deployment fixture of test_roles_cluster, imported, is a parameter here)
"""A scanner stopped dead mid-run and then killed (``SIGSTOP``, ``kill -9``): the survivor takes its
share over and scans, for the strategies it received, every snapshot the dead one did not (their
scan marks), so each fires for the snapshots in between exactly once.

The engine replays recordings in which BTC's price alternates between 100 and 102, one file a tick:
``price > 101`` turns true at every other snapshot, ``price < 101`` at the others, so each
snapshot is a crossing for half of the strategies (``once_per_crossing``), and a snapshot left
unscanned, or scanned twice, shows in when they fire. What each must fire is computed from the
prices stored with the snapshots. Engine, two scanners and a gateway over PostgreSQL and Redis, as
tests/test_roles_workers.py.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import time

import requests

from tests.fakes.webhook import FakeWebhook
from tests.models.conftest import coin, listings
from tests.support.metrics import parse, value
from tests.support.ports import free_port
from tests.support.waits import wait_until
from tests.test_roles_cluster import (  # noqa: F401  (pytestmark: skipped without the services)
    TIMEOUT_S,
    Deployment,
    deployment,
    kill9,
    pytestmark,
    sign_up,
)
from tests.test_roles_workers import member_of, roles, start
from ubot.scan.assign import owner

STRATEGIES = 50  # a user's most: half ``price > 101``, half ``price < 101``
FILES = 600  # ten minutes of one-second ticks: the replay outlasts the test

PRICES = (
    "SELECT s.id, q.price FROM quote q JOIN coin k ON k.id = q.coin_id"
    " JOIN snapshot s ON s.id = q.snapshot_id WHERE k.symbol = 'BTC' ORDER BY s.id"
)


def write_market(directory: str) -> None:
    """BTC at 100 and 102 in turn (and a second coin, steady), one file a second from now on."""
    os.makedirs(directory)
    start_ms = (int(time.time()) + 1) * 1000
    for i in range(FILES):
        items = [
            coin(1, 102.0 if i % 2 else 100.0, symbol="BTC", name="Bitcoin"),
            coin(2, 50.0, symbol="ETH"),
        ]
        with open(os.path.join(directory, f"{i:05d}.json"), "w", encoding="utf-8") as handle:
            json.dump(listings(start_ms + i * 1000, items), handle)


def expected(condition: str, prices: list[tuple[int, float]], after: int) -> list[int]:
    """The snapshots after ``after`` at which a ``once_per_crossing`` strategy on ``price > x``
    or ``price < x`` fires (it was scanned at ``after``: its state is known from there)."""
    _, op, value = condition.split()
    holds = [(sid, price > float(value) if op == ">" else price < float(value)) for sid, price in prices]
    return [sid for (_, was), (sid, now) in zip(holds, holds[1:]) if sid > after and now and not was]


def create(base: str, token: str, name: str, condition: str) -> int:
    created = requests.post(
        base + "/v1/me/strategies",
        json={
            "name": name,
            "condition": condition,
            "timeframe": "1m",
            "symbols": ["BTC"],
            "channels": ["webhook"],
            "frequency": "once_per_crossing",
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT_S,
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_a_killed_scanners_strategies_fire_for_the_snapshots_in_between_exactly_once(
    deployment: Deployment,
) -> None:
    market = str(deployment.tmp_path / "market")
    write_market(market)
    engine = start(
        deployment,
        "engine",
        "--role",
        "engine",
        "--source",
        "replay",
        "--replay-dir",
        market,
        UBOT_CLUSTER_SCANNERS="external",
        UBOT_CLUSTER_NOTIFIERS="external",
    )
    wait_until(lambda: "engine: active" in engine.log, "the engine to be active", TIMEOUT_S, alive=engine)
    metrics_at = free_port()  # the survivor's GET /metrics (--metrics)
    scanners = [
        start(deployment, "scanner-1", "--role", "scanner"),
        start(deployment, "scanner-2", "--role", "scanner", "--metrics", f"127.0.0.1:{metrics_at}"),
    ]
    gateway, base = deployment.gateway("gateway")
    wait_until(
        lambda: len([r for r in roles(base).get("scanners", []) if r.get("last_tick")]) == 2,
        "both scanners to receive ticks",
        TIMEOUT_S,
        alive=gateway,
    )
    members = [member_of(base, "scanners", p.proc.pid) for p in scanners]

    with FakeWebhook() as hook:
        token = sign_up(base, hook.url())
        conditions = [("price > 101", "price < 101")[i % 2] for i in range(STRATEGIES)]
        ids = [create(base, token, f"turn {i}", c) for i, c in enumerate(conditions)]
    listed = ", ".join(map(str, ids))
    dead = {i for i in ids if owner(i, sorted(members)) == members[0]}
    assert dead and len(dead) < len(ids)
    # Every strategy scanned (armed) by its owner, then one scanner stops dead, mid-run.
    wait_until(
        lambda: (
            deployment.query(f"SELECT count(*) FROM scan_mark WHERE strategy_id IN ({listed})")[0][0]
            == len(ids)
        ),
        "every strategy to be scanned once",
        TIMEOUT_S,
    )
    (armed,) = deployment.query(f"SELECT max(snapshot_id) FROM scan_mark WHERE strategy_id IN ({listed})")[0]
    scanners[0].proc.send_signal(signal.SIGSTOP)
    # Its heartbeat ends; the ticks still naming it meanwhile are not scanned for its share until
    # the survivor, taking the share over, catches them up.
    wait_until(
        lambda: [m["member"] for m in roles(base)["scanners"]] == [members[1]],
        "the stopped scanner to leave the group",
        TIMEOUT_S,
        alive=scanners[1],
    )
    kill9(scanners[0])
    (newest,) = deployment.query("SELECT max(id) FROM snapshot")[0]
    wait_until(
        lambda: (
            deployment.query(f"SELECT min(snapshot_id) FROM scan_mark WHERE strategy_id IN ({listed})")[0][0]
            >= newest + 2
        ),
        "the survivor to scan every strategy past the kill",
        TIMEOUT_S,
        alive=scanners[1],
    )
    (through,) = deployment.query(f"SELECT min(snapshot_id) FROM scan_mark WHERE strategy_id IN ({listed})")[
        0
    ]
    prices = [row for row in deployment.query(PRICES) if row[0] <= through]
    alerts = deployment.query(
        "SELECT a.strategy_id, s.id FROM alert a JOIN snapshot s ON s.timestamp = a.fired_at"
        f" WHERE s.id > {armed} AND s.id <= {through}"
    )

    fired = collections.defaultdict(list)
    for strategy_id, snapshot_id in alerts:
        fired[strategy_id].append(snapshot_id)
    assert "catching up" in scanners[1].log
    # Exactly once at each crossing, whoever scanned it: the stopped one before it stopped, the
    # survivor live, or the survivor catching up the snapshots the stopped one missed.
    assert {i: sorted(fired[i]) for i in ids} == {
        i: expected(c, prices, armed) for i, c in zip(ids, conditions)
    }

    # What the survivor says of itself: its heartbeat's scan time, its scans on its metrics address.
    (beat,) = roles(base)["scanners"]
    assert beat["member"] == members[1] and beat["scan_ms"] > 0
    served = parse(requests.get(f"http://127.0.0.1:{metrics_at}/metrics", timeout=TIMEOUT_S).text)
    assert value(served, "ubot_scans_total", outcome="scanned") >= through - armed

    for process in (scanners[1], engine, gateway):
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait_exit() == 0, process.tail()
