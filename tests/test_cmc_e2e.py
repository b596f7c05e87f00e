"""``run.py --source cmc`` end to end: a subprocess against the fake CoinMarketCap server.

Headless runs are judged by exit code, output and database; served runs (gunicorn on a free port)
by polling ``/health`` until it says what the test waits for, with a deadline. The fake's market
moves on a minute per tick (``step_ms``), so every tick is a new snapshot.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fakecmc import KEY, T0_MS, Error, FakeCmc, Ok, rate_limited
from tests.support.ports import free_port
from tests.support.processes import command, launch
from tests.support.processes import environment as clean_environment
from tests.support.waits import wait_until
from ubot.market.coinmarketcap import GLOBAL_PATH, KEY_INFO_PATH, LISTINGS_PATH
from ubot.market.credits import monthly_credits, shortest_interval
from ubot.models.tables import Quote, SnapshotRecord
from ubot.timeutil import iso_from_ms, parse_iso_ms

TIMEOUT_S = 30
STEP_MS = 60_000
COINS = 100  # settings.ini's [market] limit


@pytest.fixture
def fake() -> Iterator[FakeCmc]:
    server = FakeCmc(step_ms=STEP_MS).start()
    yield server
    server.stop()


def environment(tmp_path: Path, fake: FakeCmc, **extra: str | None) -> dict[str, str]:
    """No inherited uBot setting; the fake's URL and key; the interval not stretched to fit the
    plan. ``extra``: more variables, or ``None`` to leave one unset (its default applies)."""
    settings = {
        "UBOT_COINMARKETCAP_API_KEY": KEY,
        "UBOT_COINMARKETCAP_BASE_URL": fake.base_url,
        "UBOT_COINMARKETCAP_FIT_TO_PLAN": "false",
    }
    return clean_environment(tmp_path / "home", {**settings, **extra})


def run(tmp_path: Path, fake: FakeCmc, *args: str, **env: str | None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args),
        cwd=tmp_path,
        env=environment(tmp_path, fake, **env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )


def assert_clean(output: str) -> None:
    assert "Traceback" not in output, output
    assert KEY not in output


def assert_refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """Exit 2 with exactly one line on stderr, naming ``words``."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ubot: ")
    for word in words:
        assert word in lines[0], lines[0]
    assert_clean(result.stderr)
    return lines[0]


def coin_ids_at(at_ms: int) -> list[int]:
    """The ids, in rank order, of the coins the fake serves at ``at_ms``."""
    return [coin["id"] for coin in FakeCmc(now_ms=at_ms).listings_doc(limit=COINS)["data"]]


# -- headless -------------------------------------------------------------------------------------


def test_a_headless_run_stores_every_tick_of_the_fake(tmp_path, fake, db, database_url) -> None:
    result = run(
        tmp_path,
        fake,
        *("--source", "cmc", "--no-http", "--ticks", "3", "--interval", "1", "--db", database_url),
    )
    assert result.returncode == 0, result.stderr
    assert_clean(result.stdout + result.stderr)
    stored = list(SnapshotRecord.select().order_by(SnapshotRecord.timestamp))
    assert [(r.timestamp, r.source, r.coin_count) for r in stored] == [
        (T0_MS + n * STEP_MS, "cmc", COINS) for n in range(3)
    ]
    for record in stored:
        quoted = {q.coin_id for q in Quote.select(Quote.coin).where(Quote.snapshot == record.id)}
        assert quoted == set(coin_ids_at(record.timestamp))
    ticks = [s.path for s in fake.calls() if s.path != KEY_INFO_PATH]
    assert ticks == [LISTINGS_PATH, GLOBAL_PATH] * 3
    assert all(s.headers.get("X-CMC_PRO_API_KEY") == KEY for s in fake.calls())


