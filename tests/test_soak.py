"""The soak's short CI variant (bench/soak.py is the full minute): concurrent clients against the real
server while the pipeline ticks every second. Every answer is 200 or 304, no tick is skipped or missed,
and SIGTERM still stops everything with exit 0. The clock's lateness under this load is printed (a
figure to read, not asserted: timing belongs to the benchmark)."""

from __future__ import annotations

import signal
import threading
from collections import Counter

import pytest
import requests

from tests.support.ports import free_port
from tests.support.processes import command, environment, launch
from tests.support.waits import wait_until

TIMEOUT_S = 30

CLIENTS = 8
PATHS = (
    "/v1/snapshot",
    "/v1/snapshot?symbols=BTC,ETH",
    "/v1/coins/BTC/candles?timeframe=1m&limit=30",
    "/health",
    "/v1/coins/ETH/quotes?limit=10",
)
TICKS = 4  # ticks to keep the clients busy for


def health(base: str) -> dict:
    return requests.get(base + "/health", timeout=10).json()


@pytest.fixture
def server(tmp_path, database_url):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "ubot.log"
    env = environment(tmp_path / "home", {"UBOT_LIMITS_ENABLED": "false"})  # one address for every client
    flags = ("--interval", "1", "--limit", "200", "--db", database_url, "--bind", f"127.0.0.1:{port}")
    process = launch(command(*flags), log_path, cwd=tmp_path, env=env)
    try:
        wait_until(
            lambda: health(base).get("last_snapshot_at"),
            "a first snapshot",
            alive=process,
            ignoring=(requests.RequestException,),
            interval=0.05,
        )
        yield process.proc, base, log_path
    finally:
        process.close()


def test_clients_and_ticks_together_without_an_error(server) -> None:
    proc, base, log_path = server
    before = health(base)
    statuses: Counter = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def client(k: int) -> None:
        session = requests.Session()
        etag = None
        i = k
        while not stop.is_set():
            path = PATHS[i % len(PATHS)]
            i += 1
            headers = {"If-None-Match": etag} if etag and path == "/v1/snapshot" and i % 2 else {}
            try:
                response = session.get(base + path, headers=headers, timeout=10)
            except requests.RequestException as exc:
                failures.append(f"{path}: {exc}")
                continue
            statuses[response.status_code] += 1
            if path == "/v1/snapshot" and response.status_code == 200:
                etag = response.headers.get("ETag")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        # the load runs across several ticks
        wait_until(lambda: health(base)["ticks"] >= before["ticks"] + TICKS, f"{TICKS} ticks", interval=0.1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    after = health(base)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=TIMEOUT_S) == 0
    log = log_path.read_text()
    assert failures == []
    assert set(statuses) <= {200, 304}, statuses
    assert statuses[200] > 0
    assert after["ticks_skipped"] == before["ticks_skipped"]
    assert after["clock"]["missed_ticks"] == before["clock"]["missed_ticks"]
    assert "Traceback" not in log, log
    clock = after["clock"]
    print(
        f"\nsoak (CI variant): {sum(statuses.values())} requests {dict(statuses)}, "
        f"{after['ticks'] - before['ticks']} ticks; clock lateness p50 {clock['lateness_ms_p50']} ms, "
        f"p99 {clock['lateness_ms_p99']} ms, max {clock['lateness_ms_max']} ms"
    )
