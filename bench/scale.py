#!/usr/bin/env python3
"""The gateway's scaling figures (issue 11), in one run:

A. ``GET /v1/snapshot`` requests a second with 1, 2 and 4 gateway worker processes (``--role gateway
   --workers N`` beside an engine, over PostgreSQL and Redis: ``--postgres``/``--redis`` or
   UBOT_TEST_POSTGRES_URL/UBOT_TEST_REDIS_URL; skipped without them), and the ratio to 1. The clients
   are ``--clients`` processes of this script, each one keep-alive connection sending requests one
   after the other for ``--seconds``: they share the machine's cores with the workers.
B. One gateway process under many idle clients (below, steps 1-5).
C. A public GET's p99 while 30 wrong logins a second arrive: ``bench/abuse.py``'s ``login`` figure.
D. ``--strategies`` (50,000) strategies scanned by 1, then 2 scanner processes (``--role scanner``
   beside an engine that scans nothing, over PostgreSQL and Redis as in A): the scan wall time per
   tick, from the scanners' heartbeats (``scan_ms``: reading the snapshot, building the frame, every
   worker's part), medians over ``--scan-ticks`` scans after the first ones (a scanner's first tick
   seeds its share's series), and the ratio. With 2, a tick takes as long as its slower scanner.
   The strategies are written straight to the database (:func:`seed_strategies`, bulk inserts: 1,000
   users x 50), a mix of condition shapes over each one's top ``--strategy-coins`` coins.

    python bench/scale.py [--streams 2000] [--half-open 500] [--requests 500] [--coins 100]
                          [--workers 1,2,4] [--seconds 10] [--clients 4] [--parts A,B,C,D]
                          [--strategies 50000] [--strategy-coins 10] [--scan-interval 5]
                          [--scan-ticks 8]

B: ``GET /v1/snapshot`` latency while thousands of event streams and hundreds of half-open sockets
are held open (issue 11, item 1).

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
   stream each stream had it (p50/p99 over every delivery, and the worst per event). An arrival is
   the time the kernel received the bytes (``SO_TIMESTAMPNS``), not when this script, on the same
   cores, read them: the spread is the server's writing, not the client's reading;
6. the worker's CPU time a second over ``FAN_OUT_S`` seconds with nothing asked, before the streams
   open and with them open: the difference is what the fan-out costs the server (a figure the
   machine's load inflates far less than the times above).

The rate limits are off for the run (one client address sends every request). The figures are
printed; the target is p99 <= 50 ms under load.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from tests.support.strategies import SHAPES, seed_strategies  # noqa: E402


def free_port() -> int:
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


#: An event's ``id:`` line in a stream's bytes.
EVENT_ID = re.compile(rb"^id: (\S+)$", re.MULTILINE)


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far (user and system, from /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_per_second(pid: int, seconds: float) -> float:
    """The process's CPU seconds a second over the next ``seconds``."""
    cpu, started = cpu_seconds(pid), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu) / (time.perf_counter() - started)


def forwarded(n: int) -> str:
    return f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


#: Linux's SO_TIMESTAMPNS (also the ancillary message's type, SCM_TIMESTAMPNS): each read carries the
#: time the kernel received the bytes (a ``struct timespec``). Python's socket module does not name it.
SO_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("qq")


def received_at(messages: list[tuple[int, int, bytes]]) -> float:
    """The kernel's receive time in a read's ancillary messages (``SO_TIMESTAMPNS``), in seconds."""
    for level, kind, raw in messages:
        if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
            sec, nsec = TIMESPEC.unpack_from(raw)
            return sec + nsec / 1e9
    raise RuntimeError("the kernel gave no receive time (SO_TIMESTAMPNS)")


