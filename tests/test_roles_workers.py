# ruff: noqa: F811  (the deployment fixture of test_roles_cluster, imported, is a parameter here)
"""Scanner and notifier processes over real PostgreSQL and Redis: an engine that neither scans nor
delivers (``[cluster] scanners = external``, ``notifiers = external``), two scanners, two notifiers
and a gateway.

Strategies created through the gateway fire into a signed webhook: each ``once`` strategy exactly
once (no scanner scans it twice for a tick, none is left out), each ``once_per_bar`` strategy at most
once per bar. Then one scanner and one notifier are killed (``kill -9``) mid-run and more strategies
are created: the survivors take the dead ones' shares (the scanner's within 2 ticks) and claims
(after the lease); no alert is lost, and a delivery reaches the webhook twice only if the dead
notifier held it unsent when it died (the documented at-least-once window).

PostgreSQL (``UBOT_TEST_POSTGRES_URL``) and Redis (``UBOT_TEST_REDIS_URL``) as in
tests/test_roles_cluster.py (a schema and a key prefix of its own). Skipped only when unset.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import signal
import threading

import requests

from tests.fakes.webhook import FakeWebhook, Reply, Request
from tests.support.processes import Process, command, launch
from tests.support.waits import wait_until
from tests.test_roles_cluster import (  # noqa: F401  (pytestmark: skipped without the services)
    REDIS_URL,
    SECRET,
    TIMEOUT_S,
    Deployment,
    deployment,
    kill9,
    pytestmark,
    sign_up,
)
from ubot.bus.messages import decode

LEASE_S = 6  # [notify] lease_s: the dead notifier's claims are taken over after this


class Receiver(FakeWebhook):
    """A webhook that, while ``stalling``, holds every request unanswered (the notifier's attempt
    ends at its deadline, and the delivery is retried); otherwise accepts it (200) and counts its
    delivery key in ``accepted``: a key accepted twice was delivered twice."""

    def __init__(self) -> None:
        super().__init__()
        self.stalling = threading.Event()
        self.accepted: collections.Counter[str] = collections.Counter()

    def answer(self, request: Request) -> Reply:
        if self.stalling.is_set():
            self.release.wait(TIMEOUT_S)
            return Reply(503, "stalled")
        with self.lock:
            self.accepted[request.header("X-Ubot-Delivery") or ""] += 1
        return super().answer(request)


def start(deployment: Deployment, name: str, *args: str, **env: str) -> Process:
    argv = command(
        "--db", deployment.db_url, "--redis", REDIS_URL or "", "--interval", "1", "--limit", "20", *args
    )
    environment = deployment.env() | env
    process = launch(
        argv, deployment.tmp_path / f"{name}.log", cwd=deployment.tmp_path, env=environment, new_session=True
    )
    deployment.processes.append(process)
    return process


def roles(base: str) -> dict:
    return requests.get(base + "/health", timeout=TIMEOUT_S).json().get("roles") or {}


def member_of(base: str, group: str, pid: int) -> str:
    (member,) = [r["member"] for r in roles(base)[group] if r["member"].endswith(f"-{pid}")]
    return member


def create(base: str, token: str, name: str, frequency: str) -> int:
    created = requests.post(
        base + "/v1/me/strategies",
        json={
            "name": name,
            "condition": "price > 0",
            "timeframe": "1m",
            "symbols": ["BTC"],
            "channels": ["webhook"],
            "frequency": frequency,
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT_S,
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def ticks_naming(deployment: Deployment, member: str, after_ms: int) -> int:
    """How many TickReady published after ``after_ms`` (epoch ms) still name ``member``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL or "")
    try:
        entries = client.xrange(f"{deployment.prefix}:topic:ticks", min=f"({after_ms}-0")
    finally:
        client.close()
    return sum(member in decode(next(iter(fields.values()))).scanners for _, fields in entries)


