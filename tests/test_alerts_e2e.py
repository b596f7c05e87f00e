"""Issue 5's promise, end to end: a strategy created over HTTP gets exactly one signed webhook call
and one ``alert`` event on its owner's stream when a replayed market crosses its condition; an alert
written but not yet sent when uBot stops is sent after the restart, once.

Real actors and database, the gateway through its WSGI app, the webhook over a real socket to a local
receiver. The replay's BTC prices are 67000.5, 67250.25, 66875.75, 67500.0, 67125.5 (one per tick,
tests/replayfiles.py; the third of its six files is malformed, so that tick is skipped): ``price > 67400``
is false, false, false, true, false.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import queue
import threading
from typing import Any

import falcon
import msgspec
import pytest
from falcon.testing import TestClient

from tests.fakes.webhook import FakeWebhook, status
from tests.http.support import gateway_of, parse_sse
from tests.replayfiles import ms, write_replay
from tests.support.asgi_stream import Stream as AsgiStream
from tests.support.asgi_stream import scope_of
from tests.support.waits import wait_until
from ubot.bus import InProcessBus
from ubot.clocks import FakeClock
from ubot.http.app import create_app
from ubot.http.shapes import WebhookBody
from ubot.market.replay import ReplaySource
from ubot.notify.channels import WebhookChannel
from ubot.notify.messages import GetAlertState
from ubot.stream.hub import StreamHub
from ubot.stream.publisher import EventPublisher
from ubot.system import AlertOptions, start_system, stop_system

SECRET = "s3cret-s3cret-s3cret"
PASSWORD = "correct horse battery staple"


class System:
    def __init__(self, db, replay_dir: str, clock: FakeClock) -> None:
        self.clock = clock
        self.bus = InProcessBus()
        self.hub = StreamHub(self.bus).start()
        self.channels = {"webhook": WebhookChannel(timeout_s=5, allow_private_addresses=True)}
        self.actors = start_system(
            db,
            ReplaySource(replay_dir),
            interval_s=60,
            clock=clock,
            deliver_replayed=True,  # the replay stands for a live market here
            alerts=AlertOptions(
                workers=3,
                channels=self.channels,
                backoff_s=0.1,
                backoff_max_s=0.1,
                allow_local_webhooks=True,
                publish=EventPublisher(self.bus).publish,
            ),
        )
        gateway = gateway_of(
            self.actors,
            users=self.actors.users,
            notifier=self.actors.notifier,
            now=clock.now,
            channels=self.channels,
        )
        self.app = create_app(gateway, hub=self.hub)
        self.client = TestClient(self.app)

    def tick(self) -> None:
        """The next tick, and the scan of its snapshot if it stored one: the next tick must not find
        the Scanner busy, else it is not scanned (a scan of tick 1 outlasted ticks 2 to 6 on a loaded
        machine; the Scanner drops a waiting tick for a newer one)."""
        before = self.health()
        self.clock.set(self.clock.wait_for_sleeper())
        after = wait_until(
            lambda: (health := self.health())["ticks"] > before["ticks"] and health, "the tick to finish"
        )
        if after["ticks_ok"] > before["ticks_ok"]:
            self.scanned(self.scans(before) + 1)

    def scanned(self, scans: int) -> None:
        wait_until(lambda: self.scans(self.health()) >= scans, f"{scans} scans")

    @staticmethod
    def scans(health: dict) -> int:
        return (health.get("scanner") or {}).get("scans", 0)

    def health(self) -> dict:
        return self.client.simulate_get("/health").json

    def stop(self) -> None:
        self.hub.close()
        stop_system(self.actors, timeout=10)


class Stream:
    """GET /v1/stream of the ASGI app read in a thread, its messages in a queue."""

    def __init__(self, app, token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.stream = AsgiStream(app, scope_of("/v1/stream", "", headers, "127.0.0.1"))
        assert self.stream.status == falcon.HTTP_200, self.stream.status
        self.messages: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        with contextlib.suppress(queue.Empty):  # the test ended without the stream
            for chunk in self.stream.chunks:
                for message in parse_sse(chunk):
                    self.messages.put(message)

    def alerts(self) -> list[dict[str, Any]]:
        found = []
        while not self.messages.empty():
            message = self.messages.get_nowait()
            if message.get("event") == "alert":
                found.append(json.loads(message["data"]))
        return found


@pytest.fixture
def replay_dir(tmp_path) -> str:
    return write_replay(tmp_path / "replay").directory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=ms("2024-10-16T00:02:30Z") / 1000)


def sign_up(client: TestClient, hook_url: str, verify: bool = True) -> tuple[str, int]:
    assert (
        client.simulate_post(
            "/v1/users", json={"username": "ada", "email": "ada@example.com", "password": PASSWORD}
        ).status_code
        == 201
    )
    token = client.simulate_post("/v1/sessions", json={"username": "ada", "password": PASSWORD}).json["token"]
    auth = {"Authorization": f"Bearer {token}"}
    settings = client.simulate_put(
        "/v1/me/settings", json={"webhook_url": hook_url, "webhook_secret": SECRET}, headers=auth
    )
    assert settings.status_code == 200, settings.json
    if verify:
        verified = client.simulate_post("/v1/me/destinations/webhook/verify", headers=auth)
        assert verified.status_code == 200 and verified.json["state"] == "verified", verified.json
    created = client.simulate_post(
        "/v1/me/strategies",
        json={
            "name": "BTC breakout",
            "condition": "price > 67400",
            "timeframe": "1m",
            "symbols": ["BTC"],
            "channels": ["webhook"],
        },
        headers=auth,
    )
    assert created.status_code == 201, created.json
    return token, created.json["id"]


def test_a_crossing_gives_exactly_one_signed_webhook_and_one_stream_event(db, replay_dir, clock) -> None:
    with FakeWebhook() as hook:
        system = System(db, replay_dir, clock)
        try:
            token, strategy_id = sign_up(system.client, hook.url())
            assert hook.requests.pop(0).json()["event"] == "verification"  # the only one before
            stream = Stream(system.app, token)
            for _ in range(6):  # the third file is malformed: 6 ticks, 5 snapshots
                system.tick()
            system.scanned(5)
            wait_until(lambda: hook.requests, "the webhook call")
            auth = {"Authorization": f"Bearer {token}"}
            listed = wait_until(
                lambda: [
                    a
                    for a in system.client.simulate_get("/v1/me/alerts", headers=auth).json["alerts"]
                    if a["deliveries"][0]["status"] == "sent"
                ],
                "the delivery to be marked sent",
            )
            assert (
                len(listed) == 1 and listed[0]["symbol"] == "BTC" and listed[0]["strategy_id"] == strategy_id
            )
            assert listed[0]["values"] == {"price": 67500.0}
            assert len(hook.requests) == 1
            request = hook.requests[0]
            stamp, digest = request.header("X-Ubot-Signature").split(",")
            signed = stamp.removeprefix("t=").encode() + b"." + request.body
            assert digest == "v1=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
            document = msgspec.json.decode(request.body, type=WebhookBody)  # the documented shape
            assert document.delivery_id == request.header("X-Ubot-Delivery") and document.skipped == 0
            (body,) = json.loads(request.body)["alerts"]
            assert (
                body["symbol"] == "BTC"
                and body["values"] == {"price": 67500.0}
                and body["id"] == listed[0]["id"]
            )
            events = wait_until(stream.alerts, "the stream's alert event")
            assert [e["id"] for e in events] == [listed[0]["id"]]
        finally:
            system.stop()


def test_an_alert_written_but_not_sent_is_sent_after_a_restart_once(db, replay_dir, clock) -> None:
    with FakeWebhook() as hook:
        system = System(db, replay_dir, clock)
        try:
            token, _ = sign_up(system.client, hook.url())
            assert hook.requests.pop(0).json()["event"] == "verification"
            hook.script(status(503))  # the first attempt fails; its retry is due on a clock that never moves
            auth = {"Authorization": f"Bearer {token}"}
            for _ in range(5):  # the crossing is in the 5th tick's snapshot
                system.tick()

            def retrying() -> list:
                alerts = system.client.simulate_get("/v1/me/alerts", headers=auth).json["alerts"]
                return [d for a in alerts for d in a["deliveries"] if d["attempts"] == 1]

            assert wait_until(retrying, "the failed first attempt")[0]["status"] == "pending"
        finally:
            system.stop()  # the alert is written, its delivery not sent: what a crash here leaves
        assert len(hook.requests) == 1
        later = FakeClock(start=clock.now() + 1)  # past the retry's due time
        restarted = System(db, replay_dir, later)
        try:
            sent = wait_until(
                lambda: [
                    d
                    for a in restarted.client.simulate_get("/v1/me/alerts", headers=auth).json["alerts"]
                    for d in a["deliveries"]
                    if d["status"] == "sent"
                ],
                "the resumed delivery to be marked sent",
            )
            assert len(sent) == 1 and len(hook.requests) == 2
        finally:
            restarted.stop()
        third = System(db, replay_dir, FakeClock(start=later.now()))
        try:
            third.actors.notifier.ask(GetAlertState(()), timeout=10)  # its start (the resume) is over
        finally:
            third.stop()
        assert len(hook.requests) == 2  # a delivered alert is never sent again


def test_an_unverified_webhook_gets_nothing_its_alert_is_failed_saying_so(db, replay_dir, clock) -> None:
    with FakeWebhook() as hook:
        system = System(db, replay_dir, clock)
        try:
            token, strategy_id = sign_up(system.client, hook.url(), verify=False)
            auth = {"Authorization": f"Bearer {token}"}
            strategy = system.client.simulate_get(f"/v1/me/strategies/{strategy_id}", headers=auth).json
            assert strategy["unverified"] == ["webhook"]
            for _ in range(6):
                system.tick()
            system.scanned(5)
            (alert,) = wait_until(
                lambda: system.client.simulate_get("/v1/me/alerts", headers=auth).json["alerts"], "the alert"
            )
            (delivery,) = alert["deliveries"]
            assert delivery["status"] == "failed"
            assert (
                "not verified" in delivery["detail"]
                and "/v1/me/destinations/webhook/verify" in delivery["detail"]
            )
        finally:
            system.stop()
        assert hook.requests == []  # not one request: nothing but a verification goes there


def test_a_webhook_is_verified_by_a_signed_request_answered_2xx(db, replay_dir, clock) -> None:
    with FakeWebhook() as hook:
        system = System(db, replay_dir, clock)
        try:
            client = system.client
            token, _ = sign_up(client, hook.url("/down"), verify=False)
            auth = {"Authorization": f"Bearer {token}"}
            hook.script(status(500))

            failed = client.simulate_post("/v1/me/destinations/webhook/verify", headers=auth)

            assert failed.status_code == 200 and failed.json["state"] == "unverified", failed.text
            assert "HTTP 500" in failed.json["detail"]
            again = client.simulate_post("/v1/me/destinations/webhook/verify", headers=auth)
            assert again.status_code == 429 and int(again.headers["retry-after"]) == 60
            # another URL is another destination: not throttled by the first
            settings = {"webhook_url": hook.url("/other"), "webhook_secret": SECRET}
            assert client.simulate_patch("/v1/me/settings", json=settings, headers=auth).status_code == 200

            answered = client.simulate_post("/v1/me/destinations/webhook/verify", headers=auth)

            assert answered.status_code == 200 and answered.json["state"] == "verified", answered.text
            request = hook.requests[-1]
            assert request.path == "/other" and len(hook.requests) == 2
            assert request.json()["event"] == "verification" and request.json()["verification"] is True
            timestamp, signature = (
                part.split("=", 1)[1] for part in request.header("X-Ubot-Signature").split(",")
            )
            signed = f"{timestamp}.".encode() + request.body
            assert hmac.compare_digest(
                signature, hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
            )
            again = client.simulate_post("/v1/me/destinations/webhook/verify", headers=auth)
            assert again.status_code == 409 and "already verified" in again.json["description"]
        finally:
            system.stop()
