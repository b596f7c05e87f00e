#!/usr/bin/env python3
"""Scanner benchmark: 10,000 strategies over 5,000 coins, per tick, against the naive approach.

    python bench/scanner.py [--strategies 10000[,100000...]] [--coins 5000] [--ticks 5] [--workers 10]
                            [--mix both|template|distinct] [--distinct] [--parts 1,2,3] [--sample 300]
                            [--code DIR]

Two mixes of strategies (``--mix``, default both; ``--distinct`` is ``--mix distinct``):

* ``template``: templates of what users write (below) with thresholds drawn from small integer
  ranges, so many strategies share a condition text;
* ``distinct``: the same templates, every strategy with its own thresholds (decimals, as users write
  them): every condition text is different.

Timeframes 1m..1d; scopes from 1-5 named coins to the top 1,000; every firing rule. The candle history
of every coin is a random walk of 1,000 stored candles per timeframe (read in groups of coins, as
from the database); each tick moves every price.

Part 1 runs the Scanner's own code in this thread: fold the tick's candles, build the shared frame
(fields, every indicator once), then each of the ``--workers`` workers scans its share, one after
another. Part 2 runs the real actors (the Scanner supervisor and its worker pool, the workers in
parallel threads) with 1 worker and with ``--workers``, on the same ticks. Part 3 times the naive
approach on a random sample of (strategy, coin) pairs: for each pair, compute the strategy's indicators
from that coin's closes, then evaluate the condition for that one coin with a fresh asteval
interpreter, and extrapolates to all pairs of one tick.

``--code DIR`` imports ``ubot`` from another checkout (e.g. a worktree of main, for old against new
in one run on the same machine). Several ``--strategies`` counts run one after another in one process,
each also timing a strategy change (one user edits one strategy: the planner replans and every worker
rebinds, as before its next scan). The process's resident memory (peak, and now) is printed at the
end, and every figure again as ``RESULT`` lines (issue 14's rows side by side:
``--distinct --strategies 10000,100000 --parts 1``).
Targets (issue 14): a scan of 10,000 all-distinct strategies x 5,000 coins <= 150 ms; of 100,000
<= 1.5 s; resident memory at 100,000 x 5,000 <= 600 MB.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import random
import resource
import statistics
import sys
import threading
import time

_code = next((sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a == "--code"), None)
sys.path.insert(0, os.path.abspath(_code or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")))

import numpy as np  # noqa: E402
import pykka  # noqa: E402

from ubot.market.candles import TIMEFRAMES, CandleRows, bucket_start  # noqa: E402
from ubot.market.snapshot import NUMERIC_FIELDS, GlobalMetrics, Snapshot  # noqa: E402
from ubot.messages import Candled  # noqa: E402
from ubot.rules import compile_condition, indicators  # noqa: E402
from ubot.scan.planner import ScanPlanner  # noqa: E402
from ubot.scan.spec import StrategySpec, UserStrategies  # noqa: E402
from ubot.scan.worker import ScanWorker  # noqa: E402
from ubot.schedule import Tick  # noqa: E402

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
#: Issue 14's targets for a scan of all-distinct strategies x 5,000 coins, ms, by strategies.
TARGETS = {10_000: 150, 100_000: 1500}

#: Each template takes the random source and ``n(low, high)``: a threshold in [low, high] (a whole
#: number in the template mix, where ``high - low >= 2``; with up to four decimals in the distinct
#: mix). The ranges are at the tails, as users set alerts: each condition is true for few coins.
TEMPLATES = [
    lambda r, n: f"rsi(14) < {n(10, 25)}",
    lambda r, n: f"rsi({r.choice([7, 14, 21])}) > {n(78, 92)}",
    lambda r, n: f"price > sma({r.choice([20, 50, 200])}) * {n(1.1, 1.3)}",
    lambda r, n: f"ema(12) > ema(26) and rsi(14) < {n(20, 35)}",
    lambda r, n: f"percent_change_24h < -{n(15, 30)}",
    lambda r, n: f"percent_change_1h > {n(6, 12)} and volume_24h > {n(1, 50)} * 1000000",
    lambda r, n: f"macd() > macd_signal() and rsi(14) < {n(15, 30)}",
    lambda r, n: f"price < bb_lower(20, 2) * {n(0.9, 0.97)}",
    lambda r, n: f"price > bb_upper(20, {r.choice([2, 2.5, 3])}) * {n(1.03, 1.1)}",
    lambda r, n: f"change({r.choice([12, 24])}) > {n(15, 40)}",
    lambda r, n: f"price >= highest({r.choice([24, 48])}) * {n(1.02, 1.1)}",
    lambda r, n: f"btc_dominance > {n(50, 60)} and percent_change_7d > {n(40, 80)}",
    lambda r, n: f"volume_24h / market_cap > {n(30, 60)}",
    lambda r, n: f"abs(percent_change_1h) > {n(6, 10)} and rank <= {r.choice([50, 100, 500])}",
    lambda r, n: f"price < ema(50) * {n(0.7, 0.85)} and percent_change_24h < 0",
]
TIMEFRAME_MIX = {"1m": 20, "5m": 15, "15m": 15, "1h": 30, "4h": 10, "1d": 10}
TOP_N_MIX = {10: 10, 20: 10, 50: 20, 100: 25, 200: 15, 500: 10, 1000: 10}
FREQUENCY_MIX = {"once_per_crossing": 70, "once_per_bar": 10, "once_per_bar_close": 15, "once": 5}


def pick(r: random.Random, mix: dict) -> object:
    return r.choices(list(mix), weights=list(mix.values()))[0]


def make_strategies(n: int, coins: int, r: random.Random, distinct: bool = False) -> list[StrategySpec]:
    symbols = [f"C{i}" for i in range(1, min(coins, 200) + 1)]
    specs, seen = [], set()

    def number(low: float, high: float) -> str:
        if not distinct:
            return str(r.randint(int(low), int(high))) if high - low >= 2 else str(r.choice([low, high]))
        return f"{r.uniform(low, high):.4f}".rstrip("0")

    for i in range(1, n + 1):
        named = r.random() < 0.4
        condition = r.choice(TEMPLATES)(r, number)
        while distinct and condition in seen:  # every text its own
            condition = r.choice(TEMPLATES)(r, number)
        seen.add(condition)
        specs.append(
            StrategySpec(
                id=i,
                user_id=1 + i // 10,
                name=f"s{i}",
                condition=condition,
                timeframe=pick(r, TIMEFRAME_MIX),
                symbols=tuple(r.sample(symbols, r.randint(1, 5))) if named else None,
                top_n=None if named else pick(r, TOP_N_MIX),
                frequency=pick(r, FREQUENCY_MIX),
                cooldown_s=r.choice([0, 0, 300, 3600]),
                expires_at_ms=None,
            )
        )
    return specs


class Market:
    """Random-walk prices for ``coins`` coins, and their candle history on every timeframe."""

    def __init__(self, coins: int, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.ids = np.arange(1, coins + 1, dtype=np.int64)
        self.price = np.exp(self.rng.normal(0, 2, coins))
        self.coins = coins
        # Slowly drifting quote fields (AR(1)), so conditions cross now and then, not every tick.
        self.drift = {name: self.rng.normal(0, scale, coins) for name, scale in self.SCALES.items()}
        self.volume = self.rng.uniform(1e5, 1e9, coins)
        self.cap = self.volume * self.rng.uniform(2, 50, coins)

    SCALES = {"percent_change_1h": 2.0, "percent_change_24h": 6.0, "percent_change_7d": 15.0}

    #: Stored candles per coin and timeframe (the Scanner reads every stored candle).
    HISTORY = 300

    #: Coins per group of stored candles (as ``models.closes.closed_candles`` reads them).
    GROUP = 500

    def stored(self, timeframe: str, after_ms: int | None, before_ms: int):
        """The Scanner's loader: every stored candle (the last ``HISTORY`` ones before ``before_ms``),
        a group of coins at a time."""
        length = TIMEFRAMES[timeframe]
        depth = self.HISTORY if after_ms is None else min(self.HISTORY, (before_ms - after_ms) // length)
        for start in range(0, self.coins, self.GROUP):
            yield self.history(timeframe, depth, before_ms, slice(start, start + self.GROUP))

    def history(self, timeframe: str, depth: int, before_ms: int, coins: slice = slice(None)) -> CandleRows:
        length = TIMEFRAMES[timeframe]
        ids, price = self.ids[coins], self.price[coins]
        steps = self.rng.normal(0, 0.002 * np.sqrt(length / 60_000), (len(ids), depth))
        walk = price[:, None] * np.exp(np.cumsum(steps[:, ::-1], axis=1) - steps.sum(axis=1, keepdims=True))
        times = before_ms - length * np.arange(depth, 0, -1)
        coin_ids = np.repeat(ids, depth)
        open_time = np.tile(times, len(ids)).astype(np.int64)
        close = walk.ravel()
        zeros = np.zeros(len(close), dtype=np.int64)
        return CandleRows(timeframe, coin_ids, open_time, close, close, close, close, zeros, zeros, zeros)

    def step(self, ts: int) -> tuple[Snapshot, dict[str, CandleRows], dict[str, CandleRows]]:
        change = self.rng.normal(0, 0.002, self.coins)
        self.price = self.price * np.exp(change)
        columns = {name: np.full(self.coins, np.nan) for name in NUMERIC_FIELDS}
        columns["rank"] = np.arange(1, self.coins + 1, dtype=np.float64)
        columns["price"] = self.price
        for name, scale in self.SCALES.items():
            self.drift[name] = 0.98 * self.drift[name] + self.rng.normal(0, scale * 0.2, self.coins)
            columns[name] = self.drift[name]
        self.volume *= np.exp(self.rng.normal(0, 0.01, self.coins))
        columns["volume_24h"] = self.volume
        columns["market_cap"] = self.cap * self.price / self.price.mean()
        snapshot = Snapshot(
            timestamp_ms=ts,
            convert="USD",
            ids=self.ids,
            symbols=tuple(f"C{i}" for i in self.ids.tolist()),
            names=tuple(f"Coin {i}" for i in self.ids.tolist()),
            slugs=tuple(f"coin-{i}" for i in self.ids.tolist()),
            quote_ts_ms=np.full(self.coins, ts, dtype=np.int64),
            columns=columns,
            global_metrics=GlobalMetrics(ts, {"btc_dominance": float(self.rng.uniform(48, 62))}),
        )
        zeros = np.zeros(self.coins, dtype=np.int64)
        opened, closed = {}, {}
        for timeframe, length in TIMEFRAMES.items():
            bar = int(bucket_start(ts, timeframe))
            p = self.price
            opened[timeframe] = CandleRows(
                timeframe, self.ids, np.full(self.coins, bar), p, p, p, p, zeros, zeros, zeros
            )
            if ts % length == 0:  # the previous bar just closed
                previous = np.full(self.coins, bar - length)
                closed[timeframe] = CandleRows(timeframe, self.ids, previous, p, p, p, p, zeros, zeros, zeros)
        return snapshot, closed, opened


def make_worker(index: int, workers: int) -> ScanWorker:
    """A worker, as the Scanner makes it (older code: without its place among the workers)."""
    if len(inspect.signature(ScanWorker).parameters) >= 2:
        return ScanWorker(index, workers)
    return ScanWorker()


def part1(specs, market, ticks, workers) -> list[float]:
    planner = ScanPlanner(workers, market.stored)
    pool = [make_worker(w, workers) for w in range(workers)]
    users: dict[int, list[StrategySpec]] = {}
    for s in specs:
        users.setdefault(s.user_id, []).append(s)
    everyone = [UserStrategies(user, tuple(mine)) for user, mine in users.items()]
    for w, message in planner.set_all(everyone).items():  # as the Scanner starts
        for user, mine in message.users.items():
            pool[w].replace_user(user, mine)
    times, cpus, alerts, evaluated = [], [], 0, 0
    for k in range(ticks + 1):
        ts = START_MS + 60_000 * (k + 1)
        snapshot, closed, opened = market.step(ts)
        started, cpu = time.perf_counter(), time.thread_time()
        planner.update_candles(ts, closed, opened)
        frame = planner.frame(k, snapshot)
        built = time.perf_counter()
        results = [w.scan(frame) for w in pool]
        done = time.perf_counter()
        cpu = time.thread_time() - cpu
        if k == 0:  # the first tick loads the history
            print(
                f"  first tick (seeds {sum(len(h) for h in planner.histories.values()):,} coin histories "
                f"of {Market.HISTORY:,} candles): {done - started:.2f} s; resident memory "
                f"peak {rss_mb()[0]:.0f} MB, now {rss_mb()[1]:.0f} MB"
            )
            del frame, results
            continue
        times.append(done - started)
        cpus.append(cpu)
        alerts += sum(len(r.alerts) for r in results)
        evaluated = sum(r.evaluated for r in results)
        pairs = sum(r.coins for r in results)
        print(
            f"  tick {k}: {(done - started) * 1000:6.0f} ms, cpu {cpu * 1000:4.0f} ms "
            f"(frame {(built - started) * 1000:4.0f} ms, {sum(len(r.alerts) for r in results)} alerts, "
            f"{len(frame.indicators)} indicator series, {len(frame.results)} evaluations; "
            f"{evaluated} strategies, {pairs:,} strategy-coin pairs)"
        )
        del frame, results  # the Scanner drops a frame when its scan is over
    print(f"  alerts raised over {ticks} ticks: {alerts}")
    changes = strategy_changes(planner, pool, users)
    return times, cpus, pairs, changes


def strategy_changes(planner, pool, users, count: int = 5) -> list[float]:
    """Seconds per strategy change: one user edits one strategy's threshold; the planner replans,
    every worker takes its message and rebinds to the new plan (what its next scan starts with)."""
    r = random.Random(3)
    times, cpus = [], []
    for _ in range(count):
        user = r.choice(sorted(users))
        mine = list(users[user])
        k = r.randrange(len(mine))
        old = mine[k]
        mine[k] = dataclasses.replace(
            old, condition=f"({old.condition}) and price > {r.uniform(0, 1e-9):.12f}"
        )
        users[user] = mine
        started, cpu = time.perf_counter(), time.thread_time()
        for w, message in planner.set_user(user, mine).items():
            for u, specs in message.users.items():
                pool[w].replace_user(u, specs, message.forget)
            pool[w]._bindings(planner.plan)
        times.append(time.perf_counter() - started)
        cpus.append(time.thread_time() - cpu)
    return times, cpus


def part2(specs, market, ticks, workers, parallel=False) -> list[float]:
    from ubot.actors.scanner import Scanner
    from ubot.scan.messages import ScannerStats

    done = threading.Event()
    reports: list[ScannerStats] = []

    class Monitor(pykka.ThreadingActor):
        def on_receive(self, message):
            if isinstance(message, ScannerStats):
                reports.append(message)
                done.set()

    from ubot.scan.messages import WatchStrategies
    from ubot.scan.spec import UserStrategies

    by_user: dict[int, list[StrategySpec]] = {}
    for s in specs:
        by_user.setdefault(s.user_id, []).append(s)
    everyone = tuple(UserStrategies(u, tuple(v)) for u, v in by_user.items())

    class Users(pykka.ThreadingActor):
        """The UserManager's part: every strategy at start; the Scanner's notes and disables are
        dropped (answering each of them with all 100,000 strategies, as this once did, kept a second
        thread busy and charged its time to the scan)."""

        def on_receive(self, message):
            return everyone if isinstance(message, WatchStrategies) else None

    monitor, users = Monitor.start(), Users.start()
    options = {"parallel": parallel} if "parallel" in inspect.signature(Scanner).parameters else {}
    scanner = Scanner.start(workers, users=users, monitor=monitor, load=market.stored, **options)
    times = []
    try:
        for k in range(ticks + 1):
            ts = START_MS + 60_000 * (k + 1)
            snapshot, closed, opened = market.step(ts)
            tick = Tick(number=k + 1, scheduled_ms=ts, fired_ms=ts)
            done.clear()
            scanner.tell(
                Candled(
                    tick, snapshot, "bench", snapshot_id=k + 1, open_candles=opened, closed_candles=closed
                )
            )
            if not done.wait(600):
                raise SystemExit("the scanner did not finish a tick within 600 s")
            if k:
                times.append(reports[-1].last_scan_ms / 1000)
    finally:
        pykka.ActorRegistry.stop_all()
    return times


def part3(specs, market, sample: int, r: random.Random) -> tuple[float, int]:
    """Seconds per (strategy, coin) pair the naive way, over a random sample."""
    depth = 400
    closes = {tf: market.history(tf, depth, START_MS) for tf in TIMEFRAMES}
    per_coin = {tf: rows.close.reshape(market.coins, depth) for tf, rows in closes.items()}
    snapshot, _, _ = market.step(START_MS)
    pairs = []
    for _ in range(sample):
        spec = r.choice(specs)
        coin = r.randrange(min(market.coins, spec.top_n or 200))
        pairs.append((spec, coin))
    started = time.perf_counter()
    for spec, coin in pairs:
        condition = compile_condition(spec.condition)
        row = per_coin[spec.timeframe][coin]
        values = {str(c): indicators.compute([c], row)[str(c)] for c in condition.indicators}
        for field in condition.analysis.fields:
            column = snapshot.columns.get(field)
            values[field] = column[coin : coin + 1] if column is not None else np.array([55.0])
        condition.evaluate(values, coins=1)
    return (time.perf_counter() - started) / sample, len(pairs)


def rss_mb() -> tuple[float, float]:
    """(peak, current) resident memory of this process, MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/status") as status:
        now = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    return peak, now


