#!/usr/bin/env python3
"""Pipeline benchmark: per-stage tick milliseconds at 5,000 simulated coins, against each database's floor.

    python bench/pipeline.py [--coins 5000] [--ticks 20] [--db postgresql://...] [--actors]

For SQLite (a temporary file) and, with ``--db``, for PostgreSQL too, in the same run:

* the stages: each stage's own code (the same calls the actors make) tick after tick, simulated
  time advancing 60 s per tick so every coin's 1m candle closes each tick, as in production; the
  OHLC stage keeps the closed candles, written in a batch every ``FLUSH_EVERY_MS`` of market time
  before the tick is handed on, as the actor does (inside ``ohlc`` on the ticks it falls on; line
  ``candles`` shows that write alone; the last line puts the mean tick, every row written, beside
  the floor). The WAL ``checkpoint`` is off the tick's path: the Store does it after handing on;
* the floor: writing the very same quote rows, prepared beforehand, into an identical table (same
  columns, keys, indexes and parent rows) in one transaction per tick, with the database's fastest
  bulk path: ``sqlite3.executemany`` on SQLite, a binary ``COPY`` on PostgreSQL;
* the ratio tick p50 / floor p50. Targets (issue 14): <= 2x on SQLite, <= 4x on PostgreSQL;
* for context, not the issue's floor: the same rows in coin id order (as the Store writes them), and
  the floor plus the tick's closed candles written the same raw way (every row a tick writes: with a
  tick a minute, every coin's 1m candle closes each tick, as many rows again as the quotes).

PostgreSQL runs in a schema of its own (created and dropped here). ``--actors`` also runs the real
actor pipeline back-to-back (interval 0) and reports ticks per second. Also printed: decoding the
same market from CoinMarketCap's JSON bytes (what the CMC and replay sources hand over).
"""

from __future__ import annotations

import argparse
import io
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from urllib.parse import quote

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import msgspec  # noqa: E402
import numpy as np  # noqa: E402

from ubot.market.candles import CandleBook  # noqa: E402
from ubot.market.simulated import SimulatedSource  # noqa: E402
from ubot.market.snapshot import parse_listings  # noqa: E402
from ubot.market.view import SnapshotView  # noqa: E402
from ubot.models.bulk import _kind, _sqlite_rows, binary_copy  # noqa: E402
from ubot.models.candle_store import CANDLE_FIELDS, FLUSH_EVERY_MS, CandleStore  # noqa: E402
from ubot.models.candle_store import _columns as candle_columns  # noqa: E402
from ubot.models.db import SQLITE_PRAGMAS, is_sqlite, open_database  # noqa: E402
from ubot.models.schema import ensure_schema  # noqa: E402
from ubot.models.store import _QUOTE_FIELDS, SnapshotWriter, _by_coin  # noqa: E402
from ubot.models.tables import ALL_TABLES, Candle, Quote  # noqa: E402
from ubot.system import start_system, stop_system  # noqa: E402

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STAGES = ("fetch", "store", "ohlc", "container")
TARGETS = {"sqlite": 2.0, "postgresql": 4.0}


def p50(values: list[float]) -> float:
    return float(np.percentile(values, 50))


def stats(values: list[float]) -> str:
    return f"p50 {p50(values):7.1f}  p99 {np.percentile(values, 99):7.1f}"


def stages(url: str, coins: int, ticks: int, floor: Floor, by_coin: Floor) -> dict[str, list[float]]:
    """Per-stage milliseconds of ``ticks`` ticks, and the floor's, measured tick by tick right after
    the stages (so that both see the same load on a shared machine)."""
    db = open_database(url)
    ensure_schema(db)
    source = SimulatedSource(limit=coins, seed=7)
    writer = SnapshotWriter(db)
    candles = CandleStore(db)
    book = CandleBook()
    timings: dict[str, list[float]] = {
        name: [] for name in (*STAGES, "tick", "checkpoint", "candles", "floor", "by coin", "+ candles")
    }
    for n in range(ticks):
        t0 = time.perf_counter()
        raw = source.fetch(START_MS + n * 60_000)
        snap = (
            raw.snapshot
            if raw.snapshot is not None
            else parse_listings(raw.listings, "USD", raw.global_metrics)
        )
        t1 = time.perf_counter()
        snapshot_id = writer.write(snap, "simulated")
        t2 = time.perf_counter()
        writer.checkpoint()  # in the actor pipeline this overlaps the OHLC stage
        timings["checkpoint"].append((time.perf_counter() - t2) * 1000)
        t2b = time.perf_counter()
        update = book.apply(snap.ids, snap.quote_ts_ms, snap.column("price"))
        t_flush = time.perf_counter()
        if candles.add(update, snapshot_id, snap.timestamp_ms):  # before the hand-on, as the actor
            candles.flush()
        timings["candles"].append((time.perf_counter() - t_flush) * 1000)
        open_candles = {tf: book.open_candles(tf) for tf in book.timeframes}
        t3 = time.perf_counter()
        SnapshotView.build(snap)
        t4 = time.perf_counter()
        del open_candles
        for name, a, b in (("fetch", t0, t1), ("store", t1, t2), ("ohlc", t2b, t3), ("container", t3, t4)):
            timings[name].append((b - a) * 1000)
        timings["tick"].append(sum(timings[name][-1] for name in STAGES))
        columns = SnapshotWriter.quote_columns(snapshot_id, snap)
        timings["floor"].append(floor.write(snapshot_id, columns))
        timings["by coin"].append(by_coin.write(snapshot_id, _by_coin(snap.ids, columns)))
        parts = [closed for closed in update.closed.values() if len(closed)]
        wrote = floor.write_candles(candle_columns(parts)) if parts else 0.0
        timings["+ candles"].append(timings["floor"][-1] + wrote)
    db.close()
    floor.close()
    by_coin.close()
    return timings


