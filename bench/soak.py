#!/usr/bin/env python3
"""Soak: many HTTP clients for a minute while the pipeline ticks every second.

    python bench/soak.py [--seconds 60] [--connections 64] [--coins 1000] [--interval 1]

Starts ``run.py`` (simulated market, ``--coins`` coins, a tick every ``--interval`` seconds, SQLite in
a temporary directory), signs up a user with ``--strategies`` strategies over the top 10..1000 coins
(alert log only) so the Scanner works too, waits for the first snapshot, then runs wrk with ``--connections`` keep-alive clients for ``--seconds`` seconds over a mix
of requests (the whole snapshot, a filtered snapshot, candles, /health; 304s when the client has the
ETag). Reports wrk's requests/s, latency and errors, and from ``/health`` at the end: ticks done and
skipped, the clock's lateness p50/p99/max and missed ticks, the Scanner's figures. Exits 1 when a
request failed, a tick was skipped or missed, or lateness p99 exceeds 5 ms (issue 6's bar).

Rate limits are switched off for the run (``UBOT_LIMITS_ENABLED=false``): every client here comes
from 127.0.0.1, which the per-client limit would otherwise throttle, as it should.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

LUA = """
local paths = {"/v1/snapshot", "/v1/snapshot?symbols=BTC,ETH,SOL", "/v1/coins/BTC/candles?timeframe=1m&limit=60",
               "/health", "/v1/coins/ETH/quotes?limit=20"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def post(url: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


CONDITIONS = (
    "rsi(14) < 30",
    "percent_change_1h > 2",
    "price > sma(20)",
    "macd() > macd_signal()",
    "price < bb_lower(20, 2)",
    "change(5) > 1",
)


def add_strategies(base: str, count: int) -> None:
    """One user with ``count`` strategies (alert log only), so the Scanner works during the soak."""
    password = "marble harbour 7 quietly"
    post(base + "/v1/users", {"username": "soak", "email": "soak@example.com", "password": password})
    token = post(base + "/v1/sessions", {"username": "soak", "password": password})["token"]
    for i in range(count):
        body = {
            "name": f"soak {i}",
            "condition": CONDITIONS[i % len(CONDITIONS)],
            "timeframe": ("1m", "5m", "1h")[i % 3],
            "top_n": (10, 100, 1000)[i % 3],
            "frequency": ("once_per_crossing", "once_per_bar")[i % 2],
        }
        post(base + "/v1/me/strategies", body, token)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--coins", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--strategies", type=int, default=30, help="strategies to scan (at most 50)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk (Debian's package)")
    work = tempfile.mkdtemp(prefix="ubot-soak-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "UBOT_LOG_LEVEL": "WARNING", "UBOT_LIMITS_ENABLED": "false"}
    server = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "run.py"), "--source", "simulated", "--limit", str(args.coins),
         "--interval", str(args.interval), "--db", f"sqlite:///{work}/ubot.db", "--bind", f"127.0.0.1:{port}"],
        env=env,
        cwd=work,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if get_json(base + "/health").get("last_snapshot_at"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("no snapshot within 120 s")
            time.sleep(0.2)
        add_strategies(base, args.strategies)
        before = get_json(base + "/health")
        script = os.path.join(work, "mix.lua")
        with open(script, "w") as handle:
            handle.write(LUA)
        print(
            f"soak: {args.connections} keep-alive clients (wrk) for {args.seconds} s; {args.coins} coins, "
            f"a tick every {args.interval:g} s"
        )
        out = subprocess.run(
            ["wrk", "-t2", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", "-s", script, base],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        after = get_json(base + "/health")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
            code = None
        shutil.rmtree(work, ignore_errors=True)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    errors = int(bad.group(1)) if bad else 0
    clock = after["clock"]
    ticks = after["ticks"] - before["ticks"]
    skipped = after["ticks_skipped"] - before["ticks_skipped"]
    print(f"  http: {rps:.0f} req/s, p50 {latency.get('50')}, p99 {latency.get('99')}, non-2xx/3xx {errors}")
    if socket_errors:
        print(f"  socket errors: {socket_errors.group(1)}")
    print(
        f"  pipeline: {ticks} ticks during the soak, {skipped} skipped; clock lateness p50 "
        f"{clock['lateness_ms_p50']} ms, p99 {clock['lateness_ms_p99']} ms, max {clock['lateness_ms_max']} ms; "
        f"missed ticks {clock['missed_ticks'] - before['clock']['missed_ticks']}"
    )
    scanner = after.get("scanner") or {}
    if scanner:
        print(
            f"  scanner: {scanner.get('scans')} scans, p50 {scanner.get('scan_ms_p50')} ms, skipped {scanner.get('scans_skipped')}"
        )
    print(f"  server exit code after SIGTERM: {code}")
    ok = (
        errors == 0
        and not socket_errors
        and skipped == 0
        and clock["lateness_ms_p99"] <= 5
        and clock["missed_ticks"] == before["clock"]["missed_ticks"]
        and code == 0
    )
    print(
        f"RESULT {'PASS' if ok else 'FAIL'}: errors {errors}, lateness p99 {clock['lateness_ms_p99']} ms (<= 5)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
