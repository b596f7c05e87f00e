#!/usr/bin/env python3
"""How long each role takes to stop after SIGTERM or SIGINT, under load (issue 12: within 3 s).

Over PostgreSQL and Redis (``--postgres``/``--redis``, or UBOT_TEST_POSTGRES_URL/UBOT_TEST_REDIS_URL;
a schema and a key prefix of its own, removed at the end): an engine (scanners and notifiers external)
stores a first snapshot, ``--strategies`` strategies are written in bulk (``tests/support/strategies.py``'s
:func:`seed_strategies`: 1,000 users x 50 per 50,000), then, one process at a time, each role in
``--roles`` is started and signalled ``--moments`` seconds after its start (the first ones land in its
start-up: reading and planning every strategy, taking the share over, seeding its series in the
tick; the later ones in its scans and their alerts), alternately SIGTERM and SIGINT:

* ``scanner``, ``notifier``, ``gateway`` (one gunicorn worker) beside that engine;
* ``engine``: a second engine (a standby while the first runs; the first is signalled last);
* ``all``: the first engine stopped, one process with everything, serving HTTP, scanning the
  strategies itself (its tick in flight is finished: stored, candled, scanned).

Printed per stop: the signal, the moment, the seconds from the signal to the exit, the exit code and
whether its stop line was logged (``ubot: stopped``; ``pipeline stopped`` for ``all``; a gateway's
gunicorn master logs ``Shutting down``); then the load average.

    python bench/stop.py [--strategies 20000] [--coins 100] [--interval 2] [--moments 2,6,12,25]
                         [--roles scanner,notifier,gateway,engine,all]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from bench.scale import cluster_schema, free_port, roles_env, wait_for_snapshot  # noqa: E402
from tests.support.strategies import seed_strategies  # noqa: E402

#: What each role logs when it stopped cleanly (besides the lines of a stop while it starts).
STOP_LINES = {
    "scanner": "INFO ubot: stopped",
    "notifier": "INFO ubot: stopped",
    "engine": "INFO ubot: stopped",
    "gateway": "Shutting down",
    "all": "pipeline stopped",
}
#: A stop while run.py loads, or during its start checks.
STARTING_LINES = ("while starting: stopped", "INFO ubot: stopped: a stop signal came")


def stop_once(
    argv: list[str], env: dict[str, str], log_path: str, role: str, after_s: float, signum: int
) -> str:
    """Start ``argv``, signal it ``after_s`` seconds later, wait for its exit: one line to print."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log)
    time.sleep(after_s)
    if process.poll() is not None:
        return f"  {role}: exited by itself ({process.returncode}) before {after_s:g} s: see {log_path}"
    signalled = time.monotonic()
    process.send_signal(signum)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return f"  {role}: {signal.Signals(signum).name} at {after_s:g} s: not stopped within 60 s (killed)"
    took = time.monotonic() - signalled
    with open(log_path) as log:
        text = log.read()
    lines = (STOP_LINES[role], *STARTING_LINES)
    logged = any(line in text for line in lines) and "Traceback" not in text
    return (
        f"  {role}: {signal.Signals(signum).name} {after_s:g} s after its start: exited {code} in "
        f"{took:.2f} s{'' if logged else ' (no clean stop line, or a traceback: see ' + log_path + ')'}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--postgres", help="PostgreSQL (default UBOT_TEST_POSTGRES_URL)")
    parser.add_argument("--redis", help="Redis (default UBOT_TEST_REDIS_URL)")
    parser.add_argument("--strategies", type=int, default=20_000)
    parser.add_argument("--strategy-coins", type=int, default=10, help="each strategy's top N coins")
    parser.add_argument("--coins", type=int, default=100)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between ticks")
    parser.add_argument("--moments", default="2,6,12,25", help="seconds after a role's start")
    parser.add_argument("--roles", default="scanner,notifier,gateway,engine,all")
    args = parser.parse_args()
    found = cluster_schema(args)
    if found is None:
        print("skipped: no --postgres/--redis (UBOT_TEST_POSTGRES_URL/UBOT_TEST_REDIS_URL)")
        return 0
    db, redis_url, prefix, cleanup = found
    moments = [float(m) for m in args.moments.split(",")]
    roles = args.roles.split(",")
    work = tempfile.mkdtemp(prefix="ubot-stop-")
    env = roles_env(prefix, UBOT_LIMITS_ENABLED="false")
    base = [sys.executable, "run.py", "--config", "settings.ini", "--db", db]
    base += ["--limit", str(args.coins), "--interval", str(args.interval)]
    cluster = [*base, "--redis", redis_url]
    engine_log = open(os.path.join(work, "engine.log"), "w")  # noqa: SIM115
    engine = subprocess.Popen(
        [*cluster, "--role", "engine"], cwd=ROOT, env=env, stdout=engine_log, stderr=engine_log
    )
    try:
        wait_for_snapshot(db, engine, work)
        seed_strategies(db, args.strategies, args.strategy_coins)
        print(
            f"stop times: {args.strategies:,} strategies (each on its top {args.strategy_coins} of "
            f"{args.coins} coins), a tick every {args.interval:g} s, PostgreSQL and Redis; logs in {work}",
            flush=True,
        )
        signals = (signal.SIGTERM, signal.SIGINT)
        number = 0
        for role in [r for r in roles if r in ("scanner", "notifier", "gateway", "engine")]:
            for moment in moments:
                argv = [*cluster, "--role", role]
                if role == "gateway":
                    argv += ["--bind", f"127.0.0.1:{free_port()}"]
                log_path = os.path.join(work, f"{role}-{number}.log")
                print(stop_once(argv, env, log_path, role, moment, signals[number % 2]), flush=True)
                number += 1
        engine.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        code = engine.wait(timeout=60)
        print(
            f"  engine (active): SIGTERM: exited {code} in {time.monotonic() - signalled:.2f} s", flush=True
        )
        if "all" in roles:
            env_all = {k: v for k, v in env.items() if not k.startswith("UBOT_CLUSTER")}
            env_all["UBOT_LIMITS_ENABLED"] = "false"
            for moment in moments:
                argv = [*base, "--bind", f"127.0.0.1:{free_port()}"]
                log_path = os.path.join(work, f"all-{number}.log")
                print(stop_once(argv, env_all, log_path, "all", moment, signals[number % 2]), flush=True)
                number += 1
        print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
        engine_log.close()
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
