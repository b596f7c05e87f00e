#!/usr/bin/env python3
"""Indicator cost per tick: the old windowed computation against the incremental state, for n = 14 and
n = 200, side by side in one run.

    python bench/indicators.py [--coins 5000] [--history 2000] [--repeat 5]

* old: what the Scanner did before issue 14: each tick, every indicator recomputed from a coins x
  window matrix of the newest closes, the window 10 x its lookback for EMA/RSI/MACD (at most 1,000),
  its lookback for the others (``ubot.rules.indicators``);
* new, open: the value including the open candle, read from the state (``IndicatorHistory.value``):
  what every tick pays;
* new, close: advancing the state by one closed candle for every coin (``add_closed``): what a tick
  that closes a candle pays on top (mean over 2n candles, amortising the exact re-sum every n).

Each figure is the median over ``--repeat`` runs, in ms for all coins. The seeding (every coin's whole
history folded in at start) is timed once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from ubot.market.candles import CandleRows  # noqa: E402
from ubot.rules import IndicatorCall, indicators  # noqa: E402
from ubot.scan.history import IndicatorHistory  # noqa: E402

MINUTE = 60_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
OLD_WARMUP, OLD_MAX_HISTORY = 10, 1000
RECURSIVE = {"ema", "rsi", "macd", "macd_signal"}


def old_window(call: IndicatorCall) -> int:
    """The closes the Scanner passed before issue 14."""
    needed = call.lookback
    return max(needed, min(OLD_MAX_HISTORY, OLD_WARMUP * needed)) if call.name in RECURSIVE else needed


def calls(n: int) -> list[IndicatorCall]:
    return [
        IndicatorCall("rsi", (n,)),
        IndicatorCall("ema", (n,)),
        IndicatorCall("sma", (n,)),
        IndicatorCall("bb_upper", (n, 2.0)),
        IndicatorCall("highest", (n,)),
    ]


def rows(timeframe: str, ids: np.ndarray, times: np.ndarray, closes: np.ndarray) -> CandleRows:
    zeros = np.zeros(len(ids), dtype=np.int64)
    return CandleRows(timeframe, ids, times, closes, closes, closes, closes, zeros, zeros, zeros)


def median_ms(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=5_000)
    parser.add_argument("--history", type=int, default=2_000, help="stored candles per coin")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    coins, depth = args.coins, args.history
    ids = np.arange(1, coins + 1, dtype=np.int64)
    walk = np.exp(rng.normal(0, 2, coins))[:, None] * np.cumprod(
        1 + rng.normal(0, 0.01, (coins, depth)), axis=1
    )
    price = walk[:, -1] * 1.001
    print(
        f"{coins:,} coins, {depth:,} stored 1m candles each; median of {args.repeat} runs, ms for all coins"
    )
    print(f"{'indicator':<16}{'old (window)':>14}{'new open':>10}{'new close':>11}")
    for n in (14, 200):
        measure(n, ids, walk, price, args.repeat)
    flat_runs()


def flat_runs() -> None:
    """Issue 14's row "rsi(n) vs TA-Lib after any flat run" (target <= 1e-9 relative): a random walk,
    then a flat run of 10 (n + 1) + 50 candles (the old window went flat there), then a small move;
    the state seeded from the whole history against TA-Lib's RSI over it, after every candle of the
    run and the move."""
    try:
        import talib
    except ImportError:
        print("rsi(n) vs TA-Lib after a flat run: skipped (pip install -e '.[test]' for TA-Lib)")
        return
    rng = np.random.default_rng(2)
    worst = 0.0
    for n in (2, 14, 50):
        walk = 100 * np.cumprod(1 + rng.normal(0, 0.02, 300))
        closes = np.concatenate([walk, np.full(10 * (n + 1) + 50, walk[-1]), [walk[-1] * 1.005]])
        history = IndicatorHistory("1m", [IndicatorCall("rsi", (n,))])
        expected = talib.RSI(closes, n)
        got = []
        for k, close in enumerate(closes):
            history.add_closed(
                rows("1m", np.array([1]), np.array([START_MS + k * MINUTE]), np.array([close]))
            )
            got.append(history.value(IndicatorCall("rsi", (n,)), np.array([0]), closed_only=True)[0])
        tail = slice(len(walk), None)
        error = np.max(np.abs(np.array(got)[tail] - expected[tail]) / np.abs(expected[tail]))
        worst = max(worst, float(error))
    print(
        f"rsi(n) vs TA-Lib after a flat run (n = 2, 14, 50; every candle of the run and after): "
        f"max relative difference {worst:.1e}   target <= 1e-9: {'MET' if worst <= 1e-9 else 'NOT MET'}"
    )


def measure(n: int, ids: np.ndarray, walk: np.ndarray, price: np.ndarray, repeat: int) -> None:
    coins, depth = walk.shape
    times = START_MS + MINUTE * np.arange(depth)
    stored = rows("1m", np.repeat(ids, depth), np.tile(times, coins), walk.ravel())
    every = [*calls(n), IndicatorCall("macd"), IndicatorCall("macd_signal")]
    history = IndicatorHistory("1m", every)
    started = time.perf_counter()
    history.add_closed(stored)
    seeded = time.perf_counter() - started
    history.set_open(rows("1m", ids, np.full(coins, START_MS + depth * MINUTE), price))
    at = history.rows_for(ids)
    matrix = np.empty((coins, depth + 1))
    matrix[:, :-1], matrix[:, -1] = walk, price
    totals = [0.0, 0.0]
    for call in every:
        window = matrix[:, -old_window(call) :]
        old = median_ms(lambda c=call, w=window: indicators.FUNCTIONS[c.name](w, *c.args), repeat)
        new = median_ms(lambda c=call: history.value(c, at, closed_only=False), repeat)
        if call.name not in ("macd", "macd_signal"):  # no n: the same in both runs
            totals[0] += old
            totals[1] += new
        print(f"{str(call):<16}{old:>14.2f}{new:>10.2f}{'':>11}")
    closing = 2 * n  # a mean over 2n closed candles: includes the re-summing every n candles
    started = time.perf_counter()
    for k in range(1, closing + 1):  # one more closed candle for every coin
        history.add_closed(rows("1m", ids, np.full(coins, START_MS + (depth + k) * MINUTE), price))
    advance = (time.perf_counter() - started) * 1000 / closing
    print(
        f"{'n = ' + str(n) + ' total':<16}{totals[0]:>14.2f}{totals[1]:>10.2f}{advance:>11.2f}"
        f"   (total: the 5 calls of n; close: all {len(every)} calls' state; seeding {coins:,} x {depth:,}"
        f" candles: {seeded:.1f} s)"
    )


if __name__ == "__main__":
    main()
