"""Pipeline bookkeeping behind ``/health`` and the per-tick log line. Pure logic, no threads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ubot.market.credits import month_end_credits
from ubot.messages import TickDone
from ubot.timeutil import iso_from_ms

#: The pipeline counts as stalled when no tick has finished for this many intervals.
STALL_INTERVALS = 3


@dataclass(frozen=True)
class ClockStats:
    interval_s: float
    ticks: int
    missed_ticks: int
    overruns: int
    lateness_ms_p50: float | None
    lateness_ms_p99: float | None
    lateness_ms_max: float
    ticking: bool
    last_fired_at: float | None  # epoch seconds


@dataclass
class PipelineStats:
    source: str
    started_at: float  # epoch seconds
    ticks: int = 0  # finished ticks, ok or skipped
    ok: int = 0
    skipped: int = 0
    last_snapshot_ms: int | None = None
    last_done_at: float | None = None
    last_tick_ms: dict[str, float] = field(default_factory=dict)
    last_skip_reason: str = ""
    last_outcome: str = ""
    exhausted: bool = False
    failed: str = ""  # why the source can never work again, if so
    database_lost: str = ""  # why the database can no longer be written (its file deleted), if so
    source_status: dict[str, Any] | None = None  # the source's own report (CoinMarketCap)
    scanner: dict[str, Any] | None = None  # the Scanner's figures after its last scan
    #: Per stage, work of its beside the ticks that fails now (``StageFault``: the closed candles' write)
    faults: dict[str, str] = field(default_factory=dict)

    def fault(self, stage: str, problem: str) -> None:
        """``stage`` says its work beside the ticks fails (``problem``) or works again (``""``)."""
        if problem:
            self.faults[stage] = problem
        else:
            self.faults.pop(stage, None)

    def record(self, done: TickDone, now: float) -> None:
        self.ticks += 1
        self.last_done_at = now
        self.last_outcome = done.outcome
        self.last_tick_ms = {stage: round(ms, 3) for stage, ms in done.stages}
        if done.outcome == "ok":
            self.ok += 1
            self.last_snapshot_ms = done.snapshot_ms
        else:
            self.skipped += 1
            self.last_skip_reason = done.reason

    def stalled(self, now: float, interval_s: float, ticking: bool) -> bool:
        if not ticking or self.exhausted or interval_s <= 0:
            return False
        reference = self.last_done_at or self.started_at
        return now - reference > STALL_INTERVALS * interval_s + 5

    def health(self, now: float, clock: ClockStats | None) -> tuple[bool, dict[str, Any]]:
        """(whether the data is current, the document) for ``GET /health``: not current when there is
        no snapshot yet, no tick has finished for a while, or the source or the database is lost
        (``ubot/http`` answers those with 503)."""
        interval = clock.interval_s if clock else 0.0
        stalled = self.stalled(now, interval, clock.ticking if clock else False)
        source_degraded = bool(self.source_status) and self.source_status.get("state") == "degraded"
        if self.failed or self.database_lost:
            status, current = "degraded", False
        elif self.last_snapshot_ms is None:
            status, current = "starting", False
        elif stalled:
            status, current = "degraded", False
        elif self.last_outcome == "skipped" or source_degraded or self.faults:
            status, current = "degraded", True
        else:
            status, current = "ok", True
        doc: dict[str, Any] = {
            "status": status,
            "source": self.source,
            "ticks": self.ticks,
            "ticks_ok": self.ok,
            "ticks_skipped": self.skipped,
            "last_snapshot_at": iso_from_ms(self.last_snapshot_ms) if self.last_snapshot_ms else None,
            "clock": None,
            "last_tick_ms": self.last_tick_ms,
        }
        if clock is not None:
            doc["clock"] = {
                "interval_s": clock.interval_s,
                "ticking": clock.ticking,
                "lateness_ms_p50": _round(clock.lateness_ms_p50),
                "lateness_ms_p99": _round(clock.lateness_ms_p99),
                "lateness_ms_max": _round(clock.lateness_ms_max),
                "missed_ticks": clock.missed_ticks,
            }
        if self.source_status is not None:
            doc["source_status"] = _with_projection(self.source_status, interval, now)
        if self.scanner is not None:
            doc["scanner"] = self.scanner
        if self.faults:
            doc["faults"] = dict(self.faults)
        if self.database_lost:
            doc["reason"] = database_lost_line(self.database_lost)
        elif self.failed:
            doc["reason"] = f"the market source failed: {self.failed}"
        elif stalled:
            doc["reason"] = f"no tick finished for more than {STALL_INTERVALS} intervals"
        elif self.last_outcome == "skipped":
            doc["reason"] = f"last tick skipped: {self.last_skip_reason}"
        elif source_degraded:
            doc["reason"] = self.source_status["reason"]
        elif self.faults:
            doc["reason"] = "; ".join(f"{stage}: {problem}" for stage, problem in sorted(self.faults.items()))
        if self.exhausted:
            doc["source_exhausted"] = True
        return current, doc


def _with_projection(status: dict[str, Any], interval_s: float, now: float) -> dict[str, Any]:
    """The source's status, with CoinMarketCap's ``projected_month``: the credits this calendar
    month ends at if the interval and the coins stay as they are (null with back-to-back ticks)."""
    if "credits_per_tick" not in status:
        return status
    projected = month_end_credits(status["credits_month"], status["credits_per_tick"], interval_s, now)
    return {**status, "projected_month": projected}


def database_lost_line(reason: str) -> str:
    """What to say when the database file is lost: what happened, and what to do."""
    return (
        f"{reason}: the pipeline is stopped and nothing more is written; restore the file from a "
        "backup, or restart uBot to begin a new database"
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def tick_line(done: TickDone) -> str:
    """The one log line per tick: number, coins, per-stage ms, lateness."""
    stages = " ".join(f"{name}={ms:.1f}ms" for name, ms in done.stages)
    total = sum(ms for _, ms in done.stages)
    line = f"tick {done.tick.number} coins={done.coins} {stages} total={total:.1f}ms"
    line += f" late={done.tick.lateness_ms}ms"
    if done.outcome != "ok":
        line += f" SKIPPED: {done.reason}"
    return line
