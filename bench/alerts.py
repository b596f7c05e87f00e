#!/usr/bin/env python3
"""Alert latency benchmark: from a snapshot's arrival to the webhook request reaching its receiver.

    python bench/alerts.py [--coins 5000] [--alerts 40] [--strategies 0] [--interval 1.0]
                           [--warmup 2] [--workers 10] [--flood] [--db sqlite:///...|postgresql://...]

The real actor system runs in this process (``start_system``, real clock, real database), over the
simulated market wrapped so that BTC (the first listing item) alternates between a low and a high
price, tick after tick; the rest of each CoinMarketCap document is left as the simulator made it.
A user signs up over the falcon app (as a client would: POST /v1/users, /v1/sessions, PUT
/v1/me/settings with a webhook to a local receiver, POST /v1/me/strategies) and creates two
``once_per_crossing`` strategies on BTC, ``price > X`` and ``price < X``, both on the webhook channel:
one of them crosses on every tick, so every tick gives exactly one alert (one strategy alone would
give one every second tick, for twice the run time). The receiver is a ThreadingHTTPServer on
127.0.0.1 (HTTP/1.1, keep-alive, answers 200) in this process.

Measured, per alert, with ``time.perf_counter`` (one process, one clock):

* arrival: the source's ``fetch()`` returns the document (the simulator's own work is excluded);
* published: the Container hands the snapshot on (``publish_tick``; the OHLC actor told the
  Scanner just before it told the Container): parse + store + OHLC + container;
* written: the alert's stream event (``publish("alert", ...)``, after the transaction and after the
  deliveries went to the senders: shown beside the path);
* send: the webhook channel's ``send()`` starts (a sender thread took the delivery);
* received: the receiver's ``do_POST`` starts (request line and headers read).

The latency is received - arrival; p50/p99/max over ``--alerts`` alerts after ``--warmup`` ones (the
first scans load the candle history). The per-stage split of the first hop comes from the Monitor's
tick log line (stage ms; "parse" is the fetch stage minus the simulator's own time).

Ticks come from the real clock every ``--interval`` seconds (on the UTC grid, as in production,
where the interval is 60 s): each tick then meets an idle system, as in production. Back-to-back
ticks (interval 0) would not: the Clock fires the next tick as soon as the Container is done, so
tick N+1's fetch and store would run (under the GIL) during tick N's scan and webhook call, and the
figure would measure that contention, not the latency. ``--strategies N`` adds N alert-log-only
strategies (no channel; 50 per user, the per-user limit) over the top 100..1000 coins, to show the
latency under a loaded Scanner. The database is SQLite in a temporary directory by default; with a
PostgreSQL URL a private schema is created for the run and dropped at the end.
Target: latency p50 <= 200 ms.

``--flood`` (issue 13): every coin fires at once. The source sets every coin's ``percent_change_1h``
to +50 and -50 on alternate ticks, and the two strategies are ``percent_change_1h > 10`` and
``percent_change_1h < -10`` on the top ``--coins`` (at most 1,000), so every tick one of them fires on
every coin: ``--coins`` alerts, written one row each, and one webhook request carrying them all (one
message per strategy per tick). The latency is then from the snapshot's arrival to that grouped
webhook reaching the receiver, per tick (``--alerts`` counts ticks). Target: p50 <= 300 ms.

``--samples`` (issue 13) measures nothing: it sends the samples of docs/alerts.md (uBot's own words
for one coin and for a batch, a strategy's message template for one coin and for a batch) through a
real Notifier and the five real channels to the local fakes of ``tests/fakes`` (webhook, Telegram,
Twilio SMS and WhatsApp, SMTP), each in a fresh SQLite database, and prints exactly what each fake
received (``tests/support/alert_samples.py``). ``--write docs/alerts.md`` puts them into the
document's marked blocks (``<!-- sample: NAME CHANNEL -->``), which ``tests/notify/test_doc_samples.py``
compares with what is sent.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
from argon2 import PasswordHasher  # noqa: E402
from falcon.testing import TestClient  # noqa: E402

from ubot.clocks import SystemClock  # noqa: E402
from ubot.http.app import create_app  # noqa: E402
from ubot.http.gateway import Gateway  # noqa: E402
from ubot.market.simulated import SimulatedSource  # noqa: E402
from ubot.market.snapshot import RawMarket  # noqa: E402
from ubot.market.view import SnapshotView  # noqa: E402
from ubot.messages import Candled, StopTicking  # noqa: E402
from ubot.models.db import open_database  # noqa: E402
from ubot.models.schema import ensure_schema  # noqa: E402
from ubot.models.users import UserStore  # noqa: E402
from ubot.notify.channel import Message, Outcome  # noqa: E402
from ubot.notify.channels import WebhookChannel  # noqa: E402
from ubot.system import AlertOptions, start_system, stop_system  # noqa: E402
from ubot.users.manager import MAX_STRATEGIES, UserManager  # noqa: E402
from ubot.users.passwords import Passwords  # noqa: E402

PASSWORD = "correct horse battery staple"
SECRET = "bench-secret-bench-secret"
LOW, HIGH, THRESHOLD = 40_000.0, 90_000.0, 65_000.0
LOAD_TEMPLATES = [
    lambda r: f"rsi(14) < {r.randint(20, 35)}",
    lambda r: f"percent_change_24h < -{r.randint(5, 20)}",
    lambda r: f"percent_change_1h > {r.randint(2, 10)}",
    lambda r: f"price > sma({r.choice([20, 50])})",
    lambda r: f"ema(12) > ema(26) and rsi(14) < {r.randint(40, 60)}",
    lambda r: f"volume_24h / market_cap > 0.{r.randint(1, 5)}",
]
#: The path of an alert, in order. "published" (the Container's snapshot event) is off that path:
#: the OHLC actor hands the tick to the Scanner and the Container at once, and the scan does not wait
#: for the JSON; it is shown beside it, as is "written" (the alert's stream event, which the Notifier
#: publishes once it has handed the deliveries to the senders).
HOPS = ("send", "received")
HOP_NAMES = {
    "send": "arrival -> send starts (parse+store+ohlc, scan, notifier write, dispatch)",
    "received": "send -> received (HTTP request)",
}


class Timeline:
    """perf_counter instants per snapshot timestamp (ms), one dict per point of the path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.points: dict[str, dict[int, float]] = {
            name: {} for name in ("arrival", "published", "written", *HOPS)
        }
        self.fetch_ms: dict[int, float] = {}  # the simulator's own time per snapshot
        self.order: list[int] = []  # snapshot timestamps in fetch order (tick n is order[n - 1])
        self.stages: dict[int, dict[str, float]] = {}  # tick number -> stage ms (Monitor's log line)
        self.watched: set[int] = set()  # the webhook strategies' ids
        self.sizes: list[int] = []  # alerts per webhook request
        self.received = threading.Condition(self.lock)

    def mark(self, point: str, ts: int, at: float | None = None) -> None:
        with self.lock:
            self.points[point].setdefault(ts, time.perf_counter() if at is None else at)
            if point == "received":
                self.received.notify_all()

    # publish_tick(candled, view): called by the Container once its JSON is built
    def on_snapshot(self, candled: Candled, view: SnapshotView) -> None:
        self.mark("published", candled.snapshot.timestamp_ms)

    # publish(event, data, user_id): called by the Notifier right after writing the alert
    def on_event(self, event: str, data: Any, user_id: int | None) -> None:
        if event == "alert" and data.get("strategy_id") in self.watched:
            self.mark("written", int(data["fired_at_ms"]))