class Floor:
    """Writes one tick's quote rows, prepared beforehand, into an identical quote table (same
    columns, keys, indexes, and parent rows for the foreign keys), in one transaction."""

    def write(self, snapshot_id: int, columns: list) -> float:
        raise NotImplementedError

    def write_candles(self, columns: list) -> float:
        """The tick's closed candles (columns ordered like ``CANDLE_FIELDS``), prepared beforehand."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SqliteFloor(Floor):
    """Raw ``sqlite3.executemany``, with uBot's pragmas."""

    def __init__(self, path: str) -> None:
        setup = open_database(f"sqlite:///{path}")
        setup.create_tables(ALL_TABLES)
        setup.close()
        self.con = con = sqlite3.connect(path, isolation_level=None)
        for name, value in SQLITE_PRAGMAS.items():
            con.execute(f"PRAGMA {name} = {value}")
        columns = ", ".join(f'"{f.column_name}"' for f in _QUOTE_FIELDS)
        marks = ", ".join("?" * len(_QUOTE_FIELDS))
        self.sql = f'INSERT INTO "{Quote._meta.table_name}" ({columns}) VALUES ({marks})'
        self.coins: set[int] = set()

    def write(self, snapshot_id: int, columns: list) -> float:
        con = self.con
        new = set(columns[1].tolist()) - self.coins
        con.execute("BEGIN")
        con.executemany("INSERT INTO coin VALUES (?, '', '', '', 0)", [(c,) for c in sorted(new)])
        con.execute("INSERT INTO snapshot VALUES (?, ?, 's', 'USD', 0)", (snapshot_id, snapshot_id))
        con.execute("COMMIT")
        self.coins |= new
        rows = list(_sqlite_rows(columns, len(columns[1])))  # prepared beforehand
        started = time.perf_counter()
        con.execute("BEGIN")
        con.executemany(self.sql, rows)
        con.execute("COMMIT")
        return (time.perf_counter() - started) * 1000

    def write_candles(self, columns: list) -> float:
        rows = list(_sqlite_rows(columns, len(columns[0])))
        marks = ", ".join("?" * len(CANDLE_FIELDS))
        started = time.perf_counter()
        self.con.execute("BEGIN")
        self.con.executemany(f'INSERT INTO "{Candle._meta.table_name}" VALUES ({marks})', rows)
        self.con.execute("COMMIT")
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.con.close()


class PostgresFloor(Floor):
    """A binary ``COPY`` (its buffer built beforehand)."""

    def __init__(self, url: str) -> None:
        self.db = db = open_database(url)
        ensure_schema(db)
        self.con = db.connection()
        names = ", ".join(f'"{f.column_name}"' for f in _QUOTE_FIELDS)
        self.sql = f'COPY "{Quote._meta.table_name}" ({names}) FROM STDIN WITH (FORMAT binary)'
        self.kinds = [_kind(f) for f in _QUOTE_FIELDS]
        self.coins: set[int] = set()

    def write(self, snapshot_id: int, columns: list) -> float:
        con = self.con
        new = set(columns[1].tolist()) - self.coins
        with con.cursor() as cursor:
            cursor.executemany("INSERT INTO coin VALUES (%s, '', '', '', 0)", [(c,) for c in sorted(new)])
            cursor.execute("INSERT INTO snapshot VALUES (%s, %s, 's', 'USD', 0)", (snapshot_id, snapshot_id))
        con.commit()
        self.coins |= new
        body = binary_copy(self.kinds, columns, len(columns[1]))
        started = time.perf_counter()
        with con.cursor() as cursor:
            cursor.copy_expert(self.sql, io.BytesIO(body))
        con.commit()
        return (time.perf_counter() - started) * 1000

    def write_candles(self, columns: list) -> float:
        body = binary_copy([_kind(f) for f in CANDLE_FIELDS], columns, len(columns[0]))
        names = ", ".join(f'"{f.column_name}"' for f in CANDLE_FIELDS)
        started = time.perf_counter()
        with self.con.cursor() as cursor:
            cursor.copy_expert(
                f'COPY "{Candle._meta.table_name}" ({names}) FROM STDIN WITH (FORMAT binary)',
                io.BytesIO(body),
            )
        self.con.commit()
        return (time.perf_counter() - started) * 1000

    def close(self) -> None:
        self.db.close()


