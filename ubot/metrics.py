"""Every metric uBot exposes at ``GET /metrics``, declared once here (prometheus_client).

Each box records its own figures with one call where they arise: the Monitor its ticks and the
Scanner's figures (:func:`tick_done`, :func:`scanned`), the Clock its missed deadlines, the Notifier
its alerts and deliveries, the Dispatcher its attempts' durations, the CoinMarketCap client the
credits each answer cost, and the gateway its requests (``ubot/http/metrics.py``). A process exposes
what it recorded itself, so each process of a role exposes its own.

Labels are bounded sets only: tick outcomes, stage names, channel names, delivery outcomes, HTTP
methods, route *templates* (``/v1/me/strategies/{strategy_id}``, never a raw path) and status classes
(``2xx``). Never a user id, a strategy id, a coin or an address.

Several processes, one exposition (``--role gateway --workers N``, N > 1): ``PROMETHEUS_MULTIPROC_DIR``
names an empty directory, in the environment of every process (``run.py`` sets it, before
prometheus_client is imported, with ``ubot.http.server.multiprocess_metrics``: wiped at start,
removed at exit). Each process then writes its figures to files of its own in that directory
(prometheus_client's multiprocess mode), and :func:`exposition` in any of them sums the counters and
histograms of all. Without it, a process exposes its own figures and the process collectors (CPU,
memory, open files). gunicorn's ``child_exit`` hook calls ``multiprocess.mark_process_dead`` for a
worker that exits (no gauge here is a ``live*`` one yet, so nothing changes today).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

if TYPE_CHECKING:
    from ubot.messages import TickDone
    from ubot.scan.messages import ScannerStats

log = logging.getLogger(__name__)

#: The variable that turns on prometheus_client's multiprocess mode (read when it is imported).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The exposition's content type (Prometheus' text format).
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

# No ``*_created`` series beside every counter and histogram: nothing here needs them.
prometheus_client.disable_created_metrics()

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_SLOW = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

# -- ticks (engine: the Monitor, the Clock) ----------------------------------------------------------

TICKS = Counter(
    "ubot_ticks",
    "Ticks, by outcome: ok (stored and served), skipped (a stage ended it, the log says why), missed "
    "(a deadline that fired no tick: the previous one was still running, or the clock woke late).",
    ["outcome"],
)
TICK_STAGE_SECONDS = Histogram(
    "ubot_tick_stage_seconds",
    "Time a tick spent in each pipeline stage: fetch, store, ohlc, container.",
    ["stage"],
    buckets=_FAST,
)
TICK_LATENESS_SECONDS = Histogram(
    "ubot_tick_lateness_seconds",
    "How late each tick fired after its deadline (k x interval on the UTC clock).",
    buckets=_FAST,
)
SNAPSHOT_TIMESTAMP = Gauge(
    "ubot_snapshot_timestamp_seconds",
    "Data time (epoch seconds) of the latest snapshot a tick stored.",
    multiprocess_mode="max",
)

# -- scans (the Scanner's figures, recorded by the Monitor) ------------------------------------------

SCANS = Counter(
    "ubot_scans",
    "Scans, by outcome: scanned, or skipped (the tick arrived while the previous scan still ran).",
    ["outcome"],
)
SCAN_SECONDS = Histogram(
    "ubot_scan_seconds",
    "Time of each scan, from building its market frame until every worker has reported.",
    buckets=_SLOW,
)
SCAN_STRATEGIES = Counter("ubot_scan_strategies_evaluated", "Strategies evaluated, summed over scans.")
SCAN_ERRORS = Counter(
    "ubot_scan_strategy_errors",
    "Strategies whose condition began to fail at run time (counted when the error starts or changes).",
)
SCAN_WORKER_RESTARTS = Counter("ubot_scan_worker_restarts", "Scan workers that died and were restarted.")

# -- alerts and deliveries (the Notifier) ------------------------------------------------------------

ALERTS = Counter("ubot_alerts", "Alerts raised (written to the outbox).")
DELIVERIES = Counter(
    "ubot_deliveries",
    "Delivery attempts' results, by channel and outcome: sent, retry (will be tried again), failed.",
    ["channel", "outcome"],
)
DELIVERY_ATTEMPT_SECONDS = Histogram(
    "ubot_delivery_attempt_seconds",
    "Duration of each delivery attempt, by channel.",
    ["channel"],
    buckets=_SLOW,
)

# -- the gateway (ubot/http/metrics.py) ---------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "ubot_http_requests",
    "HTTP requests, by method, route template (unmatched: no route) and status class (2xx ... 5xx).",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "ubot_http_request_seconds",
    "Time in the app per request, by method and route template (an event stream: until it starts).",
    ["method", "route"],
)

# -- the market source ---------------------------------------------------------------------------------

COINMARKETCAP_CREDITS = Counter(
    "ubot_coinmarketcap_credits", "CoinMarketCap API credits used (each answer's status.credit_count)."
)


def tick_done(done: TickDone) -> None:
    """A tick ended (ok or skipped): its outcome, its stages' times, its lateness."""
    TICKS.labels(done.outcome).inc()
    for stage, ms in done.stages:
        TICK_STAGE_SECONDS.labels(stage).observe(ms / 1000)
    TICK_LATENESS_SECONDS.observe(max(0, done.tick.lateness_ms) / 1000)
    if done.outcome == "ok" and done.snapshot_ms is not None:
        SNAPSHOT_TIMESTAMP.set(done.snapshot_ms / 1000)


