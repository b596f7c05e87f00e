"""``GET /metrics`` end to end: real actors and database, the gateway through its WSGI app, a webhook
over a real socket (the system of tests/test_alerts_e2e.py). Ticks, stage times, scans, the alert,
the delivery's retry then success and the requests all move the exposition, which parses.

And prometheus_client's multiprocess mode: two processes recording into one
``PROMETHEUS_MULTIPROC_DIR``, one exposition summing both.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.fakes.webhook import FakeWebhook, status
from tests.replayfiles import ms, write_replay
from tests.support.metrics import parse, value
from tests.support.waits import wait_until
from tests.test_alerts_e2e import System, sign_up
from ubot import metrics
from ubot.clocks import FakeClock


@pytest.fixture
def replay_dir(tmp_path) -> str:
    return write_replay(tmp_path / "replay").directory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=ms("2024-10-16T00:02:30Z") / 1000)


def test_a_tick_a_scan_an_alert_a_delivery_and_a_request_move_the_metrics(db, replay_dir, clock) -> None:
    with FakeWebhook() as hook:
        system = System(db, replay_dir, clock)
        try:
            scrape = lambda: parse(system.client.simulate_get("/metrics").text)  # noqa: E731
            before = scrape()

            def moved(name: str, **labels: str) -> float:
                return value(scrape(), name, **labels) - value(before, name, **labels)

            sign_up(system.client, hook.url())  # the webhook's verification answered 200
            hook.script(status(503))  # the alert's first attempt: retry; the second: sent
            for _ in range(5):  # the third file is malformed; the crossing is in the fifth
                system.tick()
            system.scanned(4)
            wait_until(
                lambda: moved("ubot_deliveries_total", channel="webhook", outcome="retry") == 1, "a retry"
            )
            clock.set(clock.now() + 1)  # past the retry's due time (backoff 0.1 s)
            wait_until(lambda: moved("ubot_deliveries_total", channel="webhook", outcome="sent") == 1, "sent")

            assert len(hook.requests) == 3  # the verification, the retried attempt, the sent one
            assert moved("ubot_ticks_total", outcome="ok") == 4
            assert moved("ubot_ticks_total", outcome="skipped") == 1
            for stage in ("store", "ohlc", "container"):
                assert moved("ubot_tick_stage_seconds_count", stage=stage) == 4
            assert moved("ubot_tick_lateness_seconds_count") == 5
            assert moved("ubot_scans_total", outcome="scanned") == 4
            assert moved("ubot_scan_seconds_count") == 4
            assert moved("ubot_scan_strategies_evaluated_total") == 4  # one strategy, four scans
            assert moved("ubot_alerts_total") == 1
            assert moved("ubot_deliveries_total", channel="webhook", outcome="failed") == 0
            assert moved("ubot_delivery_attempt_seconds_count", channel="webhook") == 2
            created = {"method": "POST", "route": "/v1/me/strategies", "status": "2xx"}
            assert moved("ubot_http_requests_total", **created) == 1
            assert moved("ubot_http_request_seconds_count", method="PUT", route="/v1/me/settings") == 1
            assert value(scrape(), "ubot_snapshot_timestamp_seconds") > 0
        finally:
            system.stop()


RECORD = """
import sys
from ubot import metrics
from ubot.messages import TickDone
from ubot.schedule import Tick

for n in range(int(sys.argv[1])):
    metrics.tick_done(TickDone(Tick(n + 1, 0, 10), (("fetch", 5.0),), snapshot_ms=1_000 * int(sys.argv[2])))
metrics.DELIVERIES.labels("webhook", "sent").inc()
"""


def test_processes_writing_to_one_multiprocess_dir_are_summed(tmp_path) -> None:
    environ = {**os.environ, metrics.MULTIPROC_ENV: str(tmp_path)}
    for ticks, snapshot_s in ((2, 100), (3, 50)):
        subprocess.run([sys.executable, "-c", RECORD, str(ticks), str(snapshot_s)], env=environ, check=True)

    samples = parse(metrics.exposition(str(tmp_path)).decode())

    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process
    assert value(samples, "ubot_ticks_total", outcome="ok") == 5
    assert value(samples, "ubot_tick_stage_seconds_count", stage="fetch") == 5
    assert value(samples, "ubot_tick_lateness_seconds_bucket", le="0.01") == 5
    assert value(samples, "ubot_deliveries_total", channel="webhook", outcome="sent") == 2
    assert value(samples, "ubot_snapshot_timestamp_seconds") == 100  # the latest of all
