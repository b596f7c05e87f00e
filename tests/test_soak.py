"""The soak's short CI variant (bench/soak.py is the full minute): concurrent clients against the real
server while the pipeline ticks every second. Every answer is 200 or 304, no tick is skipped or missed,
and SIGTERM still stops everything with exit 0. The clock's lateness under this load is printed (a
figure to read, not asserted: timing belongs to the benchmark)."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from collections import Counter

import pytest
import requests

from tests.test_run import TIMEOUT_S, command, environment

CLIENTS = 8
PATHS = (
    "/v1/snapshot",
    "/v1/snapshot?symbols=BTC,ETH",
    "/v1/coins/BTC/candles?timeframe=1m&limit=30",
    "/health",
    "/v1/coins/ETH/quotes?limit=10",
)
TICKS = 4  # ticks to keep the clients busy for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(base: str) -> dict:
    return requests.get(base + "/health", timeout=10).json()


@pytest.fixture
def server(tmp_path, database_url):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "ubot.log"
    env = environment(tmp_path, {"UBOT_LIMITS_ENABLED": "false"})  # one address for every client
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            command("--interval", "1", "--limit", "200", "--db", database_url, "--bind", f"127.0.0.1:{port}"),
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + TIMEOUT_S
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if health(base).get("last_snapshot_at"):
                        break
                except requests.RequestException:
                    pass
                assert time.monotonic() < deadline, "no snapshot in time"
                time.sleep(0.05)
            yield proc, base, log_path
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


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
        deadline = time.monotonic() + TIMEOUT_S
        while health(base)["ticks"] < before["ticks"] + TICKS:  # the load runs across several ticks
            assert time.monotonic() < deadline, "the pipeline stopped ticking under load"
            time.sleep(0.1)
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