class FlippingSource:
    """SimulatedSource, with BTC's price alternating LOW, HIGH, LOW... one value per fetch; with
    ``flood``, every coin's ``percent_change_1h`` alternating -50, +50 instead."""

    name = "simulated"

    def __init__(self, coins: int, timeline: Timeline, flood: bool = False) -> None:
        self.inner = SimulatedSource(limit=coins, seed=7)
        self.timeline = timeline
        self.flood = flood
        self.count = 0

    def fetch(self, at_ms: int) -> RawMarket:
        started = time.perf_counter()
        raw = self.inner.documents(at_ms)  # the wire documents: BTC is edited in them
        if self.flood:
            change = 50.0 if self.count % 2 else -50.0
            for listed in raw.listings["data"]:
                listed["quote"]["USD"]["percent_change_1h"] = change
            self.count += 1
        else:
            item = next(i for i in raw.listings["data"] if i["symbol"] == "BTC")
            usd = item["quote"]["USD"]
            price = HIGH if self.count % 2 else LOW
            self.count += 1
            scale = price / usd["price"]
            usd["price"] = price
            usd["market_cap"] *= scale
            usd["fully_diluted_market_cap"] = round(usd["fully_diluted_market_cap"] * scale, 2)
        now = time.perf_counter()
        self.timeline.fetch_ms[int(at_ms)] = (now - started) * 1000
        self.timeline.order.append(int(at_ms))
        self.timeline.mark("arrival", int(at_ms), now)
        return raw

    def close(self) -> None:
        self.inner.close()