@pytest.mark.parametrize("fit", [True, False], ids=["fit_to_plan-default", "fit_to_plan-false"])
def test_the_start_up_says_what_the_credits_allow(tmp_path, fake, fit) -> None:
    fake.plan_monthly = 2_700_000  # a plan whose shortest fitting interval is short enough to run
    shortest = shortest_interval(COINS, fake.plan_monthly)
    assert shortest == 2
    result = run(
        tmp_path,
        fake,
        *("--source", "cmc", "--no-http", "--ticks", "1", "--interval", "1"),
        UBOT_COINMARKETCAP_FIT_TO_PLAN=None if fit else "false",  # settings.ini: true
    )
    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert_clean(result.stdout + log)
    assert (
        f"WARNING ubot.market.sources: CoinMarketCap credits: every 1 s uses "
        f"~{monthly_credits(COINS, 1):,} a month (31-day month); the plan allows 2,700,000; "
        f"it would run out: the shortest interval that fits is {shortest} s\n"
    ) in log
    stretched = f"[coinmarketcap] fit_to_plan: interval stretched from 1 s to {shortest} s"
    if fit:
        assert stretched in log
        assert f"uBot starting: source=cmc interval={shortest}s " in log
    else:
        assert "stretched" not in log
        assert "uBot starting: source=cmc interval=1s " in log


def test_a_wrong_key_is_refused_at_start_up(tmp_path, fake) -> None:
    result = run(
        tmp_path, fake, "--source", "cmc", "--no-http", UBOT_COINMARKETCAP_API_KEY="0000-not-the-key"
    )
    line = assert_refused(result, "UBOT_COINMARKETCAP_API_KEY", "API key is invalid")
    assert "0000-not-the-key" not in line
    assert [s.path for s in fake.calls()] == [KEY_INFO_PATH]
    assert not (tmp_path / "ubot.db").exists()


def test_a_key_revoked_while_running_headless_exits_1(tmp_path, fake, db, database_url) -> None:
    fake.script(LISTINGS_PATH, Ok(), Error(1001))
    result = run(tmp_path, fake, "--source", "cmc", "--no-http", "--interval", "1", "--db", database_url)
    assert result.returncode == 1, result.stderr
    log = result.stderr
    assert_clean(result.stdout + log)
    assert (
        "ERROR ubot.actors.monitor: no more ticks: CoinMarketCap says the API key is invalid; "
        "set a valid key in UBOT_COINMARKETCAP_API_KEY"
    ) in log
    assert log.rstrip().endswith("INFO ubot: stopped")
    assert [r.timestamp for r in SnapshotRecord.select()] == [T0_MS]
    assert len(fake.calls(LISTINGS_PATH)) == 2


# -- served by gunicorn ---------------------------------------------------------------------------


