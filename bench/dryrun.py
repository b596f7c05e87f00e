#!/usr/bin/env python3
"""Dry-run cost: one strategy over ``--days`` of 1m candles of ``--coins`` coins (issue 15's bound:
30 days x 100 coins within 2 s).

    python bench/dryrun.py [--days 30] [--coins 100] [--repeat 5] [--cases N] [--read] [--end-to-end]
                           [--db postgresql://...] [--backfilled URL]

* compute: ``scan.dryrun.run`` over history already in memory (a random walk per coin, plus the
  timeframe's warm-up candles): the indicators over time, the condition over every (minute, coin),
  the firing rules; for a few conditions, timeframes and frequencies;
* read (``--read``): the same candles stored in a temporary SQLite file first, then
  ``models.dryrun.DryRunReader.read``, what a request pays on top (the writing is not timed);
* end to end (``--end-to-end``): what a request costs, ``scan.dryrun.dry_run`` with the reader's
  ``read`` over ``--coins`` coins stored in a temporary SQLite file the way the pipeline and
  ``--backfill`` store them (one tick of every coin after the other, so a coin's candles are spread
  over the whole table), for each case: the read, the computation, and both together; first with
  the candle rows alone (no block packed yet), then again once ``BlockPacker.pack_all`` has packed
  them in blocks (``models/candle_blocks.py``), as the engine's packer does in the background.
  With ``--db postgresql://...`` the same on PostgreSQL instead, in a schema of this run's own
  (created and dropped here, as ``bench/pipeline.py`` does); the blocks' storage is reported (how
  many of their bytes PostgreSQL compressed, ``pg_column_compression``).
* over a real database (``--backfilled URL``): the same whole requests over a database as uBot
  leaves it, e.g. after ``python run.py --backfill 7 --db sqlite:///week.db``: its stored quotes
  (the candles not written yet are rebuilt from them), candle rows and packed blocks; the last
  ``--days`` of its history (at most what it holds), the top ``--coins`` coins. Nothing is written.

Each figure is the median over ``--repeat`` runs, in ms: wall time, and the process's CPU time
(what the run itself cost, without the waits for a core on a shared machine).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from ubot.market.candles import TIMEFRAMES, CandleRows  # noqa: E402
from ubot.rules import compile_condition  # noqa: E402
from ubot.scan import dryrun  # noqa: E402

MINUTE = 60_000
START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
CASES = (
    ("rsi(14) < 30 and price > sma(50)", "1m", "once_per_crossing", 0),
    ("price > bb_upper(20, 2) and macd() > macd_signal()", "1m", "once_per_bar", 3600),
    ("ema(12) > ema(26) and rsi(14) > 55", "1h", "once_per_crossing", 0),
    ("change(4) > 2 or lowest(24) == price", "4h", "once_per_bar_close", 0),
)


def history(days: int, coins: int, timeframe: str, seed: int = 1) -> dryrun.StoredHistory:
    rng = np.random.default_rng(seed)
    minutes = days * 1440
    ids = np.arange(1, coins + 1, dtype=np.int64)
    walk = 100.0 * np.cumprod(1 + rng.normal(0, 0.002, (coins, minutes)), axis=1)
    times = START_MS + MINUTE * np.arange(minutes, dtype=np.int64)
    coin_ids, open_time = np.repeat(ids, minutes), np.tile(times, coins)
    nans, zeros = np.full(coins * minutes, np.nan), np.zeros(coins * minutes, dtype=np.int64)
    ticks = CandleRows("1m", coin_ids, open_time, nans, nans, nans, walk.ravel(), zeros, open_time, zeros)
    length = TIMEFRAMES[timeframe]
    warm = min(dryrun.WARMUP_CANDLES, 1000)
    warm_times = START_MS - length * np.arange(warm, 0, -1, dtype=np.int64)
    closes = 100.0 * np.cumprod(1 + rng.normal(0, 0.01, (coins, warm)), axis=1)
    w_ids, w_times = np.repeat(ids, warm), np.tile(warm_times, coins)
    w_nans, w_zeros = np.full(coins * warm, np.nan), np.zeros(coins * warm, dtype=np.int64)
    warmup = CandleRows(
        timeframe, w_ids, w_times, w_nans, w_nans, w_nans, closes.ravel(), w_zeros, w_times, w_zeros
    )
    return dryrun.StoredHistory(
        ids, tuple(f"C{i}" for i in ids.tolist()), ticks, warmup, (START_MS, int(times[-1]))
    )


def cases(args: argparse.Namespace) -> tuple[tuple[str, str, str, int], ...]:
    return CASES[: args.cases]


def median_ms(function, repeat: int) -> tuple[float, float, object]:
    """Median wall time and median CPU time of this process (ms): on a shared, loaded machine the
    wall time includes waiting for a core, the CPU time does not."""
    walls, cpus, out = [], [], None
    for _ in range(repeat):
        started, cpu = time.perf_counter(), time.process_time()
        out = function()
        walls.append((time.perf_counter() - started) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--coins", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--cases", type=int, default=len(CASES), help="the first N conditions only (of %(default)s)"
    )
    parser.add_argument("--read", action="store_true", help="also time reading the candles from SQLite")
    parser.add_argument(
        "--end-to-end", action="store_true", help="time whole requests (read + compute) over SQLite instead"
    )
    parser.add_argument(
        "--backfilled",
        metavar="URL",
        help="time whole requests over this database as uBot left it (e.g. after run.py --backfill 7)",
    )
    parser.add_argument(
        "--db", metavar="URL", help="with --end-to-end: a PostgreSQL URL, measured instead of SQLite"
    )
    parser.add_argument(
        "--no-rows", action="store_true", help="with --end-to-end: only the requests over packed blocks"
    )
    parser.add_argument(
        "--block-storage",
        choices=("extended", "external", "main", "plain"),
        help="with --db: the blocks' columns stored so (ALTER TABLE ... SET STORAGE) before packing",
    )
    args = parser.parse_args()
    end = START_MS + args.days * 86_400_000
    print(
        f"load average {os.getloadavg()[0]:.1f}; {args.days} days x {args.coins} coins = {args.days * 1440 * args.coins:,} 1m candles"
    )
    if args.db and not args.end_to_end:
        raise SystemExit("--db goes with --end-to-end")
    if args.backfilled:
        backfilled(args)
        return
    if args.end_to_end:
        end_to_end(args, end)
        return
    for condition, timeframe, frequency, cooldown in cases(args):
        spec = dryrun.DryRunSpec(condition, timeframe, frequency, cooldown, START_MS, end, top_n=args.coins)
        stored = history(args.days, args.coins, timeframe)
        compiled = compile_condition(condition)
        ms, cpu, result = median_ms(functools.partial(dryrun.run, spec, compiled, stored), args.repeat)
        print(
            f"compute  {ms:8.0f} ms wall {cpu:8.0f} ms cpu  {condition!r} {timeframe} {frequency} cooldown {cooldown}s: "
            f"{len(result.firings)} firings{' (truncated)' if result.truncated else ''}"
        )
    if args.read:
        read(args, end)


def store(db, days: int, coins: int, timeframes: set[str], time_major: bool) -> None:
    """The random walk of :func:`history` written as candles: the 1m ones, and those of each other
    timeframe in ``timeframes`` (their closes, for the warm-up and the range), in one transaction,
    tick by tick over all coins (``time_major``, as the pipeline writes) or coin by coin."""
    from ubot.models.bulk import insert_columns
    from ubot.models.candle_store import CANDLE_FIELDS
    from ubot.models.tables import Candle, Coin

    stored = history(days, coins, "1m")
    parts = [stored.minutes, stored.warmup]
    for timeframe in sorted(timeframes - {"1m"}):
        warm = history(days, coins, timeframe).warmup
        parts.append(warm)
    with db.atomic():
        Coin.insert_many(
            [(int(i), f"C{i}", f"Coin {i}", f"c{i}", 0) for i in stored.ids],
            fields=[Coin.id, Coin.symbol, Coin.name, Coin.slug, Coin.first_seen],
        ).execute()
        for m in parts:
            order = np.lexsort((m.coin_ids, m.open_time)) if time_major else np.arange(len(m))
            close, times = m.close[order], m.open_time[order]
            insert_columns(
                Candle,
                CANDLE_FIELDS,
                [m.coin_ids[order], m.timeframe, times, close, close, close, close, times, times, 1],
            )


def end_to_end(args: argparse.Namespace, end: int) -> None:
    if args.db:
        from bench.pipeline import PostgresSchema

        server = PostgresSchema(args.db, prefix="bench_dryrun")
        try:
            stored_and_read(args, end, server.fresh())
        finally:
            server.close()
        return
    with tempfile.TemporaryDirectory() as directory:
        stored_and_read(args, end, f"sqlite:///{directory}/bench.db")


def stored_and_read(args: argparse.Namespace, end: int, url: str) -> None:
    from ubot.models.candle_blocks import BlockPacker
    from ubot.models.db import is_sqlite, open_database
    from ubot.models.dryrun import DryRunReader
    from ubot.models.schema import ensure_schema

    db = open_database(url)
    try:
        ensure_schema(db)
        started = time.perf_counter()
        store(db, args.days, args.coins, {timeframe for _, timeframe, _, _ in CASES}, time_major=True)
        if not is_sqlite(db):
            db.execute_sql("VACUUM ANALYZE")  # as autovacuum would: statistics, and the visibility map
        print(f"stored in {time.perf_counter() - started:.0f} s (not timed below)")
        reader = DryRunReader(db)
        symbols = tuple(f"C{i}" for i in range(1, args.coins + 1))
        if not args.no_rows:
            requests(args, end, reader, symbols, "rows  ")
        if args.block_storage:
            from ubot.models.candle_blocks import COLUMNS

            alter = ", ".join(f'ALTER COLUMN "{name}" SET STORAGE {args.block_storage}' for name in COLUMNS)
            db.execute_sql(f"ALTER TABLE candle_block {alter}")
        started, cpu = time.perf_counter(), time.process_time()
        blocks = BlockPacker(db).pack_all()
        print(
            f"packed {blocks:,} blocks in {time.perf_counter() - started:.1f} s wall, "
            f"{time.process_time() - cpu:.1f} s cpu (not timed below)"
        )
        if not is_sqlite(db):
            db.execute_sql("VACUUM ANALYZE")
            block_storage(db)
        requests(args, end, reader, symbols, "blocks")
    finally:
        db.close()


def block_storage(db) -> None:
    """How PostgreSQL stores the blocks' columns: their bytes, and how many of them it compressed."""
    from ubot.models.candle_blocks import COLUMNS

    for name in COLUMNS:
        raw, stored, compressed = db.execute_sql(
            f'SELECT sum(octet_length("{name}")), sum(pg_column_size("{name}")), '
            f'count(*) FILTER (WHERE pg_column_compression("{name}") IS NOT NULL) FROM candle_block'
        ).fetchone()
        (storage,) = db.execute_sql(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'candle_block'::regclass AND attname = %s",
            (name,),
        ).fetchone()
        print(
            f"  candle_block.{name:9s} storage {storage}: {raw / 1e6:6.1f} MB as {stored / 1e6:6.1f} MB stored, "
            f"{compressed} block(s) compressed"
        )