def decode_times(coins: int, ticks: int) -> list[float]:
    """Decoding CoinMarketCap's JSON bytes of the same market (the CMC and replay sources' path)."""
    source = SimulatedSource(limit=coins, seed=7)
    times = []
    for n in range(min(ticks, 10)):
        raw = source.documents(START_MS + n * 60_000)
        body, global_body = msgspec.json.encode(raw.listings), msgspec.json.encode(raw.global_metrics)
        started = time.perf_counter()
        parse_listings(body, "USD", global_body)
        times.append((time.perf_counter() - started) * 1000)
    return times


def actor_run(url: str, coins: int, ticks: int) -> float:
    db = open_database(url)
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


class PostgresSchema:
    """A schema of this run's own on the PostgreSQL server (so nothing else is touched), dropped at exit."""

    def __init__(self, url: str, prefix: str = "bench_pipeline") -> None:
        self.url, self.admin, self.prefix = url, open_database(url), prefix
        self.names: list[str] = []

    def fresh(self) -> str:
        name = f"{self.prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.admin.execute_sql(f'CREATE SCHEMA "{name}"')
        self.names.append(name)
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}options={quote(f'-csearch_path={name}')}"

    def close(self) -> None:
        for name in self.names:
            self.admin.execute_sql(f'DROP SCHEMA "{name}" CASCADE')
        self.admin.close()


def report(kind: str, timings: dict[str, list[float]], how: str) -> None:
    print(f"  {kind}: per-stage ms (stage code, same calls as the actors)")
    for name, values in timings.items():
        note = {
            "checkpoint": "   (WAL copy, off the tick's path: the Store does it after handing on)",
            "candles": f"   (the closed candles' batch write, inside ohlc on the ticks it falls on: every {FLUSH_EVERY_MS // 60_000} min; mean {np.mean(values):.1f})",
            "floor": f"   ({how} of the same quote rows, right after each tick)",
            "by coin": "   (the same, the rows in coin id order as the Store writes them: not the issue's floor)",
            "+ candles": "   (the floor plus the same way of writing the tick's closed candles: every row a tick writes)",
        }.get(name, "")
        if name != "checkpoint" or kind == "sqlite":
            print(f"    {name:10s} {stats(values)}{note}")
    ratio = p50(timings["tick"]) / p50(timings["floor"])
    paired = p50([t / f for t, f in zip(timings["tick"], timings["floor"], strict=True)])
    target = TARGETS[kind]
    by_coin = p50(timings["tick"]) / p50(timings["by coin"])
    print(
        f"    tick / floor (p50): {ratio:.2f}x   target <= {target:g}x: {'MET' if ratio <= target else 'NOT MET'}"
        f"   (median of per-tick ratios {paired:.2f}x; store / floor {p50(timings['store']) / p50(timings['floor']):.2f}x;"
        f" tick / the floor in coin order {by_coin:.2f}x;"
        f" tick / every row's floor {p50(timings['tick']) / p50(timings['+ candles']):.2f}x)"
    )
    print(
        f"    tick mean / floor: {float(np.mean(timings['tick'])) / p50(timings['floor']):.2f}x"
        " (every row written: the batched candle write spread over the ticks)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=5000)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--db", help="a PostgreSQL URL: measure it too, beside SQLite")
    parser.add_argument("--actors", action="store_true", help="also run the real actor pipeline")
    args = parser.parse_args()
    print(f"pipeline benchmark: {args.coins} simulated coins, {args.ticks} ticks")
    with tempfile.TemporaryDirectory() as directory:
        floor = SqliteFloor(os.path.join(directory, "floor.db"))
        by_coin = SqliteFloor(os.path.join(directory, "by_coin.db"))
        timings = stages(f"sqlite:///{directory}/bench.db", args.coins, args.ticks, floor, by_coin)
        report("sqlite", timings, "sqlite3.executemany")
        if args.actors:
            per_tick = actor_run(f"sqlite:///{directory}/actors.db", args.coins, args.ticks)
            print(
                f"    actor pipeline, back-to-back: {per_tick:.1f} ms per tick ({1000 / per_tick:.1f} ticks/s)"
            )
    if args.db:
        server = PostgresSchema(args.db)
        try:
            db = open_database(args.db)
            if is_sqlite(db):
                raise SystemExit("--db is for PostgreSQL (SQLite is always measured)")
            db.close()
            floors = PostgresFloor(server.fresh()), PostgresFloor(server.fresh())
            timings = stages(server.fresh(), args.coins, args.ticks, *floors)
            report("postgresql", timings, "binary COPY")
            if args.actors:
                per_tick = actor_run(server.fresh(), args.coins, args.ticks)
                print(
                    f"    actor pipeline, back-to-back: {per_tick:.1f} ms per tick ({1000 / per_tick:.1f} ticks/s)"
                )
        finally:
            server.close()
    print(
        f"  decoding CoinMarketCap's JSON bytes (CMC and replay sources): {stats(decode_times(args.coins, args.ticks))}"
    )


if __name__ == "__main__":
    main()
