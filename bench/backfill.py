#!/usr/bin/env python3
"""``run.py --backfill DAYS`` at ``--coins`` simulated coins: minutes per day of 1m data.

    python bench/backfill.py [--days 1] [--coins 100] [--db URL]

Makes ``--days`` of simulated history, one snapshot a minute, into a new SQLite file (or ``--db``, a
PostgreSQL database whose tables are emptied first) with ``backfill.simulated_history``: the Store's
and the OHLC stage's own code. Prints the wall time, minutes per day of data, and the share of the
simulated market's own fetches.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ubot.backfill import simulated_history  # noqa: E402
from ubot.market.simulated import SimulatedSource  # noqa: E402
from ubot.models.db import open_database  # noqa: E402
from ubot.models.schema import ensure_schema  # noqa: E402

NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class Timed:
    """The source, with the time spent in its fetches added up."""

    def __init__(self, source: SimulatedSource) -> None:
        self.source, self.name, self.seconds = source, source.name, 0.0

    def fetch(self, at_ms: int):
        started = time.perf_counter()
        try:
            return self.source.fetch(at_ms)
        finally:
            self.seconds += time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--coins", type=int, default=100)
    parser.add_argument("--db", help="a PostgreSQL URL (default: a new SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        db = open_database(args.db or f"sqlite:///{directory}/backfill.db")
        ensure_schema(db)
        source = Timed(SimulatedSource(limit=args.coins))
        started = time.perf_counter()
        result = simulated_history(db, source, args.days, 60, NOW_MS)
        seconds = time.perf_counter() - started
        db.close()
    print(
        f"{result.stored} snapshots of {args.coins} coins ({args.days:g} days of 1m data), "
        f"{result.candles} candle rows: {seconds:.1f} s = {seconds / 60 / args.days:.2f} min per day "
        f"(the simulated market's own fetches: {source.seconds:.1f} s)"
    )


if __name__ == "__main__":
    main()
