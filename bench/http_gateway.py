#!/usr/bin/env python3
"""HTTP benchmark (named http_gateway.py: a bench/http.py would shadow the standard library's http package
for every script in bench/): GET /v1/snapshot (5,000 coins) on uBot beside a bare Falcon app serving the same bytes.

    python bench/http_gateway.py [--coins 5000] [--duration 10] [--connections 64] [--threads 8]

Both servers run under the same gunicorn configuration (uBot's GatewayServer: one ASGI worker,
its responders in a pool of ``--threads`` threads, keep-alive), each in its own process:

* uBot: ``run.py`` on a replay of one recorded 5,000-coin snapshot (the simulated market written in
  the replay format), so the pipeline runs once and then stays idle while the gateway is measured;
* the floor: a Falcon app with one resource that returns the very bytes and ETag uBot serves (and a
  304 to ``If-None-Match``), no middleware, no actors.

The load generator is wrk (Debian's package ``wrk``; C, event-driven, one connection per client,
keep-alive), ``--connections`` concurrent clients over 2 threads for ``--duration`` seconds per run.
Four runs: 200 on each server, then 304 (``If-None-Match`` with the current ETag) on each. Reported:
requests/s, latency p50/p99, and uBot's share of the floor's throughput.
Targets (issue 6): uBot >= 80 % of the floor at 200; uBot's 304 at least as fast as the floor's 200.

wrk shares the machine's cores with the server; the floor run shows how many requests/s this
machine can serve at all with this setup, so the ratio is what matters.
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, ROOT)

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float = 120.0) -> tuple[bytes, str]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read(), response.headers["ETag"]
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.2)


def write_replay(directory: str, coins: int) -> None:
    from ubot.market.recorder import Recorder
    from ubot.market.simulated import SimulatedSource

    raw = SimulatedSource(limit=coins, seed=1).documents(START_MS)
    Recorder(directory).write(START_MS, raw.listings, raw.global_metrics)


def serve_bare(port: int, body_file: str, etag: str, threads: int) -> None:
    """The floor: the same bytes from a bare Falcon app under the same gunicorn configuration."""
    import falcon

    from run import SWITCH_INTERVAL_S
    from ubot.http.asgi import App, Offload
    from ubot.http.server import GatewayServer

    sys.setswitchinterval(SWITCH_INTERVAL_S)  # as uBot's own process (run.py) sets it
    with open(body_file, "rb") as handle:
        body = handle.read()

    class Snapshot:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.etag = etag
            if req.get_header("If-None-Match") == etag:
                resp.status = falcon.HTTP_304
                return
            resp.content_type = falcon.MEDIA_JSON
            resp.data = body

    def make_app() -> App:
        app = App(offload=Offload(threads))  # uBot's ASGI app: the responder runs in its pool too
        app.add_route("/v1/snapshot", Snapshot())
        return app

    GatewayServer(("127.0.0.1", port), threads, make_app, lambda: None, "warning").run()


def wrk(url: str, duration: int, connections: int, etag: str | None = None) -> dict[str, float]:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url]
    if etag:
        command[1:1] = ["-H", f"If-None-Match: {etag}"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {m.group(1): _ms(m.group(2)) for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": latency["50"],
        "p99": latency["99"],
        "errors": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=5000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--bare-serve", nargs=3, metavar=("PORT", "BODY_FILE", "ETAG"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.bare_serve:
        port, body_file, etag = args.bare_serve
        serve_bare(int(port), body_file, etag, args.threads)
        return
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk (Debian's package)")

    work = tempfile.mkdtemp(prefix="ubot-bench-http-")
    replay = os.path.join(work, "replay")
    write_replay(replay, args.coins)
    ubot_port, bare_port = free_port(), free_port()
    # Rate limits off: every wrk client comes from 127.0.0.1, which the per-client limit would throttle.
    env = {
        **os.environ,
        "UBOT_HTTP_THREADS": str(args.threads),
        "UBOT_LOG_LEVEL": "WARNING",
        "UBOT_LIMITS_ENABLED": "false",
    }
    ubot = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "run.py"), "--source", "replay", "--replay-dir", replay,
         "--interval", "0", "--db", f"sqlite:///{work}/ubot.db", "--bind", f"127.0.0.1:{ubot_port}"],
        env=env,
        cwd=work,
    )  # fmt: skip
    bare = None
    try:
        ubot_url = f"http://127.0.0.1:{ubot_port}/v1/snapshot"
        body, etag = wait_for(ubot_url)
        body_file = os.path.join(work, "snapshot.json")
        with open(body_file, "wb") as handle:
            handle.write(body)
        bare = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--threads", str(args.threads), "--bare-serve",
             str(bare_port), body_file, etag],
            cwd=work,
        )  # fmt: skip
        bare_url = f"http://127.0.0.1:{bare_port}/v1/snapshot"
        floor_body, _ = wait_for(bare_url)
        assert floor_body == body
        print(
            f"GET /v1/snapshot: {args.coins} coins, {len(body) / 1e6:.2f} MB; {args.connections} keep-alive "
            f"clients (wrk), {args.duration} s per run; gunicorn asgi, 1 worker, a pool of {args.threads} threads"
        )
        results = {}
        for name, url, tag in (
            ("floor 200", bare_url, None),
            ("uBot 200", ubot_url, None),
            ("floor 304", bare_url, etag),
            ("uBot 304", ubot_url, etag),
        ):
            wrk(url, 2, args.connections, tag)  # warm-up
            r = results[name] = wrk(url, args.duration, args.connections, tag)
            print(
                f"  {name:10s} {r['rps']:9.0f} req/s   p50 {r['p50']:7.2f} ms   p99 {r['p99']:7.2f} ms"
                f"   errors {r['errors']}{'  socket errors: ' + r['socket_errors'] if r['socket_errors'] else ''}"
            )
        share = results["uBot 200"]["rps"] / results["floor 200"]["rps"]
        not_modified = results["uBot 304"]["rps"] / results["floor 200"]["rps"]
        print(
            f"RESULT uBot 200 = {share:.0%} of the floor (target >= 80 %); uBot 304 = {not_modified:.1f}x the "
            f"floor's 200 (target >= 1x); uBot 304 = {results['uBot 304']['rps'] / results['floor 304']['rps']:.0%} "
            "of the floor's 304"
        )
    finally:
        for process in (bare, ubot):
            if process is not None:
                stop(process)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
