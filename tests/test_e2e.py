"""End to end: ``run.py`` under gunicorn as a subprocess, asked over real HTTP, stopped by a signal."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.replayfiles import COINS, Replay, iso, write_replay
from tests.support.ports import free_port
from tests.support.processes import command, environment, launch
from tests.support.waits import wait_until
from ubot.models.tables import SnapshotRecord

TIMEOUT_S = 30


@dataclass
class Ubot:
    proc: subprocess.Popen
    base: str
    log_path: Path
    home: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.base + path, timeout=10, **kwargs)

    def wait_health(self, predicate) -> dict:
        """Poll /health until ``predicate(doc)``; fail if the process dies or time runs out."""

        def health() -> dict | None:
            doc = self.get("/health").json()
            return doc if predicate(doc) else None

        return wait_until(
            health, "/health to get there", alive=self, ignoring=(requests.ConnectionError,), interval=0.02
        )


def start(tmp_path: Path, *args: str) -> Ubot:
    port = free_port()
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    log_path = tmp_path / "ubot.log"
    started = launch(
        command("--bind", f"127.0.0.1:{port}", *args), log_path, cwd=tmp_path, env=environment(home)
    )
    return Ubot(started.proc, f"http://127.0.0.1:{port}", log_path, home)


@pytest.fixture
def replay(tmp_path) -> Replay:
    return write_replay(tmp_path / "replay")


@pytest.fixture
def served(tmp_path, db, database_url, replay) -> Iterator[Ubot]:
    ubot = start(
        tmp_path,
        "--source",
        "replay",
        "--replay-dir",
        replay.directory,
        "--interval",
        "0",
        "--db",
        database_url,
    )
    try:
        ubot.wait_health(lambda doc: doc.get("source_exhausted"))
        yield ubot
    finally:
        if ubot.proc.poll() is None:
            ubot.proc.kill()
            ubot.proc.wait()


def test_replay_served_over_http_then_stopped_by_sigterm(served, replay) -> None:
    # /health
    response = served.get("/health")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert health["source"] == "replay"
    assert health["ticks"] == len(replay.files)
    assert health["last_snapshot_at"] == iso(replay.snapshot_times[-1])
    assert set(health["clock"]) >= {
        "interval_s",
        "lateness_ms_p50",
        "lateness_ms_p99",
        "lateness_ms_max",
        "missed_ticks",
    }
    assert set(health["last_tick_ms"]) == {"fetch", "store", "ohlc", "container"}

    # /v1/snapshot, then the same with its ETag
    response = served.get("/v1/snapshot")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    snapshot = response.json()
    assert snapshot["timestamp"] == iso(replay.snapshot_times[-1])
    assert [(c["id"], c["price"]) for c in snapshot["coins"]] == [(c.id, c.prices[-1]) for c in COINS]
    etag = response.headers["etag"]
    again = served.get("/v1/snapshot", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    filtered = served.get("/v1/snapshot", params={"symbols": "eth,btc,nope"}).json()
    assert [c["symbol"] for c in filtered["coins"]] == ["ETH", "BTC"]
    assert filtered["unknown_symbols"] == ["NOPE"]

    # candles: what the replayed prices imply, the still-open one last
    for coin in COINS:
        for timeframe in ("1m", "5m", "1h"):
            doc = served.get(f"/v1/coins/{coin.id}/candles", params={"timeframe": timeframe}).json()
            assert doc["candles"] == replay.candles(coin.id, timeframe), (coin.symbol, timeframe)
    btc = served.get("/v1/coins/btc/candles", params={"timeframe": "5m"}).json()["candles"]
    assert btc[-1] == {
        "open_time": "2024-10-16T00:05:00.000Z",
        "open": 66875.75,
        "high": 67500.0,
        "low": 66875.75,
        "close": 67125.5,
    }
    assert served.get("/v1/coins/HOT/candles").json()["id"] == 3116

    # raw history
    quotes = served.get("/v1/coins/BTC/quotes", params={"start": "2024-10-16T00:05:00Z"}).json()["quotes"]
    assert [q["price"] for q in quotes] == list(COINS[0].prices[2:])
    rows = served.get("/v1/global").json()["global"]
    assert [r["timestamp"] for r in rows] == [iso(t) for t in replay.global_times]

    # errors over the wire are JSON too
    missing = served.get("/v1/coins/NOPE/candles")
    assert missing.status_code == 404
    assert set(missing.json()) == {"title", "description"}
    bad = served.get("/v1/coins/BTC/candles", params={"timeframe": "7m"})
    assert bad.status_code == 400
    assert bad.json()["description"].startswith('The "timeframe" parameter is invalid: must be one of')

    # SIGTERM: a clean stop, exit code 0
    served.proc.send_signal(signal.SIGTERM)
    assert served.proc.wait(timeout=TIMEOUT_S) == 0
    log = served.log
    assert "Traceback" not in log
    assert "pipeline stopped" in log
    # No gunicorn control socket: two uBots must not fight over $HOME/.gunicorn/gunicorn.ctl.
    assert "control socket" not in log.lower()
    assert not (served.home / ".gunicorn").exists()
    stored = [row.timestamp for row in SnapshotRecord.select().order_by(SnapshotRecord.timestamp)]
    assert stored == replay.snapshot_times


def test_sigint_stops_the_server_cleanly(served) -> None:
    served.proc.send_signal(signal.SIGINT)
    assert served.proc.wait(timeout=TIMEOUT_S) == 0
    assert "Traceback" not in served.log
    assert "pipeline stopped" in served.log


def test_simulated_with_a_tick_limit_exits_by_itself(tmp_path, db, database_url) -> None:
    ubot = start(
        tmp_path,
        "--source",
        "simulated",
        "--ticks",
        "2",
        "--interval",
        "1",
        "--limit",
        "30",
        "--db",
        database_url,
    )
    try:
        assert ubot.proc.wait(timeout=TIMEOUT_S) == 0
    finally:
        if ubot.proc.poll() is None:
            ubot.proc.kill()
            ubot.proc.wait()
    log = ubot.log
    assert "Traceback" not in log
    assert "tick limit reached" in log
    assert "tick 1 coins=30 " in log and "tick 2 coins=30 " in log and "tick 3 " not in log
    assert "pipeline stopped" in log
    assert SnapshotRecord.select().count() == 2
