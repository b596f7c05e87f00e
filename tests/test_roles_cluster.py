"""uBot as separate processes over real PostgreSQL and Redis, every role twice: an engine and a
standby (neither scans nor delivers: ``[cluster] scanners = external``, ``notifiers = external``), two
scanners, two notifiers and two gateways (issue 11).

A strategy created through gateway A fires once into a signed webhook and shows on a stream opened on
gateway B. Then, in turn, ``kill -9`` of the active engine (the standby takes over within 2
intervals, no snapshot lost or stored twice), of one scanner and one notifier (the survivors take the
scanner's share within 2 ticks and the notifier's claims after the lease) and of gateway B (the stream
resumes on gateway A from its ``Last-Event-ID``, nothing missed). Throughout: each ``once`` strategy
fires exactly once, each ``once_per_bar`` at most once per bar, each ``once_per_crossing`` at exactly
the crossings of the prices stored with the snapshots; a delivery reaches the webhook twice only if
the dead notifier held it unsent when it died (the documented at-least-once window).

PostgreSQL (``UBOT_TEST_POSTGRES_URL``) and Redis (``UBOT_TEST_REDIS_URL``) are shared: each test
uses a schema and a key prefix of its own, and removes both at the end. Skipped only when unset.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.fakes.webhook import FakeWebhook, Reply, Request
from tests.support.cluster import PASSWORD, TIMEOUT_S, account, private_space, wait_serving
from tests.support.ports import free_port
from tests.support.processes import Process, command, environment, launch
from tests.support.waits import wait_until
from tests.test_stream_e2e import EventReader
from ubot.bus import EntryId
from ubot.bus.messages import TICKS, TickReady, decode
from ubot.models.candle_store import WATERMARK

POSTGRES_URL = os.environ.get("UBOT_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("UBOT_TEST_REDIS_URL")
pytestmark = pytest.mark.skipif(
    not (POSTGRES_URL and REDIS_URL), reason="UBOT_TEST_POSTGRES_URL or UBOT_TEST_REDIS_URL is not set"
)

INTERVAL_S = 1
SECRET = "s3cret-s3cret-s3cret"


@dataclass
class Deployment:
    tmp_path: Path
    db_url: str
    schema: str
    prefix: str
    processes: list[Process] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return environment(
            self.tmp_path / "home",
            {
                "UBOT_CLUSTER_REDIS_PREFIX": self.prefix,
                "UBOT_NOTIFY_WEBHOOK_ALLOW_PRIVATE": "true",  # the fake webhook is on 127.0.0.1
                "UBOT_NOTIFY_BACKOFF_S": "0.2",
                "UBOT_NOTIFY_BACKOFF_MAX_S": "0.2",
                "UBOT_LIMITS_ENABLED": "false",
                # a checked token is kept 5 minutes: a refusal within a test's wait is the bus's doing
                "UBOT_ACCOUNTS_SESSION_CACHE_S": "300",
            },
        )

    def start(self, name: str, *args: str, **env: str) -> Process:
        """``run.py`` with this deployment's database, Redis and interval, ``args``, and ``env`` added
        to its environment."""
        argv = command(
            "--db",
            self.db_url,
            "--redis",
            REDIS_URL or "",
            "--interval",
            str(INTERVAL_S),
            "--limit",
            "20",
            *args,
        )
        process = launch(
            argv, self.tmp_path / f"{name}.log", cwd=self.tmp_path, env=self.env() | env, new_session=True
        )
        self.processes.append(process)
        return process

    def engine(self, name: str, **env: str) -> Process:
        return self.start(name, "--role", "engine", **env)

    def gateway(self, name: str) -> tuple[Process, str]:
        port = free_port()
        process = self.start(name, "--role", "gateway", "--bind", f"127.0.0.1:{port}")
        base = f"http://127.0.0.1:{port}"
        wait_serving(base, process, name)
        return process, base

    def events_after(self, entry_id: str, count: int) -> list[EntryId]:
        """The ids of the ``events`` topic's next ``count`` entries after ``entry_id`` (in Redis)."""
        import redis

        client = redis.Redis.from_url(REDIS_URL or "")
        try:
            found = client.xrange(f"{self.prefix}:topic:events", min=f"({entry_id}", count=count)
        finally:
            client.close()
        return [EntryId.parse(i) for i, _ in found]

    def ticks(self) -> list[TickReady]:
        """Every ``TickReady`` the engine published so far (the ``ticks`` topic, in Redis), oldest first."""
        import redis

        client = redis.Redis.from_url(REDIS_URL or "")
        try:
            found = client.xrange(f"{self.prefix}:topic:{TICKS}")
        finally:
            client.close()
        return [m for m in (decode(fields[b"m"]) for _, fields in found) if isinstance(m, TickReady)]

    def query(self, sql: str) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(self.db_url) as conn, conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetchall()