def requests(
    args: argparse.Namespace,
    end: int,
    reader,
    symbols: tuple[str, ...] | None,
    label: str,
    start: int = START_MS,
) -> None:
    """Each case as a whole request over the stored candles (of ``symbols``, or the top ``--coins``),
    then its read and computation alone."""
    top_n = None if symbols is not None else args.coins
    for condition, timeframe, frequency, cooldown in cases(args):
        spec = dryrun.DryRunSpec(condition, timeframe, frequency, cooldown, start, end, symbols, top_n)
        compiled = compile_condition(condition)
        read_ms, read_cpu, got = median_ms(functools.partial(reader.read, spec), args.repeat)
        run_ms, run_cpu, _ = median_ms(functools.partial(dryrun.run, spec, compiled, got), args.repeat)
        ms, cpu, result = median_ms(functools.partial(dryrun.dry_run, spec, reader.read), args.repeat)
        print(
            f"{label} {ms:8.0f} ms wall {cpu:8.0f} ms cpu (read {read_ms:.0f}/{read_cpu:.0f}, compute "
            f"{run_ms:.0f}/{run_cpu:.0f})  {condition!r} {timeframe} {frequency}: {result.candles:,} candles, "
            f"{len(result.firings)} firings"
        )


def backfilled(args: argparse.Namespace) -> None:
    """Whole requests over a database as uBot leaves it (``run.py --backfill N``, or a running
    engine's): its quotes, its candle rows and blocks; the last ``--days`` of its 1m history, the
    top ``--coins`` coins. Only read."""
    from ubot.models.db import open_database
    from ubot.models.dryrun import DryRunReader

    db = open_database(args.backfilled)
    try:
        reader = DryRunReader(db)
        stored = reader.stored()
        if stored is None:
            raise SystemExit(f"{args.backfilled}: no stored 1m candles")
        end = stored[1] + 1
        start = max(stored[0], end - args.days * 86_400_000)
        print(f"{args.backfilled}: {(end - start) / 86_400_000:.1f} days of the top {args.coins} coins")
        requests(args, end, reader, None, "stored", start)
    finally:
        db.close()


def read(args: argparse.Namespace, end: int) -> None:
    from ubot.models.db import open_database
    from ubot.models.dryrun import DryRunReader
    from ubot.models.schema import ensure_schema

    with tempfile.TemporaryDirectory() as directory:
        db = open_database(f"sqlite:///{directory}/bench.db")
        ensure_schema(db)
        store(db, args.days, args.coins, {"1m"}, time_major=False)
        stored = history(args.days, args.coins, "1m")
        symbols = tuple(f"C{i}" for i in stored.ids.tolist()[:50])
        spec = dryrun.DryRunSpec("price > 1", "1m", "once_per_crossing", 0, START_MS, end, symbols=symbols)
        reader = DryRunReader(db)
        ms, cpu, got = median_ms(functools.partial(reader.read, spec), args.repeat)
        print(
            f"read     {ms:8.0f} ms wall {cpu:8.0f} ms cpu  {len(got.minutes):,} 1m candles of {len(symbols)} coins from SQLite"
        )
        db.close()


if __name__ == "__main__":
    main()