def ticks_missed(count: int) -> None:
    """``count`` deadlines passed without a tick."""
    TICKS.labels("missed").inc(count)


def attempt_ended(channel: str, seconds: float) -> None:
    """A delivery attempt on ``channel`` ended after ``seconds``."""
    DELIVERY_ATTEMPT_SECONDS.labels(channel).observe(max(0.0, seconds))


def scanned(stats: ScannerStats, previous: Mapping[str, Any] | None) -> None:
    """A scan finished: ``stats`` are the Scanner's figures now (sums since it started), ``previous``
    those of the scan before (``ScannerStats.as_dict()``; ``None`` for the first)."""
    before = previous or {}
    scans = stats.scans - before.get("scans", 0)
    SCANS.labels("scanned").inc(max(0, scans))
    SCANS.labels("skipped").inc(max(0, stats.scans_skipped - before.get("scans_skipped", 0)))
    SCAN_WORKER_RESTARTS.inc(max(0, stats.worker_restarts - before.get("worker_restarts", 0)))
    if scans > 0:
        if stats.last_scan_ms is not None:
            SCAN_SECONDS.observe(stats.last_scan_ms / 1000)
        SCAN_STRATEGIES.inc(stats.last_evaluated)
        SCAN_ERRORS.inc(stats.last_errors)


class ScanRecorder:
    """A scanner process's scans into the metrics, as the engine's Monitor records its Scanner's:
    called with the Scanner's figures after each scan (``Scanner(on_scan=...)``)."""

    def __init__(self) -> None:
        self.previous: Mapping[str, Any] | None = None

    def __call__(self, stats: ScannerStats) -> None:
        scanned(stats, self.previous)
        self.previous = stats.as_dict()


def serve(host: str, port: int) -> Callable[[], None]:
    """Serve this process's metrics at ``http://host:port/metrics`` (prometheus_client's own small
    server, in a thread of its own: ``--metrics`` of the roles without HTTP). Returns its stop."""
    server, thread = prometheus_client.start_http_server(port, host)
    log.info("metrics: serving GET /metrics on %s:%d", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop


def exposition(multiproc_dir: str | None = None) -> bytes:
    """The metrics in Prometheus' text format. In multiprocess mode (``multiproc_dir``, by default
    ``$PROMETHEUS_MULTIPROC_DIR``): every process's figures in that directory, summed."""
    directory = multiproc_dir or os.environ.get(MULTIPROC_ENV)
    if not directory:
        return prometheus_client.generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    return prometheus_client.generate_latest(registry)
