"""The Scanner supervisor's bookkeeping: the scan in progress (which workers still owe their part,
what they reported) and the figures of every scan (for ``/health``). Plain values, no threads."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from ubot.scan.cost import CostBook
from ubot.scan.frame import MarketFrame
from ubot.scan.messages import CostlyStrategy, ScanDone, ScannerStats, ScanTick


@dataclass(eq=False)
class Round:
    """One scan: ``frame`` went to every worker; each owes a ``ScanDone``."""

    frame: MarketFrame
    snapshot_id: int
    outstanding: set[int]
    started: float  # time.perf_counter()
    evaluated: int = 0
    coins: int = 0
    alerts: int = 0
    #: strategy id -> the runtime error now (None: gone), and the ``once`` strategies that fired.
    errors: dict[int, str | None] = field(default_factory=dict)
    disable: list[int] = field(default_factory=list)
    resent: set[int] = field(default_factory=set)  # workers restarted during this scan
    message: ScanTick | None = None  # what the workers were told (None: ``ScanTick(frame)``)

    @property
    def told(self) -> ScanTick:
        return self.message or ScanTick(self.frame)

    @property
    def tick(self) -> int:
        """The live tick's number, or ``-snapshot_id`` for a catch-up scan."""
        return self.frame.tick

    @property
    def live(self) -> bool:
        return self.frame.tick > 0

    @property
    def finished(self) -> bool:
        return not self.outstanding

    def done(self, report: ScanDone) -> bool:
        """Count ``report``; False when it is not owed (another scan's, or a worker already counted)."""
        if report.tick != self.tick or report.worker not in self.outstanding:
            return False
        self.outstanding.discard(report.worker)
        self.evaluated += report.evaluated
        self.coins += report.coins
        self.alerts += report.alerts
        self.errors.update(report.errors)
        self.disable += report.disable
        return True

    def resend(self, worker: int) -> bool:
        """``worker`` was restarted while it owed its part: True to send it the frame again, once. A
        frame that kills it twice is given up: False (its part of this scan is lost)."""
        if worker not in self.resent:
            self.resent.add(worker)
            return True
        self.outstanding.discard(worker)
        return False


#: The costliest strategies that ``/health`` names.
COSTLIEST = 5


class ScanFigures:
    def __init__(self) -> None:
        self.durations: deque[float] = deque(maxlen=200)  # ms, the latest scans
        self.scans = 0
        self.skipped = 0  # ticks not scanned because the previous scan was still running
        self.worker_restarts = 0
        self.alerts = 0
        self.last_evaluated = 0
        self.last_coins = 0
        self.last_errors = 0
        self.history_ms: float | None = None  # the last tick's candles folded into the indicator state

    def finished(self, scan: Round, ms: float) -> None:
        self.durations.append(ms)
        self.scans += 1
        self.alerts += scan.alerts
        self.last_evaluated, self.last_coins = scan.evaluated, scan.coins
        self.last_errors = sum(error is not None for error in scan.errors.values())

    def stats(
        self,
        workers: int,
        strategies: int,
        costs: CostBook | None = None,
        seeding: int = 0,
        last_seed_s: float | None = None,
    ) -> ScannerStats:
        """The figures for ``/health``; ``costs``: each planned strategy's, to name the costliest."""
        costs = costs if costs is not None else CostBook()
        costliest = costs.costliest(COSTLIEST)
        durations = sorted(self.durations)
        return ScannerStats(
            workers=workers,
            strategies=strategies,
            scans=self.scans,
            scans_skipped=self.skipped,
            worker_restarts=self.worker_restarts,
            alerts=self.alerts,
            last_scan_ms=round(self.durations[-1], 1) if durations else None,
            scan_ms_p50=round(statistics.median(durations), 1) if durations else None,
            scan_ms_p99=round(durations[min(len(durations) - 1, int(len(durations) * 0.99))], 1)
            if durations
            else None,
            last_evaluated=self.last_evaluated,
            last_coins=self.last_coins,
            last_errors=self.last_errors,
            last_history_ms=None if self.history_ms is None else round(self.history_ms, 1),
            cost=costs.total,
            costliest=[CostlyStrategy(i, cost.total) for i, cost in costliest],
            seeding=seeding,
            last_seed_s=None if last_seed_s is None else round(last_seed_s, 3),
        )
