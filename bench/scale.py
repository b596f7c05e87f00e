#!/usr/bin/env python3
"""One gateway process under many idle clients: ``GET /v1/snapshot`` latency while thousands of
event streams and hundreds of half-open sockets are held open (issue 11, item 1).

    python bench/scale.py [--streams 2000] [--half-open 500] [--requests 500] [--coins 100]

uBot runs as a user runs it (``run.py``, the simulated market, one tick a second, SQLite), on
gunicorn's ASGI worker. This script is the clients, all on loopback:

1. baseline: ``--requests`` sequential ``GET /v1/snapshot`` (one keep-alive connection, no gzip),
   nothing else open: p50/p99;
2. it opens ``--streams`` ``GET /v1/stream`` connections (each from its own ``X-Forwarded-For``
   address, the server trusting 127.0.0.1 as a proxy, so the per-address cap does not bind) and
   ``--half-open`` sockets that send ``G`` and nothing more; ``[http] request_timeout`` is raised to
   300 s for the run so they stay open while measuring;
3. the same requests again, with all of those open: p50/p99, and the ratio to the baseline;
4. the worker's memory (RSS, from /proc) before and after the streams opened: per stream;
5. fan-out: for each snapshot event the streams received while measuring, how long after the first
   stream each stream had it (p50/p99 over every delivery, and the worst per event).

The rate limits are off for the run (one client address sends every request). The figures are
printed; the target is p99 <= 50 ms under load.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def worker_pid(master: int) -> int:
    with open(f"/proc/{master}/task/{master}/children") as children:
        found = children.read().split()
    if len(found) != 1:
        raise RuntimeError(f"expected one gunicorn worker under {master}, found {found}")
    return int(found[0])


def snapshot_latencies(port: int, count: int) -> list[float]:
    """``count`` sequential GET /v1/snapshot on one keep-alive connection; seconds each."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    took = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", "/v1/snapshot")
        response = connection.getresponse()
        response.read()
        took.append(time.perf_counter() - started)
        if response.status != 200:
            raise RuntimeError(f"GET /v1/snapshot answered {response.status}")
    connection.close()
    return took


def wait_ready(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/v1/snapshot")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"uBot did not serve a snapshot within {timeout:.0f} s")
        time.sleep(0.2)


def forwarded(n: int) -> str:
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


class Clients:
    """The streams and half-open sockets, on an event loop in a thread of this process."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.arrivals: dict[str, list[float]] = defaultdict(list)  # event id -> arrival times
        self.recording = False
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: list[asyncio.Task] = []

    def run(self, coroutine) -> object:  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def _stream(self, n: int, opened: asyncio.Event) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        self.writers.append(writer)
        writer.write(
            f"GET /v1/stream HTTP/1.1\r\nHost: b\r\nX-Forwarded-For: {forwarded(n)}\r\n\r\n".encode()
        )
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream {n}: {status!r}")
        await reader.readuntil(b"\r\n\r\n")
        opened.set()
        while line := await reader.readline():
            if self.recording and line.startswith(b"id: "):
                self.arrivals[line[4:].strip().decode()].append(time.perf_counter())

    async def open_streams(self, count: int) -> None:
        for n in range(count):
            opened = asyncio.Event()
            self.tasks.append(asyncio.ensure_future(self._stream(n, opened)))
            await asyncio.wait_for(opened.wait(), 30)

    async def open_half(self, count: int) -> None:
        for _ in range(count):
            _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.write(b"G")
            self.writers.append(writer)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in self.writers:
            writer.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--half-open", type=int, default=500)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--coins", type=int, default=100)
    args = parser.parse_args()

    port = free_port()
    work = tempfile.mkdtemp(prefix="ubot-scale-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UBOT_")}
    env.update(
        UBOT_HTTP_STREAM_MAX=str(args.streams),
        UBOT_HTTP_TRUSTED_PROXIES="127.0.0.1",
        UBOT_HTTP_REQUEST_TIMEOUT="300",
        UBOT_LIMITS_ENABLED="false",
        UBOT_LOG_LEVEL="WARNING",
    )
    command = [sys.executable, os.path.join(ROOT, "run.py"), "--config", os.path.join(ROOT, "settings.ini")]
    command += ["--source", "simulated", "--limit", str(args.coins), "--interval", "1"]
    command += ["--db", f"sqlite:///{work}/ubot.db", "--bind", f"127.0.0.1:{port}"]
    with open(os.path.join(work, "ubot.log"), "w") as log:
        server = subprocess.Popen(command, cwd=work, env=env, stdout=log, stderr=log)
    clients = None
    try:
        wait_ready(port)
        worker = worker_pid(server.pid)
        print(
            f"uBot on 127.0.0.1:{port} (gunicorn asgi, worker pid {worker}), {args.coins} coins, a tick a second"
        )
        baseline = snapshot_latencies(port, args.requests)
        clients = Clients(port)
        before = rss_kib(worker)
        started = time.perf_counter()
        clients.run(clients.open_streams(args.streams))
        opened_in = time.perf_counter() - started
        after = rss_kib(worker)
        clients.run(clients.open_half(args.half_open))
        clients.recording = True
        loaded = snapshot_latencies(port, args.requests)
        time.sleep(2.5)  # at least two ticks' events reach every stream
        clients.recording = False
        spreads, worst = [], []
        for times in clients.arrivals.values():
            if len(times) < args.streams:
                continue  # an event that arrived while recording began or ended
            first = min(times)
            delays = [t - first for t in times]
            spreads += delays
            worst.append(max(delays))

        def ms(seconds: float) -> str:
            return f"{seconds * 1000:.1f} ms"

        print(f"GET /v1/snapshot, {args.requests} sequential requests each run:")
        print(
            f"  nothing else open:        p50 {ms(statistics.median(baseline))}, p99 {ms(percentile(baseline, 0.99))}"
        )
        print(
            f"  {args.streams} streams + {args.half_open} half-open: p50 {ms(statistics.median(loaded))}, "
            f"p99 {ms(percentile(loaded, 0.99))} "
            f"(x{statistics.median(loaded) / statistics.median(baseline):.2f} / "
            f"x{percentile(loaded, 0.99) / percentile(baseline, 0.99):.2f} of the baseline)"
        )
        print(f"streams opened one after the other in {opened_in:.1f} s")
        print(
            f"worker memory: {before / 1024:.1f} MiB before the streams, {after / 1024:.1f} MiB with "
            f"{args.streams}: {(after - before) / args.streams:.1f} KiB per stream"
        )
        if worst:
            print(
                f"fan-out of {len(worst)} snapshot events to {args.streams} streams (after the first "
                f"stream had it): p50 {ms(statistics.median(spreads))}, p99 {ms(percentile(spreads, 0.99))}, "
                f"worst per event median {ms(statistics.median(worst))}"
            )
        else:
            print("fan-out: no event reached every stream while recording")
    finally:
        if clients is not None:
            clients.run(clients.close())
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