def test_two_scanners_and_two_notifiers_share_the_work_and_survive_kill_9(deployment: Deployment) -> None:
    engine = start(
        deployment,
        "engine",
        "--role",
        "engine",
        UBOT_CLUSTER_SCANNERS="external",
        UBOT_CLUSTER_NOTIFIERS="external",
    )
    wait_until(lambda: "engine: active" in engine.log, "the engine to be active", TIMEOUT_S, alive=engine)
    lease = {"UBOT_NOTIFY_LEASE_S": str(LEASE_S), "UBOT_NOTIFY_ATTEMPT_DEADLINE_S": "2"}
    scanners = [start(deployment, f"scanner-{i}", "--role", "scanner") for i in (1, 2)]
    notifiers = [start(deployment, f"notifier-{i}", "--role", "notifier", **lease) for i in (1, 2)]
    gateway, base = deployment.gateway("gateway")
    wait_until(
        lambda: [len(roles(base).get(g, [])) for g in ("scanners", "notifiers")] == [2, 2],
        "two scanners and two notifiers in /health",
        TIMEOUT_S,
        alive=gateway,
    )
    scanner_members = [member_of(base, "scanners", p.proc.pid) for p in scanners]
    notifier_members = [member_of(base, "notifiers", p.proc.pid) for p in notifiers]
    # Both scanners in a tick's view, each owning some of the strategies once there are some.
    wait_until(
        lambda: {r["member"] for r in roles(base)["scanners"] if r.get("last_tick")} == set(scanner_members),
        "both scanners to receive ticks",
        TIMEOUT_S,
    )

    with Receiver() as hook:
        token = sign_up(base, hook.url())
        with hook.lock:  # the verification request: not an alert
            assert json.loads(hook.requests.pop(0).body)["event"] == "verification"
            hook.accepted.clear()
        once = [create(base, token, f"once {i}", "once") for i in range(6)]
        per_bar = [create(base, token, f"bar {i}", "once_per_bar") for i in range(4)]
        wait_until(
            lambda: {r[0] for r in deployment.query("SELECT strategy_id FROM alert")} >= set(once + per_bar),
            "every strategy to fire",
            TIMEOUT_S,
        )
        # Both scanners hold a share: each raised alerts of its own (its log names them). Not the
        # heartbeats' strategy counts: a share of `once` strategies only is empty again once they
        # fired and disabled themselves.
        wait_until(
            lambda: all("ubot.actors.notifier: alert " in scanner.log for scanner in scanners),
            "both scanners to hold a share",
            TIMEOUT_S,
        )

        # The receiver stalls: deliveries stay claimed, in flight.
        hook.stalling.set()
        once += [create(base, token, f"stalled {i}", "once") for i in range(6)]
        # The notifier to kill: one holding a claim in flight (whichever polled first may hold all).
        in_flight = (
            "SELECT claimed_by FROM delivery WHERE claimed_by IS NOT NULL AND status IN ('pending', 'held')"
            " AND lease_until IS NOT NULL"
        )
        ((dead_notifier,), *_) = wait_until(
            lambda: deployment.query(in_flight), "a notifier to hold a claim in flight", TIMEOUT_S
        )
        dead = notifier_members.index(dead_notifier)
        notifier, survivor = notifiers[dead], notifiers[1 - dead]
        dead_scanner = scanner_members[0]

        # kill -9 one scanner and one notifier, mid-run.
        killed_at_ms = int(deployment.query("SELECT (extract(epoch from now()) * 1000)::bigint")[0][0])
        kill9(scanners[0])
        kill9(notifier)
        # The at-least-once window: what the dead notifier held unsent (it may have been accepted).
        window = {
            key
            for (key,) in deployment.query(
                f"SELECT key FROM delivery WHERE claimed_by = '{dead_notifier}' AND status IN ('pending', 'held')"
            )
        }
        assert window
        once += [create(base, token, f"after {i}", "once") for i in range(4)]
        hook.stalling.clear()
        hook.release.set()
        wait_until(
            lambda: {r[0] for r in deployment.query("SELECT strategy_id FROM alert")} >= set(once),
            "the strategies created around the kills to fire",
            TIMEOUT_S,
            alive=scanners[1],
        )
        wait_until(
            lambda: [m["member"] for m in roles(base)["scanners"]] == [scanner_members[1]],
            "the dead scanner to leave the group",
            TIMEOUT_S,
        )
        # Its share was taken over within 2 ticks: at most 2 ticks after the kill still named it.
        assert ticks_naming(deployment, dead_scanner, killed_at_ms) <= 2
        wait_until(
            lambda: deployment.query("SELECT count(*) FROM delivery WHERE status <> 'sent'")[0][0] == 0,
            "every delivery sent (the dead notifier's after its lease)",
            TIMEOUT_S,
            alive=survivor,
        )

        # No alert lost or raised twice: each `once` strategy fired exactly once, each `once_per_bar`
        # at most once per bar.
        alerts = deployment.query("SELECT id, strategy_id, bar_open FROM alert")
        fired = collections.Counter(s for _, s, _ in alerts)
        assert all(fired[s] == 1 for s in once), fired
        per_bar_alerts = collections.Counter((s, bar) for _, s, bar in alerts if s in per_bar)
        assert set(per_bar_alerts.values()) == {1}, per_bar_alerts
        # Every delivery accepted by the webhook, signed; twice only inside the at-least-once window.
        keys = {key for (key,) in deployment.query("SELECT key FROM delivery")}
        assert len(keys) == len(alerts) and set(hook.accepted) == keys
        assert {key for key, n in hook.accepted.items() if n > 1} <= window
        for request in list(hook.requests):
            signature = request.header("X-Ubot-Signature")
            stamp = signature.removeprefix("t=").split(",", 1)[0]
            signed = f"{stamp}.".encode() + request.body
            assert signature.endswith(hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest())
            assert {a["id"] for a in json.loads(request.body)["alerts"]} <= {a for a, _, _ in alerts}
        # The dead notifier's claims were sent by the survivor, after the lease.
        taken_over = deployment.query(
            "SELECT DISTINCT claimed_by FROM delivery WHERE key IN ({})".format(
                ", ".join(f"'{k}'" for k in window)
            )
        )
        assert taken_over == [(notifier_members[1 - dead],)]

    for process in (scanners[1], survivor, engine, gateway):
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait_exit() == 0, process.tail()
