# ruff: noqa: F811  (the deployment fixture of test_roles_cluster, imported, is a parameter here)
"""A scanner stopped dead mid-run, while it writes a scan, and then killed (``SIGSTOP``, ``kill -9``):
the survivor takes its share over and scans, for the strategies it received, every snapshot the dead
one did not (their scan marks), so each fires for the snapshots in between exactly once.

The engine replays recordings in which BTC's price alternates between 100 and 102, one file a tick:
``price > 101`` turns true at every other snapshot, ``price < 101`` at the others, so each
snapshot is a crossing for half of the strategies (``once_per_crossing``), and a snapshot left
unscanned, or scanned twice, shows in when they fire. What each must fire is computed from the
prices stored with the snapshots. Engine, two scanners and a gateway over PostgreSQL and Redis, as
tests/test_roles_cluster.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import psycopg2
import requests

from tests.fakes.webhook import FakeWebhook
from tests.models.conftest import coin, listings
from tests.support.metrics import parse, value
from tests.support.pglocks import waiting_for
from tests.support.ports import free_port
from tests.support.waits import wait_until
from tests.test_roles_cluster import (  # noqa: F401  (pytestmark: skipped without the services)
    TIMEOUT_S,
    Deployment,
    create,
    crossings,
    deployment,
    kill9,
    member_of,
    pytestmark,
    roles,
    scan_marks,
    sign_up,
)
from ubot.models.alerts import member_watermark
from ubot.scan.assign import owner

STRATEGIES = 50  # a user's most: half ``price > 101``, half ``price < 101``
FILES = 600  # ten minutes of one-second ticks: the replay outlasts the test


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


TAKEN_OVER = re.compile(
    r"strategy\(ies\) taken over at snapshot (\d+), .*\(scan marks (?:(\d+) to \d+|none)\)"
)

CAUGHT_UP = re.compile(r"scanner: catching up \d+ snapshot\(s\) before (\d+) ")


def taken_over(log: str) -> tuple[int, int | None]:
    """The snapshot of a scanner's last takeover (its log), and the oldest scan mark it took over."""
    found = TAKEN_OVER.findall(log)
    assert found, log
    snapshot_id, low = found[-1]
    return int(snapshot_id), int(low) if low else None


def test_a_killed_scanners_strategies_fire_for_the_snapshots_in_between_exactly_once(
    deployment: Deployment,
) -> None:
    market = str(deployment.tmp_path / "market")
    write_market(market)
    engine = deployment.start(
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
        deployment.start("scanner-1", "--role", "scanner"),
        deployment.start("scanner-2", "--role", "scanner", "--metrics", f"127.0.0.1:{metrics_at}"),
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
        ids = [create(base, token, f"turn {i}", "once_per_crossing", c) for i, c in enumerate(conditions)]
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
    # Stopped while it writes a scan: its share's scan marks locked here, its next scan's write waits
    # for them. Stopped at any other moment, its heartbeat (a TTL of one interval) may expire before
    # the next tick, and no snapshot is left for the survivor to catch up.
    holder = psycopg2.connect(deployment.db_url)
    try:
        with holder.cursor() as cursor:
            cursor.execute(
                "SELECT strategy_id FROM scan_mark WHERE strategy_id IN %s FOR UPDATE", (tuple(sorted(dead)),)
            )
        wait_until(
            lambda: waiting_for(holder, holder.get_backend_pid()),
            "the scanner's write to wait for its share's scan marks",
            TIMEOUT_S,
            alive=scanners[0],
        )
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
    finally:
        holder.close()
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
    through = scan_marks(deployment, ids)[1]
    # The survivor took the share over at a tick that no longer named the stopped scanner, with the
    # scan marks the stopped one wrote (at least its watermark: every scan it finished); a tick had
    # named it after them (the scan it was stopped in): the survivor caught that one up.
    named = max(t.snapshot_id for t in deployment.ticks() if members[0] in t.scanners)
    taken_at, low = taken_over(scanners[1].log)
    (scanned,) = deployment.query(f"SELECT value FROM meta WHERE key = '{member_watermark(members[0])}'")[0]
    assert low is not None and int(scanned) <= low < named < taken_at
    assert any(i >= taken_at for i in map(int, CAUGHT_UP.findall(scanners[1].log))), scanners[1].tail()
    # Exactly once at each crossing, whoever scanned it: the stopped one before it stopped, the
    # survivor live, or the survivor catching up the snapshots the stopped one missed.
    crossings(deployment, ids, conditions, armed, through)

    # What the survivor says of itself: its heartbeat's scan time, its scans on its metrics address.
    (beat,) = roles(base)["scanners"]
    assert beat["member"] == members[1] and beat["scan_ms"] > 0
    served = parse(requests.get(f"http://127.0.0.1:{metrics_at}/metrics", timeout=TIMEOUT_S).text)
    assert value(served, "ubot_scans_total", outcome="scanned") >= through - armed

    for process in (scanners[1], engine, gateway):
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait_exit() == 0, process.tail()
