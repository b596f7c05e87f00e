#!/usr/bin/env python3
"""Pipeline benchmark: per-stage tick milliseconds at 5,000 simulated coins, against the floor.

    python bench/pipeline.py [--coins 5000] [--ticks 40] [--db sqlite:///...|postgresql://...]

Part 1 runs each stage's own code (the same calls the actors make) tick after tick, simulated time
advancing 60 s per tick so candles roll over as in production, and reports p50/p99 per stage.
In the same run it times the floor: raw ``sqlite3.executemany`` of the very same quote rows into
an identical table (same columns, keys and indexes, same pragmas) in one transaction.
Part 2 runs the real actor pipeline (interval 0: back-to-back ticks) and reports ticks per second.
Targets (issue 2): tick p50 <= 150 ms on SQLite; store <= 2x the floor.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from ubot.market.candles import CandleBook  # noqa: E402
from ubot.market.simulated import SimulatedSource  # noqa: E402
from ubot.market.snapshot import parse_listings  # noqa: E402
from ubot.market.view import SnapshotView  # noqa: E402
from ubot.models.candle_store import CandleStore  # noqa: E402
from ubot.models.db import SQLITE_PRAGMAS, is_sqlite, open_database  # noqa: E402
from ubot.models.schema import ensure_schema  # noqa: E402
from ubot.models.store import _QUOTE_FIELDS, SnapshotWriter  # noqa: E402
from ubot.models.tables import ALL_TABLES, Quote  # noqa: E402
from ubot.system import start_system, stop_system  # noqa: E402

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def stats(values: list[float]) -> str:
    a = np.array(values)
    return f"p50 {np.percentile(a, 50):7.1f}  p99 {np.percentile(a, 99):7.1f}"


def floor_times(rows_per_tick: list[list[tuple]], directory: str) -> list[float]:
    """Raw sqlite3.executemany of the same rows into an identical quote table."""
    path = os.path.join(directory, "floor.db")
    setup = open_database(f"sqlite:///{path}")
    setup.create_tables(ALL_TABLES)
    setup.close()
    con = sqlite3.connect(path, isolation_level=None)
    for name, value in SQLITE_PRAGMAS.items():
        con.execute(f"PRAGMA {name} = {value}")
    # Parents for the foreign keys, so the floor pays the same constraint checks.
    snapshot_ids = sorted({rows[0][0] for rows in rows_per_tick})
    coin_ids = sorted({row[1] for rows in rows_per_tick for row in rows})
    con.execute("BEGIN")
    con.executemany("INSERT INTO coin VALUES (?, '', '', '', 0)", [(c,) for c in coin_ids])
    con.executemany("INSERT INTO snapshot VALUES (?, ?, 's', 'USD', 0)", [(s, s) for s in snapshot_ids])
    con.execute("COMMIT")
    columns = ", ".join(f'"{f.column_name}"' for f in _QUOTE_FIELDS)
    sql = f'INSERT INTO "{Quote._meta.table_name}" ({columns}) VALUES ({", ".join("?" * len(_QUOTE_FIELDS))})'
    times = []
    for rows in rows_per_tick:
        started = time.perf_counter()
        con.execute("BEGIN")
        con.executemany(sql, rows)
        con.execute("COMMIT")
        times.append((time.perf_counter() - started) * 1000)
    con.close()
    return times


def stages(url: str, coins: int, ticks: int) -> tuple[dict[str, list[float]], list[list[tuple]]]:
    db = open_database(url)
    if not is_sqlite(db):
        db.drop_tables(ALL_TABLES, cascade=True, safe=True)
    ensure_schema(db)
    source = SimulatedSource(limit=coins, seed=7)
    writer = SnapshotWriter(db)
    candles = CandleStore(db)
    book = CandleBook()
    timings: dict[str, list[float]] = {"fetch": [], "store": [], "ohlc": [], "container": [], "tick": []}
    checkpoints = []
    quote_rows = []
    for n in range(ticks):
        t0 = time.perf_counter()
        raw = source.fetch(START_MS + n * 60_000)
        snap = parse_listings(raw.listings, "USD", raw.global_metrics)
        t1 = time.perf_counter()
        snapshot_id = writer.write(snap, "simulated")
        t2 = time.perf_counter()
        writer.checkpoint()  # in the actor pipeline this overlaps the OHLC stage
        checkpoints.append((time.perf_counter() - t2) * 1000)
        t2b = time.perf_counter()
        update = book.apply(snap.ids, snap.quote_ts_ms, snap.column("price"))
        candles.save(book, update, snapshot_id)
        open_candles = {tf: book.open_candles(tf) for tf in book.timeframes}
        t3 = time.perf_counter()
        SnapshotView.build(snap)
        t4 = time.perf_counter()
        del open_candles
        for name, a, b in (("fetch", t0, t1), ("store", t1, t2), ("ohlc", t2b, t3), ("container", t3, t4)):
            timings[name].append((b - a) * 1000)
        timings["tick"].append(sum(timings[name][-1] for name in ("fetch", "store", "ohlc", "container")))
        quote_rows.append(SnapshotWriter._quote_rows(snapshot_id, snap))
    db.close()
    timings["checkpoint"] = checkpoints
    return timings, quote_rows


def actor_run(url: str, coins: int, ticks: int) -> float:
    db = open_database(url)
    if not is_sqlite(db):
        db.drop_tables(ALL_TABLES, cascade=True, safe=True)
    ensure_schema(db)
    finished = threading.Event()
    started = time.perf_counter()
    actors = start_system(
        db,
        SimulatedSource(limit=coins, seed=7),
        interval_s=0,
        max_ticks=ticks,
        on_finished=lambda why: finished.set(),
    )
    finished.wait()
    elapsed = time.perf_counter() - started
    stop_system(actors)
    db.close()
    return elapsed / ticks * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=5000)
    parser.add_argument("--ticks", type=int, default=40)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = args.db or f"sqlite:///{directory}/bench.db"
        timings, rows = stages(url, args.coins, args.ticks)
        floor = floor_times(rows, directory)
        print(f"pipeline benchmark: {args.coins} simulated coins, {args.ticks} ticks, {url.split(':')[0]}")
        print("  per-stage ms (stage code, same calls as the actors):")
        for name, values in timings.items():
            note = "   (WAL copy, off the tick's path: the Store does it after handing on)"
            print(f"    {name:10s} {stats(values)}{note if name == 'checkpoint' else ''}")
        print(f"    {'floor':10s} {stats(floor)}   (raw sqlite3.executemany of the same quote rows)")
        ratio = np.percentile(timings["store"], 50) / np.percentile(floor, 50)
        tick_p50 = np.percentile(timings["tick"], 50)
        print(f"  store / floor (p50): {ratio:.2f}x   target <= 2x: {'MET' if ratio <= 2 else 'NOT MET'}")
        print(f"  tick p50: {tick_p50:.1f} ms   target <= 150 ms: {'MET' if tick_p50 <= 150 else 'NOT MET'}")
        per_tick = actor_run(url if args.db else f"sqlite:///{directory}/actors.db", args.coins, args.ticks)
        print(
            f"  real actor pipeline, back-to-back: {per_tick:.1f} ms per tick ({1000 / per_tick:.1f} ticks/s)"
        )


if __name__ == "__main__":
    main()
