#!/usr/bin/env python3
"""Seeding the Scanner's indicator state from stored history: cpu seconds for N coins x M candles.

    python bench/seeding.py [--coins 1000] [--candles 5000] [--calls "rsi(14)"] [--repeat 3] [--code DIR]

The candles (random walks with flat runs, a group of 250,000 candles at a time as
``models/closes.py`` reads them) are folded into a fresh :class:`~ubot.scan.history.IndicatorHistory`
with :meth:`~ubot.scan.history.IndicatorHistory.add_history`, as a seed job or a restart does. Prints
the median cpu time of ``--repeat`` runs. ``--code DIR`` imports ``ubot`` from another checkout
(e.g. main's, for old against new on the same machine, one run after the other).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

_code = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--code"), None)
sys.path.insert(0, os.path.abspath(_code or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")))

import numpy as np  # noqa: E402

from ubot.market.candles import CandleRows  # noqa: E402
from ubot.rules import compile_condition  # noqa: E402
from ubot.scan.history import IndicatorHistory  # noqa: E402

START_MS = 1_767_225_600_000
GROUP = 250_000


def chunks(coins: int, candles: int, seed: int) -> list[CandleRows]:
    """Every coin's ``candles`` 1m closes, in groups of whole coins of about ``GROUP`` candles."""
    rng = np.random.default_rng(seed)
    per = max(1, GROUP // candles)
    out = []
    for first in range(0, coins, per):
        ids = np.arange(first + 1, min(first + per, coins) + 1, dtype=np.int64)
        steps = rng.normal(0, 0.01, (len(ids), candles))
        steps[rng.random((len(ids), candles)) < 0.2] = 0.0  # flat stretches
        close = (np.exp(rng.normal(0, 2, (len(ids), 1))) * np.exp(np.cumsum(steps, axis=1))).ravel()
        coin_ids = np.repeat(ids, candles)
        times = np.tile(START_MS + 60_000 * np.arange(candles, dtype=np.int64), len(ids))
        zeros = np.zeros(len(close), dtype=np.int64)
        out.append(CandleRows("1m", coin_ids, times, close, close, close, close, zeros, zeros, zeros))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=1_000)
    parser.add_argument("--candles", type=int, default=5_000)
    parser.add_argument("--calls", default="rsi(14)", help="indicator calls, as in a condition")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--code", help="import ubot from this checkout (old against new)")
    args = parser.parse_args()
    import ubot

    calls = compile_condition(f"({args.calls.replace(',', ') + (')}) > 0").indicators
    data = chunks(args.coins, args.candles, 1)
    cpus = []
    for _ in range(args.repeat):
        history = IndicatorHistory("1m", calls)
        started = time.process_time()
        history.add_history(iter(data))
        cpus.append(time.process_time() - started)
    print(f"code: {os.path.dirname(os.path.dirname(os.path.abspath(ubot.__file__)))}")
    print(
        f"RESULT seeding {', '.join(sorted(str(c) for c in calls))} over {args.coins:,} coins x "
        f"{args.candles:,} candles: cpu median {statistics.median(cpus):.3f} s (runs: "
        f"{', '.join(f'{c:.3f}' for c in cpus)})"
    )


if __name__ == "__main__":
    main()
