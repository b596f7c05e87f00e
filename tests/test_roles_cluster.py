"""uBot as separate processes over real PostgreSQL and Redis: an engine and a standby, two gateways.

A strategy created through gateway A fires into a signed webhook and shows on a stream opened on
gateway B. Then the active engine is killed (``kill -9``): the standby takes over, no snapshot is
lost or stored twice, the candles and scans catch up. Then gateway B is killed: the stream resumes
on gateway A from its ``Last-Event-ID``, with nothing missed.

PostgreSQL (``UBOT_TEST_POSTGRES_URL``) and Redis (``UBOT_TEST_REDIS_URL``) are shared: the test
uses a schema and a key prefix of its own, and removes both at the end. Skipped only when unset.
"""

from __future__ import annotations

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

from tests.fakes.webhook import FakeWebhook
from tests.support.cluster import PASSWORD, TIMEOUT_S, account, private_space, wait_serving
from tests.support.ports import free_port
from tests.support.processes import Process, command, environment, launch
from tests.support.waits import wait_until
from tests.test_stream_e2e import EventReader
from ubot.bus import EntryId
from ubot.bus.messages import TICKS, TickReady, decode
from ubot.models.alerts import SCAN_WATERMARK
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

    def start(self, name: str, *args: str) -> Process:
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
            argv, self.tmp_path / f"{name}.log", cwd=self.tmp_path, env=self.env(), new_session=True
        )
        self.processes.append(process)
        return process

    def engine(self, name: str) -> Process:
        return self.start(name, "--role", "engine")

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


def create_strategy(base: str, token: str) -> int:
    created = requests.post(
        base + "/v1/me/strategies",
        json={
            "name": "BTC above zero",
            "condition": "price > 0",
            "timeframe": "1m",
            "symbols": ["BTC"],
            "channels": ["webhook"],
            "frequency": "once",  # fires at the first tick, then disables itself
        },
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT_S,
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def snapshot_times(deployment: Deployment) -> list[int]:
    return [row[0] for row in deployment.query("SELECT timestamp FROM snapshot ORDER BY timestamp")]


def test_engine_standby_and_two_gateways(deployment: Deployment) -> None:
    interval_ms = INTERVAL_S * 1000
    active = deployment.engine("engine-a")
    wait_until(lambda: "engine: active" in active.log, "engine A to be active", TIMEOUT_S, alive=active)
    standby = deployment.engine("engine-b")
    wait_until(lambda: "engine: standby" in standby.log, "engine B to stand by", TIMEOUT_S, alive=standby)
    gateway_a, base_a = deployment.gateway("gateway-a")
    gateway_b, base_b = deployment.gateway("gateway-b")

    with FakeWebhook() as hook:
        # A strategy created through gateway A fires into the webhook and shows on gateway B's stream.
        token = sign_up(base_a, hook.url())
        assert json.loads(hook.requests.pop(0).body)["event"] == "verification"
        stream = Collector(base_b, token)
        strategy_id = create_strategy(base_a, token)
        (alert,) = wait_until(lambda: stream.of("alert"), "the alert event on gateway B", TIMEOUT_S)
        request = wait_until(lambda: hook.requests[:1], "the webhook call", TIMEOUT_S)[0]
        body = json.loads(request.body)
        assert body["strategy_id"] == strategy_id and body["delivery_id"] == request.header("X-Ubot-Delivery")
        (body,) = body["alerts"]  # one coin fired: one alert in the message
        assert body["symbol"] == "BTC"
        # X-Ubot-Signature: t=<unix seconds>,v1=<HMAC-SHA256 of "<t>.<body>">, made just now
        signature = request.header("X-Ubot-Signature")
        stamp = signature.removeprefix("t=").split(",", 1)[0]
        signed = f"{stamp}.".encode() + request.body
        assert signature == f"t={stamp},v1=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
        assert abs(time.time() - int(stamp)) < 300
        assert json.loads(alert["data"])["id"] == body["id"]
        listed = requests.get(
            base_b + "/v1/me/alerts", headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT_S
        ).json()["alerts"]
        assert [a["id"] for a in listed] == [body["id"]]

        # kill -9 the active engine: the standby takes over; nothing lost, nothing stored twice.
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
        assert times[: len(before)] == before
        assert len(times) == len(set(times))  # never stored twice
        first_of_b = min(t for t in times if t > last_of_a)
        # Engine A died within an interval after its last snapshot; B's first one comes within 2
        # intervals of that: at most 3 intervals after A's last.
        assert first_of_b - last_of_a <= 3 * interval_ms, (last_of_a, first_of_b)
        stored = deployment.query("SELECT max(id) FROM snapshot")[0][0]
        (a_last,) = deployment.query(f"SELECT max(id) FROM snapshot WHERE timestamp <= {last_of_a}")[0]
        # The scans caught up with every snapshot; the candles with A's: B folds the snapshots A
        # stored and writes their closed candles when it takes over, then its own closed candles
        # every [database] candle_write_minutes (readers rebuild the ones not written yet).
        for key, through in ((WATERMARK, a_last), (SCAN_WATERMARK, stored)):
            wait_until(
                lambda key=key, through=through: (
                    int(deployment.query(f"SELECT value FROM meta WHERE key = '{key}'")[0][0]) >= through
                ),
                f"{key} to reach snapshot {through}",
                TIMEOUT_S,
            )
        assert len(hook.requests) == 1  # the takeover did not fire the crossing again

    # kill gateway B: the stream resumes on gateway A from the last id it got, nothing missed.
    wait_until(lambda: stream.of("snapshot")[1:], "two snapshot events on gateway B", TIMEOUT_S)
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
    resumed.close()
    stream.close()
    for process in (standby, gateway_a):
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
