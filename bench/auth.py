#!/usr/bin/env python3
"""Authentication benchmark (issue 11): an authenticated ``GET /v1/me/settings``'s latency while
30 wrong logins a second arrive, on this tree and, side by side in the same run, on another
checkout (``--before``, e.g. main before the change).

    python bench/auth.py [--before REF] [--rate 30] [--duration 10]

Each tree runs as a user starts it: ``run.py --interval 1 --limit 20`` on a new SQLite file, default
settings but ``[limits] enabled = false`` (the figure is about the token check, not the rate
limits, which would otherwise turn most of the logins away) and ``[http] trusted_proxies =
127.0.0.1`` (each wrong login comes from an address of its own, in ``X-Forwarded-For``, so the
per-address login throttle never answers before argon2 runs: the worst case for the hash load).

One account signs up and logs in. Then, for ``--duration`` seconds each:

* idle: one client sends ``GET /v1/me/settings`` with its bearer token, one after the other;
* under load: the same, while wrong logins (unknown usernames, each a full argon2 verification)
  are sent open-loop at ``--rate`` a second, each on its own connection.

Printed: p50 and p99 of the GET, idle and under load, for each tree, and what the logins were
answered (401 checked and refused, 503 the hash pool full, with ``Retry-After``).

``--before REF``: a git ref of this repository, exported with ``git archive`` into a temporary
directory (nothing is written to any worktree) and run with this interpreter.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from tests.support.cluster import TIMEOUT_S, account, wait_serving  # noqa: E402
from tests.support.ports import free_port  # noqa: E402
from tests.support.processes import Process, environment, launch  # noqa: E402


def export(ref: str, directory: str) -> str:
    archive = subprocess.run(["git", "-C", ROOT, "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
    return directory


def start(root: str, work: str) -> tuple[Process, str]:
    """``root``'s run.py in ``work``, once it serves a snapshot; its base URL."""
    port = free_port()
    env = environment(
        Path(work),
        {
            "UBOT_LIMITS_ENABLED": "false",
            "UBOT_HTTP_TRUSTED_PROXIES": "127.0.0.1",
            "PYTHONDONTWRITEBYTECODE": "1",
        },
    )
    argv = [sys.executable, os.path.join(root, "run.py"), "--interval", "1", "--limit", "20"]
    argv += ["--db", f"sqlite:///{work}/ubot.db", "--bind", f"127.0.0.1:{port}", "--log-level", "WARNING"]
    process = launch(argv, Path(work) / "ubot.log", cwd=Path(work), env=env, new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_serving(base, process, f"{root}: run.py")
    return process, base


def gets(base: str, token: str, until: float) -> list[float]:
    """Latencies (ms) of sequential authenticated GETs until ``until`` (monotonic)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    latencies = []
    while time.monotonic() < until:
        began = time.perf_counter()
        answer = session.get(base + "/v1/me/settings", timeout=TIMEOUT_S)
        latencies.append((time.perf_counter() - began) * 1000)
        assert answer.status_code == 200, answer.text
    session.close()
    return latencies


def wrong_logins(
    base: str, rate: float, until: float, statuses: collections.Counter
) -> list[threading.Thread]:
    """Open loop: one wrong login every 1/rate s, each in a thread of its own; the threads."""
    threads = []
    lock = threading.Lock()

    def one(n: int) -> None:
        try:
            answer = requests.post(
                base + "/v1/sessions",
                json={"username": f"nobody{n}", "password": "wrong password 1"},
                headers={"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"},
                timeout=TIMEOUT_S,
            )
            key = str(answer.status_code)
            if answer.status_code == 503:
                key += f" (Retry-After {answer.headers.get('Retry-After')})"
        except requests.RequestException as error:
            key = type(error).__name__
        with lock:
            statuses[key] += 1

    began = time.monotonic()
    n = 0
    while (due := began + n / rate) < until:
        time.sleep(max(0.0, due - time.monotonic()))
        thread = threading.Thread(target=one, args=(n,), daemon=True)
        thread.start()
        threads.append(thread)
        n += 1
    return threads


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(root: str, label: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="ubot-bench-auth-") as work:
        process, base = start(root, work)
        try:
            token = account(base)
            gets(base, token, time.monotonic() + 1)  # warm up
            idle = gets(base, token, time.monotonic() + args.duration)
            statuses: collections.Counter = collections.Counter()
            until = time.monotonic() + args.duration
            load = threading.Thread(
                target=lambda: senders.extend(wrong_logins(base, args.rate, until, statuses))
            )
            senders: list[threading.Thread] = []
            load.start()
            loaded = gets(base, token, until)
            load.join()
            for thread in senders:
                thread.join(TIMEOUT_S)
        finally:
            process.proc.terminate()
            process.proc.wait(TIMEOUT_S)
    figures = {
        "idle_p50": p(idle, 50),
        "idle_p99": p(idle, 99),
        "load_p50": p(loaded, 50),
        "load_p99": p(loaded, 99),
        "gets": len(loaded),
        "logins": dict(sorted(statuses.items())),
    }
    print(
        f"{label}: GET /v1/me/settings idle p50 {figures['idle_p50']:.1f} ms p99 {figures['idle_p99']:.1f} ms; "
        f"while {args.rate:g} wrong logins/s p50 {figures['load_p50']:.1f} ms p99 {figures['load_p99']:.1f} ms "
        f"({figures['gets']} GETs); logins answered {figures['logins']}",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", metavar="REF", help="also measure this git ref first (e.g. main)")
    parser.add_argument("--rate", type=float, default=30.0, help="wrong logins a second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each measurement")
    args = parser.parse_args()
    before = None
    if args.before:
        with tempfile.TemporaryDirectory(prefix="ubot-bench-before-") as tree:
            before = measure(export(args.before, tree), f"before ({args.before})", args)
    after = measure(ROOT, "after (this tree)", args)
    if before is not None:
        print(
            f"under load, before/after: p50 x{before['load_p50'] / after['load_p50']:.1f}, "
            f"p99 x{before['load_p99'] / after['load_p99']:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
