# ruff: noqa: F811  (the deployment fixture of test_roles_cluster, imported, is a parameter here)
"""A scanner killed mid-run (``kill -9``): the survivor takes its share over and scans, for the
strategies it received, every snapshot the dead one did not (their scan marks), so each fires for
the snapshots in between exactly once.

The strategies (``once_per_crossing`` on BTC's price) are a ladder of thresholds around its price
when they are created, spaced by a fraction of how far it moves in a tick (the simulated prices move
in straight lines between minute points), so that some are crossed in every tick. What each must
fire is computed from the prices stored with the snapshots: at every snapshot where its condition
turns true. Engine, two scanners and a gateway over PostgreSQL and Redis, as
tests/test_roles_workers.py.
"""

from __future__ import annotations

import collections
import signal

from tests.fakes.webhook import FakeWebhook
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

STEPS = 25  # thresholds each side of the price: 50 strategies (a user's most)

BTC = (
    "SELECT q.price, q.snapshot_id FROM quote q JOIN coin k ON k.id = q.coin_id"
    " WHERE k.symbol = 'BTC' ORDER BY q.snapshot_id DESC LIMIT 1"
)
PRICES = (
    "SELECT s.id, s.timestamp, q.price FROM quote q JOIN coin k ON k.id = q.coin_id"
    " JOIN snapshot s ON s.id = q.snapshot_id WHERE k.symbol = 'BTC' ORDER BY s.id"
)


def expected(condition: str, prices: list[tuple[int, int, float]], after: int) -> list[int]:
    """When a ``once_per_crossing`` strategy on ``price > x`` or ``price < x`` fires, for the
    snapshots after ``after`` (it was scanned there: its state is known)."""
    op, value = condition.split()[1], float(condition.split()[2])
    holds = [(sid, ts, price > value if op == ">" else price < value) for sid, ts, price in prices]
    return [ts for (_, _, was), (sid, ts, now) in zip(holds, holds[1:]) if sid > after and now and not was]


def create(base: str, token: str, name: str, condition: str) -> int:
    import requests

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
    engine = start(
        deployment,
        "engine",
        "--role",
        "engine",
        UBOT_CLUSTER_SCANNERS="external",
        UBOT_CLUSTER_NOTIFIERS="external",
    )
    wait_until(lambda: "engine: active" in engine.log, "the engine to be active", TIMEOUT_S, alive=engine)
    scanners = [start(deployment, f"scanner-{i}", "--role", "scanner") for i in (1, 2)]
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
        # How far BTC's price moves in a tick now (the simulated prices move in straight lines
        # between minute points): the ladder's step.
        (first, at) = deployment.query(BTC)[0]
        (second, _) = wait_until(
            lambda: [row for row in deployment.query(BTC) if row[1] > at], "a newer BTC price", TIMEOUT_S
        )[0]
        step = max(abs(second - first) * 0.4, second * 1e-7)
        conditions = [f"price > {second + k * step:.6f}" for k in range(1, STEPS // 2 + 1)]
        conditions += [f"price < {second - k * step:.6f}" for k in range(1, STEPS - STEPS // 2 + 1)]
        ids = [create(base, token, f"rung {i}", c) for i, c in enumerate(conditions)]
        listed = ", ".join(map(str, ids))
        # Every strategy scanned (armed) by its owner, then one scanner dies mid-run.
        wait_until(
            lambda: (
                deployment.query(f"SELECT count(*) FROM scan_mark WHERE strategy_id IN ({listed})")[0][0]
                == len(ids)
            ),
            "every strategy to be scanned once",
            TIMEOUT_S,
        )
        (armed,) = deployment.query(
            f"SELECT max(snapshot_id) FROM scan_mark WHERE strategy_id IN ({listed})"
        )[0]
        kill9(scanners[0])
        dead = {i for i in ids if owner(i, sorted(members)) == members[0]}
        assert dead and len(dead) < len(ids)
        (newest,) = deployment.query("SELECT max(id) FROM snapshot")[0]
        wait_until(
            lambda: (
                deployment.query(f"SELECT min(snapshot_id) FROM scan_mark WHERE strategy_id IN ({listed})")[
                    0
                ][0]
                >= newest + 4
            ),
            "the survivor to scan every strategy past the kill",
            TIMEOUT_S,
            alive=scanners[1],
        )
        (through,) = deployment.query(
            f"SELECT min(snapshot_id) FROM scan_mark WHERE strategy_id IN ({listed})"
        )[0]
        prices = [row for row in deployment.query(PRICES) if row[0] <= through]
        alerts = deployment.query(
            f"SELECT a.strategy_id, a.fired_at FROM alert a JOIN snapshot s ON s.timestamp = a.fired_at"
            f" WHERE s.id > {armed} AND s.id <= {through}"
        )

    fired = collections.defaultdict(list)
    for strategy_id, fired_at in alerts:
        fired[strategy_id].append(fired_at)
    wanted = {i: expected(c, prices, armed) for i, c in zip(ids, conditions)}
    # Exactly once at each crossing, whoever scanned it: the dead one, the survivor live, or the
    # survivor catching up the snapshots the dead one missed.
    assert {i: sorted(fired[i]) for i in ids} == wanted
    # Not vacuous: some of the dead one's strategies had crossings after its last scan of them, in
    # snapshots whose ticks still named it (scanned by the survivor's catch-up).
    (last_dead,) = deployment.query(
        f"SELECT max(snapshot_id) FROM scan_mark WHERE strategy_id IN ({listed})"
    )[0]
    assert last_dead >= through
    assert "catching up" in scanners[1].log
    assert any(wanted[i] for i in dead), wanted

    for process in (scanners[1], engine, gateway):
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait_exit() == 0, process.tail()