class TimedWebhook(WebhookChannel):
    """The real webhook channel; notes when a sender thread starts each request."""

    def __init__(self, timeline: Timeline, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.timeline = timeline

    def send(self, message: Message) -> Outcome:
        self.timeline.mark("send", int(message.payload["alerts"][0]["fired_at_ms"]))
        return super().send(message)


class TickLog(logging.Handler):
    """Keeps the per-stage ms of the Monitor's tick line: ``tick N coins=.. fetch=1.0ms ...``."""

    LINE = re.compile(r"^tick (\d+) coins=\d+ (.*?) total=")
    STAGE = re.compile(r"(\w+)=([\d.]+)ms")

    def __init__(self, timeline: Timeline) -> None:
        super().__init__(logging.INFO)
        self.timeline = timeline

    def emit(self, record: logging.LogRecord) -> None:
        match = self.LINE.match(record.getMessage())
        if match:
            stages = {name: float(ms) for name, ms in self.STAGE.findall(match.group(2))}
            with self.timeline.lock:
                self.timeline.stages[int(match.group(1))] = stages


def receiver(timeline: Timeline) -> ThreadingHTTPServer:
    class Hook(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver

        def do_POST(self) -> None:
            arrived = time.perf_counter()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            document = json.loads(body)  # one strategy's alerts of one tick
            with timeline.lock:
                timeline.sizes.append(len(document["alerts"]))
            timeline.mark("received", int(document["alerts"][0]["fired_at_ms"]), arrived)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="bench-webhook", daemon=True).start()
    return server


@contextmanager
def database_url(given: str | None) -> Iterator[str]:
    """A temporary SQLite file, or the PostgreSQL URL narrowed to a private schema (dropped after)."""
    if not given:
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.db"
        return
    if given.startswith("sqlite"):
        yield given
        return
    from tests.support.cluster import private_schema

    with private_schema(given, f"ubot_bench_{os.getpid()}") as (narrowed, _):
        yield narrowed


def add_load(db: Any, count: int, seed: int) -> None:
    """``count`` alert-log-only strategies (no channel), 50 per user, straight through the UserManager."""
    r = random.Random(seed)
    cheap = Passwords(PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))  # not what is measured
    manager = UserManager(UserStore(db), SystemClock(), passwords=cheap)
    user_id = 0
    for i in range(count):
        if i % MAX_STRATEGIES == 0:
            n = i // MAX_STRATEGIES
            user_id = manager.register(f"load{n:04d}", f"load{n:04d}@example.com", PASSWORD).id
        manager.create_strategy(
            user_id,
            {
                "name": f"load {i}",
                "condition": r.choice(LOAD_TEMPLATES)(r),
                "timeframe": r.choice(["1m", "5m", "15m", "1h"]),
                "top_n": r.choice([100, 200, 500, 1000]),
                "channels": [],
            },
        )


def sign_up(client: TestClient, hook_url: str, flood: int = 0) -> list[int]:
    """The measured user, the way a client does it; the ids of its two webhook strategies."""

    def check(result: Any, status: int) -> Any:
        if result.status_code != status:
            raise SystemExit(f"sign-up failed: HTTP {result.status_code}: {result.text}")
        return result.json

    user = {"username": "ada", "email": "ada@example.com", "password": PASSWORD}
    check(client.simulate_post("/v1/users", json=user), 201)
    token = check(client.simulate_post("/v1/sessions", json={"username": "ada", "password": PASSWORD}), 201)
    auth = {"Authorization": f"Bearer {token['token']}"}
    settings = {"webhook_url": hook_url, "webhook_secret": SECRET}
    check(client.simulate_put("/v1/me/settings", json=settings, headers=auth), 200)
    ids = []
    for name, op in (("BTC up", ">"), ("BTC down", "<")):
        strategy: dict[str, Any] = {
            "name": name,
            "condition": f"price {op} {THRESHOLD:.0f}",
            "timeframe": "1m",
            "symbols": ["BTC"],
            "channels": ["webhook"],
        }
        if flood:
            condition = "percent_change_1h > 10" if op == ">" else "percent_change_1h < -10"
            strategy.update(name=f"all {name[4:]}", condition=condition, symbols=None, top_n=flood)
        ids.append(check(client.simulate_post("/v1/me/strategies", json=strategy, headers=auth), 201)["id"])
    return ids