class Clients:
    """The streams and half-open sockets. One thread reads every stream (a selector over their
    sockets), and an event's arrival is the time the kernel received its bytes (``SO_TIMESTAMPNS``),
    not the time this process got round to reading them: the spread measures the server's writes,
    not this client's reading on the same cores."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.arrivals: dict[str, list[float]] = defaultdict(list)  # event id -> arrival times
        self.recording = False
        self.sockets: list[socket.socket] = []
        self.selector = selectors.DefaultSelector()
        self.partial: dict[socket.socket, bytes] = {}  # a stream's bytes after its last whole line
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)

    def open_streams(self, count: int) -> None:
        """``count`` streams, one after the other (each answered 200 before the next); then reads them."""
        for n in range(count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            self.sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.sendall(
                f"GET /v1/stream HTTP/1.1\r\nHost: b\r\nX-Forwarded-For: {forwarded(n)}\r\n\r\n".encode()
            )
            head = b""
            while b"\r\n\r\n" not in head:
                try:
                    chunk = sock.recv(1 << 16)
                except TimeoutError:
                    raise RuntimeError(f"stream {n}: no answer within 30 s (got {head!r})") from None
                if not chunk:
                    raise RuntimeError(f"stream {n}: closed after {head!r}")
                head += chunk
            if b" 200 " not in head.split(b"\r\n", 1)[0]:
                raise RuntimeError(f"stream {n}: {head[:200]!r}")
            sock.setblocking(False)
            self.partial[sock] = b""
            self.selector.register(sock, selectors.EVENT_READ)
        self.thread.start()

    def open_half(self, count: int) -> None:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
            sock.sendall(b"G")
            self.sockets.append(sock)

    def _read(self) -> None:
        ancillary = socket.CMSG_SPACE(TIMESPEC.size)
        while not self.stopping.is_set():
            for key, _ in self.selector.select(0.5):
                sock = key.fileobj
                try:
                    data, messages, _, _ = sock.recvmsg(1 << 16, ancillary)
                except (BlockingIOError, InterruptedError):
                    continue
                if not data:
                    self.selector.unregister(sock)
                    continue
                if not self.recording:
                    self.partial[sock] = b""
                    continue
                arrived = received_at(messages)
                lines, _, self.partial[sock] = (self.partial[sock] + data).rpartition(b"\n")
                for found in EVENT_ID.finditer(lines):
                    self.arrivals[found.group(1).decode()].append(arrived)

    def close(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(5)
        for sock in self.sockets:
            sock.close()


def hammer(port: int, seconds: float, out) -> None:  # type: ignore[no-untyped-def]
    """One client: GET /v1/snapshot one after the other on one keep-alive connection for
    ``seconds``; puts the number answered 200 on ``out``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    done = 0
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        connection.request("GET", "/v1/snapshot")
        response = connection.getresponse()
        response.read()
        if response.status == 200:
            done += 1
    connection.close()
    out.put(done)


def requests_per_second(port: int, seconds: float, clients: int) -> float:
    import multiprocessing

    context = multiprocessing.get_context("fork")
    out = context.Queue()
    workers = [context.Process(target=hammer, args=(port, seconds, out)) for _ in range(clients)]
    for worker in workers:
        worker.start()
    total = sum(out.get(timeout=seconds + 60) for _ in workers)
    for worker in workers:
        worker.join()
    return total / seconds


def stored_snapshot(db: str) -> bool:
    import psycopg2

    with psycopg2.connect(db) as conn, conn.cursor() as cursor:
        try:
            cursor.execute("SELECT 1 FROM snapshot LIMIT 1")
        except psycopg2.Error:
            return False
        return cursor.fetchone() is not None


def wait_for_snapshot(db: str, engine: subprocess.Popen, work: str) -> None:
    """Until the engine has created the schema and stored a snapshot."""
    ends = time.monotonic() + 120
    while not stored_snapshot(db):
        if time.monotonic() > ends or engine.poll() is not None:
            raise SystemExit(f"the engine stored no snapshot (see {work}/roles.log)")
        time.sleep(0.2)