@dataclass
class Served:
    proc: subprocess.Popen
    base: str
    log_path: Path

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def get(self, path: str) -> requests.Response:
        return requests.get(self.base + path, timeout=10)

    def wait_health(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Poll /health until ``predicate(doc)``; fail if uBot exits or time runs out."""

        def health() -> dict[str, Any] | None:
            doc = self.get("/health").json()
            return doc if predicate(doc) else None

        return wait_until(
            health, "/health to get there", alive=self, ignoring=(requests.ConnectionError,), interval=0.02
        )

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=TIMEOUT_S)


@pytest.fixture
def serve(tmp_path, fake, database_url) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(*args: str) -> Served:
        port = free_port()
        (tmp_path / "home").mkdir(exist_ok=True)
        log_path = tmp_path / "ubot.log"
        args = ("--source", "cmc", "--db", database_url, "--bind", f"127.0.0.1:{port}", *args)
        proc = launch(command(*args), log_path, cwd=tmp_path, env=environment(tmp_path, fake)).proc
        started.append(Served(proc, f"http://127.0.0.1:{port}", log_path))
        return started[-1]

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()


def test_a_key_revoked_while_serving_degrades_health_and_keeps_the_last_snapshot(fake, db, serve) -> None:
    fake.script(LISTINGS_PATH, Ok(), Error(1001))
    served = serve("--interval", "1")
    served.wait_health(lambda doc: "failed" in doc.get("reason", ""))

    response = served.get("/health")
    assert response.status_code == 503
    health = response.json()
    assert health["status"] == "degraded"
    assert health["reason"].startswith("the market source failed: CoinMarketCap says the API key is invalid")
    assert "UBOT_COINMARKETCAP_API_KEY" in health["reason"]
    assert health["source_status"]["state"] == "degraded"
    assert (health["ticks_ok"], health["clock"]["ticking"]) == (1, False)

    snapshot = served.get("/v1/snapshot")
    assert snapshot.status_code == 200
    doc = snapshot.json()
    assert doc["timestamp"] == iso_from_ms(T0_MS)  # the last good tick
    assert [coin["id"] for coin in doc["coins"]] == coin_ids_at(T0_MS)

    assert served.stop() == 0
    assert_clean(served.log)
    assert "pipeline stopped" in served.log
    assert len(fake.calls(LISTINGS_PATH)) == 2


def test_a_key_refused_when_the_worker_starts_degrades_health_without_a_crash(fake, db, serve) -> None:
    """The start-up check read the plan; by the time gunicorn's worker reads it, the key is gone."""
    fake.script(KEY_INFO_PATH, Ok(), Error(1001))
    fake.script(LISTINGS_PATH, Error(1001))
    served = serve("--interval", "1")
    health = served.wait_health(lambda doc: "failed" in doc.get("reason", ""))
    assert (health["status"], health["ticks"]) == ("degraded", 0)
    assert "API key is invalid" in health["reason"]
    assert served.get("/health").status_code == 503
    assert served.stop() == 0
    assert_clean(served.log)


def test_health_shows_credits_then_a_rate_limit_without_further_calls(fake, db, serve) -> None:
    fake.plan_monthly = 123_456
    fake.script(LISTINGS_PATH, Ok(), rate_limited(1008, retry_after=3600))
    served = serve("--interval", "1")

    health = served.wait_health(lambda doc: doc["ticks_ok"] >= 1)
    credits = health["source_status"]
    assert credits["credits_today"] > 0 and credits["credits_month"] >= fake.month_used + 2
    assert (credits["credit_limit_monthly"], credits["rate_limit_minute"], credits["plan_from"]) == (
        123_456,
        fake.plan_minute,
        "key_info",
    )

    health = served.wait_health(lambda doc: doc["ticks"] >= 4)
    assert len(fake.calls(LISTINGS_PATH)) == 2  # ticks 3 and 4 were skipped without a call
    assert (health["status"], health["ticks_ok"]) == ("degraded", 1)
    status = health["source_status"]
    assert status["state"] == "degraded"
    assert status["reason"].startswith("rate limited (minute request limit (1008)) until ")
    assert status["resume_at"] is not None
    assert parse_iso_ms(status["resume_at"]) > time.time() * 1000 + 3_000_000  # Retry-After: 3600
    assert status["skipped_rate_limited"] >= 2
    assert health["reason"].startswith("last tick skipped: rate limited")

    assert served.stop() == 0
    assert_clean(served.log)


# -- record, then replay --------------------------------------------------------------------------


def candles(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT * FROM candle ORDER BY coin_id, timeframe, open_time").fetchall()


def test_a_recording_replays_to_the_same_candles(tmp_path, fake) -> None:
    recording = tmp_path / "recording"
    live = run(
        tmp_path,
        fake,
        *("--source", "cmc", "--no-http", "--ticks", "5", "--interval", "1"),
        *("--record", str(recording), "--db", "sqlite:///live.db"),
    )
    assert live.returncode == 0, live.stderr
    assert_clean(live.stdout + live.stderr)
    assert len([name for name in os.listdir(recording) if name.endswith(".json")]) == 5

    replayed = run(
        tmp_path,
        fake,
        *("--source", "replay", "--replay-dir", str(recording), "--interval", "0", "--no-http"),
        *("--db", "sqlite:///replay.db"),
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "source exhausted after 5 tick(s)" in replayed.stderr
    assert len(fake.calls(LISTINGS_PATH)) == 5  # the replay asked nothing

    recorded = candles(tmp_path / "live.db")
    assert {row[1] for row in recorded} >= {"1m", "5m"}  # 08:31..08:35: a 5-minute candle closed
    assert candles(tmp_path / "replay.db") == recorded


# -- configuration --------------------------------------------------------------------------------


def test_recording_a_replay_is_refused(tmp_path, fake) -> None:
    # (cmc and simulated record; a replay only plays back what was recorded)
    recording = tmp_path / "recording"
    replayed = tmp_path / "replayed"
    replayed.mkdir()
    args = ("--source", "replay", "--replay-dir", str(replayed), "--record", str(recording), "--no-http")
    result = run(tmp_path, fake, *args)
    assert_refused(result, "--record", "--source cmc or simulated, not replay")
    assert not recording.exists() and not (tmp_path / "ubot.db").exists()


def test_an_unwritable_record_directory_is_refused(tmp_path, fake) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    target = blocker / "recording"
    result = run(tmp_path, fake, "--source", "cmc", "--record", str(target), "--no-http")
    assert_refused(result, f"cannot record into {target}")
    assert fake.calls() == []
    assert not (tmp_path / "ubot.db").exists()
