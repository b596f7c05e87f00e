"""GET /health: 503 "starting" until the first snapshot, then 200 "ok" with every documented field."""

from __future__ import annotations

from falcon.testing import TestClient

from tests.http.support import gateway_of
from tests.replayfiles import MALFORMED, iso
from ubot.http.app import create_app

CLOCK_FIELDS = {"interval_s", "lateness_ms_p50", "lateness_ms_p99", "lateness_ms_max", "missed_ticks"}
STAGES = {"fetch", "store", "ohlc", "container"}


def test_starting_before_the_first_snapshot(idle) -> None:
    result = idle.client.simulate_get("/health")
    assert result.status_code == 503
    doc = result.json
    assert doc["status"] == "starting"
    assert doc["source"] == "replay"
    assert doc["ticks"] == 0
    assert doc["last_snapshot_at"] is None
    assert doc["last_tick_ms"] == {}
    assert set(doc["clock"]) >= CLOCK_FIELDS
    assert doc["clock"]["interval_s"] == 60
    assert doc["clock"]["missed_ticks"] == 0
    assert "no-store" in result.headers["cache-control"]


def test_ok_after_the_first_snapshot(idle) -> None:
    idle.tick()
    result = idle.client.simulate_get("/health")
    assert result.status_code == 200
    doc = result.json
    assert doc["status"] == "ok"
    assert doc["source"] == "replay"
    assert doc["ticks"] == 1
    assert doc["last_snapshot_at"] == iso(idle.replay.snapshot_times[0])
    clock = doc["clock"]
    assert set(clock) >= CLOCK_FIELDS
    assert clock["interval_s"] == 60
    assert clock["missed_ticks"] == 0
    # The fake clock fired exactly on the deadline.
    assert clock["lateness_ms_p50"] == clock["lateness_ms_p99"] == clock["lateness_ms_max"] == 0
    assert set(doc["last_tick_ms"]) == STAGES
    assert all(isinstance(ms, int | float) and ms >= 0 for ms in doc["last_tick_ms"].values())


def test_a_skipped_tick_is_reported_as_degraded_but_still_served(idle) -> None:
    idle.tick()
    idle.tick()
    idle.tick()  # the third file is the malformed one
    result = idle.client.simulate_get("/health")
    assert result.status_code == 200
    doc = result.json
    assert doc["status"] == "degraded"
    assert MALFORMED in doc["reason"]
    assert doc["ticks"] == 3
    assert doc["last_snapshot_at"] == iso(idle.replay.snapshot_times[1])
    idle.tick()
    assert idle.client.simulate_get("/health").json["status"] == "ok"


def test_a_stalled_pipeline_answers_503(idle) -> None:
    idle.tick()
    # The same actors seen by a gateway whose clock is ten minutes ahead: no tick for 10 intervals.
    later = create_app(gateway_of(idle.actors, now=lambda: idle.clock.now() + 600))
    result = TestClient(later).simulate_get("/health")
    assert result.status_code == 503
    assert result.json["status"] == "degraded"
    assert "no tick finished" in result.json["reason"]


def test_ok_after_the_replay_with_every_field(served) -> None:
    assert served.finished == ["exhausted"]
    result = served.client.simulate_get("/health")
    assert result.status_code == 200
    doc = result.json
    assert doc["status"] == "ok"
    assert doc["source"] == "replay"
    assert doc["ticks"] == len(served.replay.files)  # every file is one tick, the bad one skipped
    assert doc["ticks_ok"] == served.replay.good_files
    assert doc["ticks_skipped"] == 1
    assert doc["source_exhausted"] is True
    assert doc["last_snapshot_at"] == iso(served.replay.snapshot_times[-1])
    clock = doc["clock"]
    assert set(clock) >= CLOCK_FIELDS
    assert clock["interval_s"] == 0
    assert clock["missed_ticks"] == 0
    assert clock["ticking"] is False
    assert set(doc["last_tick_ms"]) == STAGES