def part_workers(args: argparse.Namespace) -> None:
    """A: GET /v1/snapshot req/s with 1, 2 and 4 gateway workers beside an engine."""
    found = cluster_schema(args)
    if found is None:
        print(
            "A. gateway workers: skipped (no --postgres/--redis, UBOT_TEST_POSTGRES_URL/UBOT_TEST_REDIS_URL)"
        )
        return
    db, redis_url, prefix, cleanup = found
    work = tempfile.mkdtemp(prefix="ubot-scale-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UBOT_")}
    env.update(UBOT_CLUSTER_REDIS_PREFIX=prefix, UBOT_LIMITS_ENABLED="false", UBOT_LOG_LEVEL="WARNING")
    base = [sys.executable, os.path.join(ROOT, "run.py"), "--config", os.path.join(ROOT, "settings.ini")]
    base += ["--db", db, "--redis", redis_url, "--limit", str(args.coins), "--interval", "1"]
    log = open(os.path.join(work, "roles.log"), "w")  # noqa: SIM115
    engine = subprocess.Popen([*base, "--role", "engine"], cwd=work, env=env, stdout=log, stderr=log)
    rates: dict[int, float] = {}
    try:
        wait_for_snapshot(db, engine, work)
        for workers in args.workers:
            port = free_port()
            argv = [*base, "--role", "gateway", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
            gateway = subprocess.Popen(argv, cwd=work, env=env, stdout=log, stderr=log)
            try:
                wait_ready(port)
                requests_per_second(port, 1.0, args.clients)  # warm every worker
                rates[workers] = requests_per_second(port, args.seconds, args.clients)
            finally:
                gateway.send_signal(signal.SIGTERM)
                gateway.wait(timeout=60)
    finally:
        engine.send_signal(signal.SIGTERM)
        engine.wait(timeout=60)
        log.close()
        cleanup()
    one = rates.get(1)
    print(
        f"A. GET /v1/snapshot ({args.coins} coins), {args.clients} client processes x one keep-alive "
        f"connection, {args.seconds:g} s each, on {os.cpu_count()} cores shared with the clients:"
    )
    for workers, rate in rates.items():
        ratio = f" (x{rate / one:.2f} of 1 worker)" if one else ""
        print(f"  {workers} gateway worker(s): {rate:.0f} req/s{ratio}")


def roles_env(prefix: str, **settings: str) -> dict[str, str]:
    """This environment without uBot's settings, for role processes under the Redis key ``prefix``
    whose engine scans and delivers nothing (scanner and notifier processes do), and ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UBOT_")}
    env.update(
        UBOT_CLUSTER_REDIS_PREFIX=prefix,
        UBOT_CLUSTER_SCANNERS="external",
        UBOT_CLUSTER_NOTIFIERS="external",
        **settings,
    )
    return env


def cluster_schema(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """(PostgreSQL URL of a new schema, Redis URL, key prefix, cleanup), or None without them."""
    import contextlib

    from tests.support.cluster import private_space

    postgres = args.postgres or os.environ.get("UBOT_TEST_POSTGRES_URL")
    redis_url = args.redis or os.environ.get("UBOT_TEST_REDIS_URL")
    if not (postgres and redis_url):
        return None
    stack = contextlib.ExitStack()
    space = stack.enter_context(private_space(postgres, redis_url, "ubot_bench"))
    return space.db_url, redis_url, space.prefix, stack.close


def scanner_beats(bus) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """Every live scanner's latest heartbeat document."""
    import msgspec

    from ubot.heartbeat import SCANNERS, beat_key

    beats = {}
    for member in bus.members(SCANNERS):
        raw = bus.get(beat_key(SCANNERS, member))
        if raw:
            beats[member] = msgspec.json.decode(raw)
    return beats


def scan_times(
    bus, members: int, total: int, warm: int, ticks: int, timeout: float
) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    """Per scanner, ``ticks`` scan times (ms) once ``members`` scanners share the ``total``
    strategies, after each one's first ``warm`` scans since then."""
    ends = time.monotonic() + timeout
    start: dict[str, int] = {}
    times: dict[str, dict[int, float]] = defaultdict(dict)
    while time.monotonic() < ends:
        beats = scanner_beats(bus)
        shared = len(beats) == members and sum(b.get("strategies") or 0 for b in beats.values()) == total
        for member, beat in beats.items() if shared else ():
            scans = beat.get("scans") or 0
            start.setdefault(member, scans)
            if scans > start[member] + warm and beat.get("scan_ms") is not None:
                times[member][scans] = beat["scan_ms"]
        if len(times) == members and all(len(t) >= ticks for t in times.values()):
            return {member: list(t.values())[:ticks] for member, t in times.items()}
        time.sleep(0.2)
    raise SystemExit(f"no {ticks} scans of {members} scanner(s) within {timeout:g} s: {dict(times)}")


def part_scanners(args: argparse.Namespace) -> None:
    """D: the scan wall time per tick of ``--strategies`` strategies with 1 and 2 scanner processes."""
    found = cluster_schema(args)
    if found is None:
        print("D. scanners: skipped (no --postgres/--redis, UBOT_TEST_POSTGRES_URL/UBOT_TEST_REDIS_URL)")
        return
    db, redis_url, prefix, cleanup = found
    from ubot.bus.redis_streams import RedisBus

    work = tempfile.mkdtemp(prefix="ubot-scale-")
    env = roles_env(prefix, UBOT_LOG_LEVEL="WARNING")
    base = [sys.executable, os.path.join(ROOT, "run.py"), "--config", os.path.join(ROOT, "settings.ini")]
    base += [
        "--db",
        db,
        "--redis",
        redis_url,
        "--limit",
        str(args.coins),
        "--interval",
        str(args.scan_interval),
    ]
    log = open(os.path.join(work, "roles.log"), "w")  # noqa: SIM115
    processes = [subprocess.Popen([*base, "--role", "engine"], cwd=work, env=env, stdout=log, stderr=log)]
    bus = RedisBus(redis_url, prefix=prefix)
    figures: dict[int, dict[str, list[float]]] = {}
    try:
        wait_for_snapshot(db, processes[0], work)
        began = time.monotonic()
        seed_strategies(db, args.strategies, args.strategy_coins)
        seeded_s = time.monotonic() - began
        print(
            f"D. {args.strategies:,} strategies (written in {seeded_s:.1f} s; {len(SHAPES)} condition "
            f"shapes, each on its top {args.strategy_coins} of {args.coins} coins), one tick every "
            f"{args.scan_interval:g} s, scan wall time per tick (heartbeats' scan_ms, median of "
            f"{args.scan_ticks} scans each), on {os.cpu_count()} cores shared with the engine, "
            "PostgreSQL and Redis (and with whatever else runs on the machine):",
            flush=True,
        )
        timeout = 120 + 4 * (args.scan_ticks + 4) * args.scan_interval
        for members in (1, 2):
            processes.append(
                subprocess.Popen([*base, "--role", "scanner"], cwd=work, env=env, stdout=log, stderr=log)
            )
            figures[members] = scan_times(bus, members, args.strategies, 2, args.scan_ticks, timeout)
            each = {member: statistics.median(t) for member, t in figures[members].items()}
            slowest = max(each.values())
            one = statistics.median(next(iter(figures[1].values())))
            ratio = "" if members == 1 else f", x{slowest / one:.2f} of 1 scanner"
            print(
                f"  {members} scanner(s): {slowest:.0f} ms (the slowest; each: "
                f"{', '.join(f'{v:.0f}' for v in sorted(each.values()))} ms){ratio}",
                flush=True,
            )
    finally:
        for process in reversed(processes):
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                print(f"  (pid {process.pid} did not stop within 60 s of SIGTERM: killed)", flush=True)
                process.kill()
                process.wait()
        bus.close()
        log.close()
        cleanup()


def part_logins(args: argparse.Namespace) -> None:
    """C: bench/abuse.py's figure of a public GET under 30 wrong logins a second."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import abuse

    from ubot.users.hashing import DEFAULT_NICE

    what, seconds, target = abuse.get_under_logins(
        argparse.Namespace(seconds=args.seconds, hash_nice=[DEFAULT_NICE])
    )
    print(f"C. {what}: {seconds * 1000:.1f} ms (target {target})")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--half-open", type=int, default=500)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--coins", type=int, default=100)
    parser.add_argument("--workers", type=lambda s: [int(n) for n in s.split(",")], default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load (A) and of GETs (C)")
    parser.add_argument("--clients", type=int, default=4, help="client processes (A)")
    parser.add_argument("--postgres", help="PostgreSQL for A and D (default UBOT_TEST_POSTGRES_URL)")
    parser.add_argument("--redis", help="Redis for A and D (default UBOT_TEST_REDIS_URL)")
    parser.add_argument("--parts", default="A,B,C,D", help="which parts to run, e.g. A or A,C")
    parser.add_argument("--strategies", type=int, default=50_000, help="strategies (D)")
    parser.add_argument("--strategy-coins", type=int, default=10, help="each strategy's top N coins (D)")
    parser.add_argument("--scan-interval", type=float, default=5.0, help="seconds between ticks (D)")
    parser.add_argument("--scan-ticks", type=int, default=8, help="scans measured per setting (D)")
    args = parser.parse_args()
    parts = set(args.parts.upper().split(","))
    if "A" in parts:
        part_workers(args)
    if "B" in parts:
        part_streams(args)
    if "C" in parts:
        part_logins(args)
    if "D" in parts:
        part_scanners(args)
    return 0


#: How long the fan-out is watched with nothing else asked of the worker (B, step 5).
FAN_OUT_S = 5.0


def part_streams(args: argparse.Namespace) -> None:
    """B: one gateway process under many idle clients (the module's steps 1-5)."""
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
        idle_cpu_per_s = cpu_per_second(worker, FAN_OUT_S)
        clients = Clients(port)
        before = rss_kib(worker)
        started = time.perf_counter()
        clients.open_streams(args.streams)
        opened_in = time.perf_counter() - started
        after = rss_kib(worker)
        clients.open_half(args.half_open)
        clients.recording = True
        loaded = snapshot_latencies(port, args.requests)
        cpu_per_s = cpu_per_second(worker, FAN_OUT_S)  # at least two ticks' events reach every stream
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

        print(f"B. GET /v1/snapshot, {args.requests} sequential requests each run:")
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
        print(
            f"worker CPU a second, nothing asked ({FAN_OUT_S:g} s, a tick a second): {idle_cpu_per_s * 1000:.0f} ms "
            f"with no stream open, {cpu_per_s * 1000:.0f} ms with the {args.streams} streams: the fan-out "
            f"{(cpu_per_s - idle_cpu_per_s) * 1000:.0f} ms a second"
        )
    finally:
        if clients is not None:
            clients.close()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


if __name__ == "__main__":
    sys.exit(main())