def stats(values: list[float]) -> str:
    a = np.array(values)
    return f"p50 {np.percentile(a, 50):7.1f}  p99 {np.percentile(a, 99):7.1f}  max {a.max():7.1f}"


def quiesce(client: TestClient, quiet_s: float = 1.0, timeout_s: float = 60.0) -> dict:
    """/health once no tick and no scan has finished for ``quiet_s`` (the clock is stopped).

    stop_system while a scan is in flight makes its workers tell ScanDone to a Scanner that is
    already stopping (pykka.ActorDeadError tracebacks; the alerts themselves reach the Notifier):
    waiting for the last scan keeps the benchmark's stop clean.
    """
    last, since = None, time.monotonic()
    deadline = since + timeout_s
    while True:
        health = client.simulate_get("/health").json
        state = (health["ticks"], (health.get("scanner") or {}).get("scans"))
        now = time.monotonic()
        if state != last:
            last, since = state, now
        elif now - since >= quiet_s or now > deadline:
            return health
        time.sleep(0.05)


def run(args: argparse.Namespace, url: str) -> tuple[list[int], Timeline, dict]:
    db = open_database(url)
    ensure_schema(db)  # an empty database or private schema: nothing to drop
    if args.strategies:
        started = time.perf_counter()
        add_load(db, args.strategies, args.seed)
        print(f"  {args.strategies} load strategies created in {time.perf_counter() - started:.1f} s")
    timeline = Timeline()
    monitor_log = logging.getLogger("ubot.actors.monitor")
    monitor_log.setLevel(logging.INFO)
    monitor_log.addHandler(TickLog(timeline))
    server = receiver(timeline)
    wanted = args.warmup + args.alerts
    channel = TimedWebhook(timeline, timeout_s=5, allow_private_addresses=True)
    actors = start_system(
        db,
        FlippingSource(args.coins, timeline, flood=args.flood),
        interval_s=args.interval,
        alerts=AlertOptions(
            workers=args.workers,
            channels={"webhook": channel},
            allow_local_webhooks=True,
            publish=timeline.on_event,
            publish_tick=timeline.on_snapshot,
        ),
    )
    try:
        gateway = Gateway(
            container=actors.container,
            history=actors.history,
            monitor=actors.monitor,
            clock=actors.clock,
            users=actors.users,
            notifier=actors.notifier,
        )
        client = TestClient(create_app(gateway))
        host, port = server.server_address[:2]
        ids = sign_up(client, f"http://{host}:{port}/hook", min(args.coins, 1000) if args.flood else 0)
        with timeline.lock:
            timeline.watched.update(ids)
        deadline = time.monotonic() + wanted * args.interval * 3 + 120
        with timeline.received:
            while len(timeline.points["received"]) < wanted:
                if not timeline.received.wait(max(0.0, deadline - time.monotonic())):
                    raise SystemExit(f"timed out: {len(timeline.points['received'])} of {wanted} webhooks")
        actors.clock.tell(StopTicking("benchmark done"))
        health = quiesce(client)
    finally:
        stop_system(actors)
        server.shutdown()
        server.server_close()
        db.close()
    return ids, timeline, health