def run(args, count: int, mixes: list[str], parts: set[int], rows: list[str]) -> None:
    """Parts 1-3 for ``count`` strategies, each mix; the summary lines go to ``rows``."""
    print(f"{count:,} strategies, {args.coins:,} coins, {args.workers} workers, {args.ticks} ticks")
    for mix in mixes:
        r = random.Random(args.seed)
        specs = make_strategies(count, args.coins, r, distinct=mix == "distinct")
        print(f"mix {mix}: {len({s.condition for s in specs}):,} distinct condition texts")
        if 1 in parts:
            print("part 1: the Scanner's code, one thread")
            times, cpus, pairs, changes = part1(
                specs, Market(args.coins, args.seed), args.ticks, args.workers
            )
            p50, cpu = statistics.median(times), statistics.median(cpus)
            print(
                f"  per tick: p50 {p50 * 1000:.0f} ms (cpu {cpu * 1000:.0f} ms), max {max(times) * 1000:.0f} ms"
            )
            rows.append(
                f"scan {mix}, {count:,} strategies x {args.coins:,} coins, code in one thread: "
                f"p50 {p50 * 1000:.0f} ms (cpu {cpu * 1000:.0f} ms)"
                + (f"   target <= {TARGETS[count]:g} ms" if mix == "distinct" and count in TARGETS else "")
            )
            rows.append(
                f"strategy change ({mix}, {count:,} strategies): replan + every worker rebinds, "
                f"p50 {statistics.median(changes[0]) * 1000:.1f} ms (cpu {statistics.median(changes[1]) * 1000:.1f} ms)"
                f" over {len(changes[0])} changes"
            )
        if 2 in parts:
            runs = (
                [(1, False), (args.workers, False), (args.workers, True)]
                if args.workers > 1
                else [(1, False)]
            )
            for workers, parallel in runs:
                how = "in parallel" if parallel else "taking turns"
                print(f"part 2: the actors (Scanner supervisor + {workers} worker(s), {how})")
                actor_times = part2(specs, Market(args.coins, args.seed), args.ticks, workers, parallel)
                p50 = statistics.median(actor_times)
                print(f"  per tick: p50 {p50 * 1000:.0f} ms, max {max(actor_times) * 1000:.0f} ms")
                rows.append(
                    f"scan {mix}, {count:,} x {args.coins:,}, actors, workers={workers} {how}: "
                    f"p50 {p50 * 1000:.0f} ms"
                )
        if 3 in parts and mix == mixes[0] and 1 in parts:
            print("part 3: naive (indicators per strategy per coin, fresh asteval per coin), sampled")
            per_pair, n = part3(specs, Market(args.coins, args.seed), args.sample, r)
            naive = per_pair * pairs
            print(
                f"  {per_pair * 1e6:.0f} us per pair over {n} sampled pairs -> {naive:.0f} s per tick for {pairs:,} pairs"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--strategies", default="10000", help="strategy counts, run one after another: e.g. 10000,100000"
    )
    parser.add_argument("--coins", type=int, default=5_000)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--workers", type=int, default=10)
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mix", choices=["both", "template", "distinct"], default="both")
    parser.add_argument("--distinct", action="store_true", help="the distinct mix only (--mix distinct)")
    parser.add_argument("--parts", default="1,2,3", help="which parts to run, e.g. 1 or 1,2")
    parser.add_argument("--code", help="import ubot from this checkout (old against new)")
    args = parser.parse_args()
    mixes = ["distinct"] if args.distinct else ["template", "distinct"] if args.mix == "both" else [args.mix]
    parts = {int(p) for p in args.parts.split(",")}
    counts = [int(c) for c in args.strategies.split(",")]
    import ubot

    print(f"code: {os.path.dirname(os.path.dirname(os.path.abspath(ubot.__file__)))}")
    rows = []
    for count in counts:
        run(args, count, mixes, parts, rows)
    peak, now = rss_mb()
    rows.append(
        f"resident memory: peak {peak:.0f} MB, now {now:.0f} MB"
        + ("   target <= 600 MB at 100,000 x 5,000" if max(counts) == 100_000 else "")
    )
    for row in rows:
        print(f"RESULT {row}")


if __name__ == "__main__":
    main()