def kill9(process: Process) -> None:
    """``kill -9`` of the process and its children (a gateway's gunicorn worker too)."""
    os.killpg(process.proc.pid, signal.SIGKILL)
    process.proc.wait(timeout=TIMEOUT_S)


@pytest.fixture
def deployment(tmp_path) -> Iterator[Deployment]:
    (tmp_path / "home").mkdir()
    with private_space(POSTGRES_URL or "", REDIS_URL or "", "ubot_roles") as space:
        found = Deployment(tmp_path, space.db_url, space.schema, space.prefix)
        try:
            yield found
        finally:
            for process in found.processes:
                process.close()


class Collector:
    """A stream read in a thread: every event, in order (heartbeats skipped), until it ends."""

    def __init__(self, base: str, token: str, last_event_id: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        response = requests.get(base + "/v1/stream", headers=headers, stream=True, timeout=TIMEOUT_S)
        assert response.status_code == 200, response.text
        self.reader = EventReader(response)
        self.head = self.reader.next()
        self.events: list[dict[str, str]] = []
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            while (message := self.reader.next()) is not None:
                if "event" in message:
                    self.events.append(message)
        except (requests.RequestException, OSError, AttributeError):  # closed under the reader
            pass
        finally:
            self.ended.set()

    def of(self, kind: str) -> list[dict[str, str]]:
        return [e for e in list(self.events) if e["event"] == kind]

    def close(self) -> None:
        self.reader.close()


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


def sign_up(base: str, hook_url: str) -> str:
    """A user whose webhook is ``hook_url``, verified (its receiver got the verification request)."""
    token = account(base)
    settings = requests.put(
        base + "/v1/me/settings",
        json={"webhook_url": hook_url, "webhook_secret": SECRET},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT_S,
    )
    assert settings.status_code == 200, settings.text
    verified = requests.post(
        base + "/v1/me/destinations/webhook/verify",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT_S,
    )
    assert verified.status_code == 200 and verified.json()["state"] == "verified", verified.text
    return token


def create(base: str, token: str, name: str, frequency: str, condition: str = "price > 0") -> int:
    """A strategy on BTC's 1m candles into the webhook: its id."""
    created = requests.post(
        base + "/v1/me/strategies",
        json={
            "name": name,
            "condition": condition,
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


def signed(request: Request) -> bool:
    """``X-Ubot-Signature: t=<unix seconds>,v1=<HMAC-SHA256 of "<t>.<body>">`` with :data:`SECRET`."""
    signature = request.header("X-Ubot-Signature") or ""
    stamp = signature.removeprefix("t=").split(",", 1)[0]
    digest = hmac.new(SECRET.encode(), f"{stamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    return signature == f"t={stamp},v1={digest}"


def roles(base: str) -> dict:
    return requests.get(base + "/health", timeout=TIMEOUT_S).json().get("roles") or {}


def member_of(base: str, group: str, pid: int) -> str:
    (member,) = [r["member"] for r in roles(base)[group] if r["member"].endswith(f"-{pid}")]
    return member


def ticks_naming(deployment: Deployment, member: str, after_ms: int) -> int:
    """How many TickReady published after ``after_ms`` (epoch ms) still name ``member``."""
    import redis

    client = redis.Redis.from_url(REDIS_URL or "")
    try:
        entries = client.xrange(f"{deployment.prefix}:topic:ticks", min=f"({after_ms}-0")
    finally:
        client.close()
    return sum(member in decode(next(iter(fields.values()))).scanners for _, fields in entries)


def snapshot_times(deployment: Deployment) -> list[int]:
    return [row[0] for row in deployment.query("SELECT timestamp FROM snapshot ORDER BY timestamp")]


#: BTC's stored price at each snapshot, oldest first: ``(snapshot id, price)``.
PRICES = (
    "SELECT s.id, q.price FROM quote q JOIN coin k ON k.id = q.coin_id"
    " JOIN snapshot s ON s.id = q.snapshot_id WHERE k.symbol = 'BTC' ORDER BY s.id"
)


def expected(condition: str, prices: list[tuple[int, float]], after: int) -> list[int]:
    """The snapshots after ``after`` at which a ``once_per_crossing`` strategy on ``price > x``
    or ``price < x`` fires (it was scanned at ``after``: its state is known from there)."""
    _, op, value = condition.split()
    holds = [(sid, price > float(value) if op == ">" else price < float(value)) for sid, price in prices]
    return [sid for (_, was), (sid, now) in zip(holds, holds[1:]) if sid > after and now and not was]


def crossings(
    deployment: Deployment, ids: list[int], conditions: list[str], armed: int, through: int
) -> None:
    """Each ``once_per_crossing`` strategy of ``ids`` fired exactly at the crossings of BTC's stored
    prices after ``armed`` (every one scanned by then) through ``through`` (every one scanned)."""
    prices = [row for row in deployment.query(PRICES) if row[0] <= through]
    listed = ", ".join(map(str, ids))
    alerts = deployment.query(
        "SELECT a.strategy_id, s.id FROM alert a JOIN snapshot s ON s.timestamp = a.fired_at"
        f" WHERE a.strategy_id IN ({listed}) AND s.id > {armed} AND s.id <= {through}"
    )
    fired = collections.defaultdict(list)
    for strategy_id, snapshot_id in alerts:
        fired[strategy_id].append(snapshot_id)
    assert {i: sorted(fired[i]) for i in ids} == {
        i: expected(c, prices, armed) for i, c in zip(ids, conditions)
    }


def scan_marks(deployment: Deployment, ids: list[int]) -> tuple[int, int | None, int | None]:
    """How many of ``ids`` have a scan mark, the oldest and the newest."""
    listed = ", ".join(map(str, ids))
    return deployment.query(
        f"SELECT count(*), min(snapshot_id), max(snapshot_id) FROM scan_mark WHERE strategy_id IN ({listed})"
    )[0]


def fired(deployment: Deployment, ids: list[int]) -> bool:
    return {r[0] for r in deployment.query("SELECT DISTINCT strategy_id FROM alert")} >= set(ids)


LEASE_S = 6  # [notify] lease_s: a dead notifier's claims are taken over after this
#: The engines neither scan nor deliver: the scanner and notifier processes do.
EXTERNAL = {"UBOT_CLUSTER_SCANNERS": "external", "UBOT_CLUSTER_NOTIFIERS": "external"}


def test_every_role_twice_survives_kill_9_of_each_in_turn(deployment: Deployment) -> None:
    interval_ms = INTERVAL_S * 1000
    active = deployment.engine("engine-a", **EXTERNAL)
    wait_until(lambda: "engine: active" in active.log, "engine A to be active", TIMEOUT_S, alive=active)
    standby = deployment.engine("engine-b", **EXTERNAL)
    wait_until(lambda: "engine: standby" in standby.log, "engine B to stand by", TIMEOUT_S, alive=standby)
    lease = {"UBOT_NOTIFY_LEASE_S": str(LEASE_S), "UBOT_NOTIFY_ATTEMPT_DEADLINE_S": "2"}
    scanners = [deployment.start(f"scanner-{i}", "--role", "scanner") for i in (1, 2)]
    notifiers = [deployment.start(f"notifier-{i}", "--role", "notifier", **lease) for i in (1, 2)]
    gateway_a, base_a = deployment.gateway("gateway-a")
    gateway_b, base_b = deployment.gateway("gateway-b")
    wait_until(
        lambda: [len(roles(base_a).get(g, [])) for g in ("engines", "scanners", "notifiers")] == [2, 2, 2],
        "two engines, two scanners and two notifiers in /health",
        TIMEOUT_S,
        alive=gateway_a,
    )
    engines = [member_of(base_a, "engines", p.proc.pid) for p in (active, standby)]
    assert {r["member"]: r["state"] for r in roles(base_a)["engines"]} == dict(
        zip(engines, ("active", "standby"))
    )
    scanner_members = [member_of(base_a, "scanners", p.proc.pid) for p in scanners]
    notifier_members = [member_of(base_a, "notifiers", p.proc.pid) for p in notifiers]
    wait_until(
        lambda: (
            {r["member"] for r in roles(base_a)["scanners"] if r.get("last_tick")} == set(scanner_members)
        ),
        "both scanners to receive ticks",
        TIMEOUT_S,
    )

    with Receiver() as hook:
        # A strategy created through gateway A fires into the signed webhook and shows on a stream
        # opened on gateway B.
        token = sign_up(base_a, hook.url())
        with hook.lock:  # the verification request: not an alert
            assert json.loads(hook.requests.pop(0).body)["event"] == "verification"
            hook.accepted.clear()
        stream = Collector(base_b, token)
        once = [create(base_a, token, "first", "once")]
        (alert,) = wait_until(lambda: stream.of("alert"), "the alert event on gateway B", TIMEOUT_S)
        request = wait_until(lambda: hook.requests[:1], "the webhook call", TIMEOUT_S)[0]
        body = json.loads(request.body)
        assert body["strategy_id"] == once[0] and body["delivery_id"] == request.header("X-Ubot-Delivery")
        (body,) = body["alerts"]  # one coin fired: one alert in the message
        assert body["symbol"] == "BTC" and json.loads(alert["data"])["id"] == body["id"]
        assert signed(request)
        stamp = int(request.header("X-Ubot-Signature").removeprefix("t=").split(",", 1)[0])
        assert abs(time.time() - stamp) < 300  # made just now
        listed = requests.get(
            base_b + "/v1/me/alerts", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S
        ).json()["alerts"]
        assert [a["id"] for a in listed] == [body["id"]]

        # Work for both scanners: `once` strategies fire at the next tick, `once_per_bar` once a
        # minute, and `once_per_crossing` on BTC's price around its latest: at each crossing.
        once += [create(base_a, token, f"once {i}", "once") for i in range(5)]
        per_bar = [create(base_a, token, f"bar {i}", "once_per_bar") for i in range(4)]
        (price,) = deployment.query(PRICES + " DESC LIMIT 1")[0][1:]
        conditions = [f"price {op} {price * (1 + k * 3e-6)!r}" for k in range(-4, 5) for op in "><"]
        crossing = [
            create(base_a, token, f"cross {i}", "once_per_crossing", c) for i, c in enumerate(conditions)
        ]
        wait_until(lambda: fired(deployment, once + per_bar), "every strategy to fire", TIMEOUT_S)
        # Both scanners hold a share: each raised alerts of its own (its log names them).
        wait_until(
            lambda: all("ubot.actors.notifier: alert " in scanner.log for scanner in scanners),
            "both scanners to hold a share",
            TIMEOUT_S,
        )
        armed = wait_until(
            lambda: (marks := scan_marks(deployment, crossing))[0] == len(crossing) and marks[2],
            "every crossing strategy to be scanned once",
            TIMEOUT_S,
        )

        # kill -9 the active engine: the standby takes over within 2 intervals; no snapshot lost or
        # stored twice; the scanners follow its ticks.
        before = snapshot_times(deployment)
        kill9(active)
        last_of_a = snapshot_times(deployment)[-1]
        wait_until(lambda: "taking over" in standby.log, "engine B to take over", TIMEOUT_S, alive=standby)
        wait_until(
            lambda: [t for t in snapshot_times(deployment) if t > last_of_a][2:],
            "three snapshots stored by engine B",
            TIMEOUT_S,
            alive=standby,
        )
        times = snapshot_times(deployment)
        assert times[: len(before)] == before and len(times) == len(set(times))
        first_of_b = min(t for t in times if t > last_of_a)
        # Engine A died within an interval of its last snapshot; B's first one comes within 2
        # intervals of that: at most 2 of the snapshots' times missing in between.
        assert (first_of_b - last_of_a) // interval_ms - 1 <= 2, (last_of_a, first_of_b)
        # The candles caught up with A's snapshots: B folds the snapshots A stored and writes their
        # closed candles when it takes over (then its own every [database] candle_write_minutes).
        (a_last,) = deployment.query(f"SELECT max(id) FROM snapshot WHERE timestamp <= {last_of_a}")[0]
        wait_until(
            lambda: (
                int(deployment.query(f"SELECT value FROM meta WHERE key = '{WATERMARK}'")[0][0]) >= a_last
            ),
            f"the candles to reach snapshot {a_last}",
            TIMEOUT_S,
            alive=standby,
        )
        wait_until(
            lambda: [(r["member"], r["state"]) for r in roles(base_a)["engines"]] == [(engines[1], "active")],
            "/health to show engine B alone, active",
            TIMEOUT_S,
        )
        once += [create(base_a, token, f"engine B {i}", "once") for i in range(2)]
        wait_until(
            lambda: fired(deployment, once), "the strategies created after the takeover to fire", TIMEOUT_S
        )

        # kill -9 one scanner and one notifier, mid-run: the receiver stalls, so deliveries stay
        # claimed, in flight; the notifier killed holds one.
        hook.stalling.set()
        once += [create(base_a, token, f"stalled {i}", "once") for i in range(6)]
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
        once += [create(base_a, token, f"after {i}", "once") for i in range(4)]
        hook.stalling.clear()
        hook.release.set()
        wait_until(
            lambda: fired(deployment, once),
            "the strategies created around the kills to fire",
            TIMEOUT_S,
            alive=scanners[1],
        )
        wait_until(
            lambda: [m["member"] for m in roles(base_a)["scanners"]] == [scanner_members[1]],
            "the dead scanner to leave the group",
            TIMEOUT_S,
        )
        # Its share was taken over within 2 ticks: at most 2 ticks after the kill still named it.
        assert ticks_naming(deployment, dead_scanner, killed_at_ms) <= 2
        # Every delivery of the alerts so far accepted by the webhook (the dead notifier's after
        # its lease), signed; twice only inside the at-least-once window.
        keys = {key for (key,) in deployment.query("SELECT key FROM delivery")}
        wait_until(lambda: set(hook.accepted) >= keys, "every delivery accepted by the webhook", TIMEOUT_S)

        # kill -9 gateway B: the stream resumes on gateway A from the last id it got, nothing missed.
        kill9(gateway_b)
        assert stream.ended.wait(TIMEOUT_S)
        last_seen = stream.events[-1]["id"]
        resumed = Collector(base_a, token, last_event_id=last_seen)
        assert resumed.head == {"retry": "3000"}  # no id: the client has one
        wait_until(lambda: resumed.of("snapshot")[1:], "snapshot events on gateway A", TIMEOUT_S)
        assert not resumed.of("reset")
        # Exactly the entries the bus holds after the id it last saw (this user sees every one).
        ids = [EntryId.parse(e["id"]) for e in list(resumed.events)]
        assert deployment.events_after(last_seen, len(ids)) == ids
        # Every alert stored so far on one stream or the other, once.
        stored = {a for (a,) in deployment.query("SELECT id FROM alert")}

        def shown() -> list[int]:
            return [json.loads(e["data"])["id"] for e in stream.of("alert") + resumed.of("alert")]

        wait_until(lambda: set(shown()) >= stored, "every alert on one stream or the other", TIMEOUT_S)
        assert len(shown()) == len(set(shown()))
        resumed.close()
        stream.close()

        # No alert lost or raised twice: each `once` strategy fired exactly once, each `once_per_bar`
        # at most once per bar, each `once_per_crossing` at each crossing of the stored prices.
        alerts = deployment.query("SELECT id, strategy_id, bar_open FROM alert")
        count = collections.Counter(s for _, s, _ in alerts)
        assert all(count[s] == 1 for s in once), count
        per_bar_alerts = collections.Counter((s, bar) for _, s, bar in alerts if s in per_bar)
        assert set(per_bar_alerts.values()) == {1}, per_bar_alerts
        (newest,) = deployment.query("SELECT max(id) FROM snapshot")[0]
        through = wait_until(
            lambda: (low := scan_marks(deployment, crossing)[1]) >= newest and low,
            "the survivor to scan every crossing strategy past the kills and the lease",
            TIMEOUT_S,
            alive=scanners[1],
        )
        crossings(deployment, crossing, conditions, armed, through)
        with hook.lock:
            accepted, requests_made = collections.Counter(hook.accepted), list(hook.requests)
        # (alerts, deliveries) in one statement: one delivery per alert (one coin per message)
        ((alert_count, delivery_count),) = deployment.query(
            "SELECT (SELECT count(*) FROM alert), (SELECT count(*) FROM delivery)"
        )
        assert alert_count == delivery_count
        assert set(accepted) <= {key for (key,) in deployment.query("SELECT key FROM delivery")}
        assert {key for key, n in accepted.items() if n > 1} <= window
        stored = {a for (a,) in deployment.query("SELECT id FROM alert")}
        for request in requests_made:
            assert signed(request)
            assert {a["id"] for a in json.loads(request.body)["alerts"]} <= stored
        # The dead notifier's claims were sent by the survivor, after the lease.
        taken_over = deployment.query(
            "SELECT DISTINCT claimed_by FROM delivery WHERE key IN ({})".format(
                ", ".join(f"'{k}'" for k in window)
            )
        )
        assert taken_over == [(notifier_members[1 - dead],)]

    for process in (standby, scanners[1], survivor, gateway_a):
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait_exit() == 0, process.tail()


def test_two_engines_started_at_once_on_a_new_database_take_turns(deployment: Deployment) -> None:
    """Both create the schema at start: they take turns (one creates it, the other finds it current);
    then one is active and the other stands by."""
    first, second = deployment.engine("engine-1"), deployment.engine("engine-2")
    for process in (first, second):
        wait_until(
            lambda process=process: "engine: active" in process.log or "engine: standby" in process.log,
            "each engine to be active or stand by",
            TIMEOUT_S,
            alive=process,
        )
    assert ["engine: active" in p.log for p in (first, second)].count(True) == 1
    for process in (first, second):
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait_exit() == 0, process.tail()


def test_a_session_ended_on_one_gateway_is_refused_on_the_other(deployment: Deployment) -> None:
    """Logout, one session logged out by its id, and a password change through gateway A reach
    gateway B's session cache over the bus (SessionsRevoked), not after its five-minute TTL."""
    engine = deployment.engine("engine")
    wait_until(lambda: "engine: active" in engine.log, "the engine to be active", TIMEOUT_S, alive=engine)
    (gateway_a, base_a), (gateway_b, base_b) = (
        deployment.gateway("gateway-a"),
        deployment.gateway("gateway-b"),
    )

    def settings_on(base: str, token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return requests.get(base + "/v1/me/settings", headers=headers, timeout=TIMEOUT_S).status_code

    def log_in(password: str) -> str:
        answer = requests.post(
            base_a + "/v1/sessions", json={"username": "ada", "password": password}, timeout=TIMEOUT_S
        )
        assert answer.status_code == 201, answer.text
        return answer.json()["token"]

    with FakeWebhook() as hook:
        token = sign_up(base_a, hook.url())
    other = log_in(PASSWORD)
    assert settings_on(base_b, token) == settings_on(base_b, other) == 200  # both cached on B

    logout = requests.delete(
        base_a + "/v1/sessions/current", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S
    )
    assert logout.status_code == 204
    assert settings_on(base_a, token) == 401  # where it ended: at once
    wait_until(lambda: settings_on(base_b, token) == 401, "gateway B to refuse the token", TIMEOUT_S)
    assert settings_on(base_b, other) == 200  # only that session ended

    # one session logged out by its id (the sessions list) through A: B refuses it too
    third = log_in(PASSWORD)
    assert settings_on(base_b, third) == 200  # cached on B
    listed = requests.get(
        base_a + "/v1/me/sessions", headers={"Authorization": f"Bearer {third}"}, timeout=TIMEOUT_S
    ).json()["sessions"]
    (third_id,) = [s["id"] for s in listed if s["current"]]
    ended = requests.delete(
        f"{base_a}/v1/me/sessions/{third_id}", headers={"Authorization": f"Bearer {other}"}, timeout=TIMEOUT_S
    )
    assert ended.status_code == 204, ended.text
    wait_until(lambda: settings_on(base_b, third) == 401, "gateway B to refuse the third token", TIMEOUT_S)
    assert settings_on(base_b, other) == 200

    changed = requests.put(
        base_a + "/v1/me/password",
        json={"old_password": PASSWORD, "new_password": "a new and longer passphrase"},
        headers={"Authorization": f"Bearer {other}"},
        timeout=TIMEOUT_S,
    )
    assert changed.status_code == 204, changed.text
    wait_until(lambda: settings_on(base_b, other) == 401, "gateway B to refuse the other token", TIMEOUT_S)
    assert settings_on(base_b, log_in("a new and longer passphrase")) == 200
    for process in (gateway_a, gateway_b, engine):
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait_exit() == 0, process.tail()