def samples(write: str | None) -> None:
    """Print (and with ``write``, write into that document) what each channel's fake receives."""
    from tests.support.alert_samples import SAMPLES, received, rewritten
    from ubot.models.db import open_database
    from ubot.models.schema import ensure_schema

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    texts: dict[tuple[str, str], str] = {}
    for name, sample in SAMPLES.items():
        with tempfile.TemporaryDirectory() as tmp:
            db = open_database(f"sqlite:///{tmp}/samples.db")
            ensure_schema(db)
            try:
                sent = received(db, sample)
            finally:
                db.close()
        for channel, text in sent.items():
            texts[name, channel] = text
            print(f"<!-- sample: {name} {channel} -->\n```\n{text}\n```\n")
    if write:
        with open(write, encoding="utf-8") as file:
            markdown = file.read()
        with open(write, "w", encoding="utf-8") as file:
            file.write(rewritten(markdown, texts))
        print(f"written into {write}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=5000)
    parser.add_argument("--alerts", type=int, default=40, help="alerts measured (after the warm-up)")
    parser.add_argument("--warmup", type=int, default=2, help="first alerts not counted")
    parser.add_argument("--strategies", type=int, default=0, help="extra alert-log-only strategies")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between ticks (real clock)")
    parser.add_argument("--workers", type=int, default=10, help="scan workers")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    parser.add_argument(
        "--flood", action="store_true", help="every coin fires at once: one grouped webhook per tick"
    )
    parser.add_argument(
        "--samples", action="store_true", help="print what each channel's fake receives (docs/alerts.md)"
    )
    parser.add_argument("--write", metavar="MARKDOWN", help="with --samples: write them into this document")
    args = parser.parse_args()
    if args.samples:
        samples(args.write)
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)  # the per-tick INFO lines are only captured, not printed

    print(
        f"alert latency benchmark: {args.coins} simulated coins, {args.strategies} load strategies, "
        f"{args.workers} workers, tick every {args.interval:g} s, {(args.db or 'sqlite').split(':')[0]}"
    )
    wall = time.perf_counter()
    with database_url(args.db) as url:
        ids, timeline, health = run(args, url)
    points = timeline.points
    measured = sorted(points["received"])[args.warmup :][: args.alerts]
    missing = [
        ts for ts in measured if not all(ts in points[p] for p in ("arrival", "published", "written", *HOPS))
    ]
    if missing:
        raise SystemExit(f"{len(missing)} alert(s) lack a point of the path (first: {missing[0]})")
    latency = [(points["received"][ts] - points["arrival"][ts]) * 1000 for ts in measured]
    print(f"  {len(measured)} alerts measured (after {args.warmup} warm-up), webhook strategies {ids}")
    if args.flood:
        sizes = sorted(set(timeline.sizes))
        print(f"  {len(timeline.sizes)} webhook requests, alerts per request: {sizes}")
    print("  ms per webhook request:" if args.flood else "  ms per alert:")
    print(f"    {'snapshot arrival -> webhook received':52s} {stats(latency)}")
    published = [(points["published"][ts] - points["arrival"][ts]) * 1000 for ts in measured]
    print(f"    {'(beside it: arrival -> snapshot published by the Container)':52s} {stats(published)}")
    events = [(points["written"][ts] - points["arrival"][ts]) * 1000 for ts in measured]
    print(f"    {'(beside it: arrival -> alert event published)':52s} {stats(events)}")
    previous = "arrival"
    for hop in HOPS:
        values = [(points[hop][ts] - points[previous][ts]) * 1000 for ts in measured]
        print(f"    {HOP_NAMES[hop]:52s} {stats(values)}")
        previous = hop
    number = {ts: n for n, ts in enumerate(timeline.order, start=1)}
    rows = [timeline.stages.get(number[ts]) for ts in measured]
    rows = [(r, ts) for r, ts in zip(rows, measured, strict=True) if r]
    if rows:
        print("  first hop by stage (the Monitor's stage ms for the same ticks):")
        split = {"parse": [r["fetch"] - timeline.fetch_ms[ts] for r, ts in rows]}
        for name in rows[0][0]:
            if name != "fetch":
                split[name] = [r.get(name, float("nan")) for r, _ in rows]
        for name, values in split.items():
            print(f"    {name:52s} {stats(values)}")
        simulator = [timeline.fetch_ms[ts] for ts in measured]
        print(f"    {'(the simulator building the document, not counted)':52s} {stats(simulator)}")
    scanner = health.get("scanner") or {}
    clock = health.get("clock") or {}
    print(
        f"  scanner: {scanner.get('strategies')} strategies, scan p50 {scanner.get('scan_ms_p50')} ms "
        f"p99 {scanner.get('scan_ms_p99')} ms, {scanner.get('scans_skipped')} scans skipped; "
        f"{health.get('ticks')} ticks, {clock.get('missed_ticks')} missed"
    )
    print(f"  wall time {time.perf_counter() - wall:.0f} s")
    a = np.array(latency)
    what, target = ("grouped webhook latency", 300) if args.flood else ("alert latency", 200)
    print(
        f"RESULT {what} p50 {np.percentile(a, 50):.1f} ms (target <= {target} ms), "
        f"p99 {np.percentile(a, 99):.1f} ms, max {a.max():.1f} ms"
    )


if __name__ == "__main__":
    main()
