"""Closed candles packed in blocks (``models/candle_blocks.py``), on SQLite or PostgreSQL: whatever
mix of blocks and rows a range is read from, the candles are those of the rows alone, across block
boundaries, gaps in the data, blocks packed again after a backfill merged into them, and a restart.
The history is made by the pipeline's own code (``simulated_history``: the Store and the OHLC
stage), the blocks by the packer."""

from __future__ import annotations

import numpy as np
import pytest
from peewee import Database

from ubot.backfill import backfill, simulated_history
from ubot.clocks import FakeClock
from ubot.market.candles import TIMEFRAMES
from ubot.market.recorder import Recorder
from ubot.market.simulated import SimulatedSource
from ubot.models.candle_blocks import (
    COLUMNS,
    BlockPacker,
    BlockReader,
    block_length,
    block_start,
    start_packing,
)
from ubot.models.db import open_database
from ubot.models.dryrun import DryRunReader
from ubot.models.history import History
from ubot.models.tables import Candle, CandleBlock, CandleBlockStale
from ubot.scan import dryrun

DAY = 86_400_000
MINUTE = 60_000
NOW = 1_767_225_600_000 + 9 * DAY + 13 * 3_600_000 + 7 * MINUTE  # 2026-01-10T13:07Z
FIELDS = tuple(COLUMNS)


def make_history(db: Database) -> None:
    """6 coins, a tick every 15 minutes: 1.5 days up to 3 days before ``NOW``, then (a gap of a
    day) 2 days up to ``NOW``; coin 3408 is delisted from the second run on (its last block never
    seals)."""
    simulated_history(db, SimulatedSource(limit=6, seed=5), 1.5, 900, NOW - 3 * DAY)
    simulated_history(db, SimulatedSource(limit=5, seed=6), 2, 900, NOW)


def rows(
    timeframe: str, coins: list[int], after: int, before: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """What the candle rows alone hold: the reference."""
    query = (
        Candle.select(Candle.coin, *(getattr(Candle, name) for name in FIELDS))
        .where(
            Candle.coin.in_(coins)
            & (Candle.timeframe == timeframe)
            & (Candle.open_time >= after)
            & (Candle.open_time < before)
        )
        .order_by(Candle.coin, Candle.open_time)
        .tuples()
    )
    found = list(query)
    ids = np.array([r[0] for r in found], dtype=np.int64)
    return ids, {
        name: np.array([r[i + 1] for r in found], dtype=COLUMNS[name][1:]) for i, name in enumerate(FIELDS)
    }


def assert_reads_as_rows(db: Database, ranges: list[tuple[int, int]]) -> None:
    reader = BlockReader(db)
    coins = [1, 825, 1027, 1839, 3408, 5426, 99]  # 99: no such coin
    for timeframe in TIMEFRAMES:
        for after, before in ranges:
            got_ids, got = reader.columns(timeframe, coins, after, before, FIELDS)
            want_ids, want = rows(timeframe, coins, after, before)
            np.testing.assert_array_equal(got_ids, want_ids, err_msg=f"{timeframe} {after} {before}")
            for name in FIELDS:
                assert got[name].dtype == want[name].dtype
                np.testing.assert_array_equal(got[name], want[name], err_msg=f"{timeframe} {name}")


def ranges() -> list[tuple[int, int]]:
    day0 = NOW - NOW % DAY
    return [
        (0, NOW + DAY),  # everything
        (day0 - 3 * DAY, day0),  # exactly on 1m block boundaries
        (day0 - 4 * DAY + 17 * MINUTE, day0 - DAY + 3 * MINUTE),  # partial blocks at both ends, the gap
        (day0 - 2 * DAY, day0 - 2 * DAY + DAY // 2),  # inside the gap
        (day0 - DAY + 1, day0 - 1),  # less than a block
    ]


def blocks() -> set[tuple[int, str, int]]:
    return set(CandleBlock.select(CandleBlock.coin, CandleBlock.timeframe, CandleBlock.start).tuples())


def test_sealed_blocks_are_packed_and_read_as_the_rows_are(db) -> None:
    make_history(db)
    assert_reads_as_rows(db, ranges())  # nothing packed yet: rows only
    assert BlockPacker(db).pack_all() > 0
    packed = blocks()
    day0 = NOW - NOW % DAY
    # Coin 1's 1m days before today's are packed, today's (its newest candle's) is not; the days of
    # the gap have no candle, so no block.
    ones = sorted(start for coin, tf, start in packed if coin == 1 and tf == "1m")
    assert ones == [day0 - 4 * DAY, day0 - 3 * DAY, day0 - 2 * DAY, day0 - DAY]
    # Coin 3408 was delisted: its last candle is in a block never sealed.
    delisted = sorted(start for coin, tf, start in packed if coin == 3408 and tf == "1m")
    assert delisted == [day0 - 4 * DAY]
    # Every block holds exactly its candle rows.
    for coin, timeframe, start in packed:
        block = CandleBlock.get(
            (CandleBlock.coin == coin) & (CandleBlock.timeframe == timeframe) & (CandleBlock.start == start)
        )
        _, want = rows(timeframe, [coin], start, start + block_length(timeframe))
        assert block.candles == len(want["close"]) > 0
        np.testing.assert_array_equal(np.frombuffer(block.close, "<f8"), want["close"])
    assert_reads_as_rows(db, ranges())
    assert BlockPacker(db).pack_all() == 0  # nothing more is sealed


def test_the_dry_run_reads_the_same_history_from_blocks_as_from_rows(db) -> None:
    make_history(db)
    day0 = NOW - NOW % DAY
    spec = dryrun.DryRunSpec(
        "rsi(14) < 45", "15m", "once_per_bar", 0, day0 - 3 * DAY + 7_200_000, NOW, top_n=6
    )
    before = DryRunReader(db).read(spec)
    BlockPacker(db).pack_all()
    after = DryRunReader(db).read(spec)
    for part in ("minutes", "warmup"):
        a, b = getattr(before, part), getattr(after, part)
        assert len(a) > 0
        for name in ("coin_ids", "open_time", "close", "last_ts"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=f"{part} {name}")
    assert dryrun.dry_run(spec, lambda _: before) == dryrun.dry_run(spec, lambda _: after)


def test_a_backfill_into_packed_days_has_them_packed_again(db, tmp_path) -> None:
    make_history(db)
    packer = BlockPacker(db)
    packer.pack_all()
    day0 = NOW - NOW % DAY
    # Recordings between the stored ticks, 4 days ago: new 1m and 5m candles in a packed day, merged
    # into its 15m, 1h, 4h and 1d candles.
    source = SimulatedSource(limit=6, seed=9)
    source.recorder = Recorder(tmp_path)
    for k in range(6):
        source.fetch(day0 - 4 * DAY + 3 * 3_600_000 + 150_000 + k * 600_000)
    merged_1d = rows("1d", [1], day0 - 4 * DAY, day0 - 3 * DAY)[1]["count"].tolist()
    backfill(db, str(tmp_path), "USD")
    assert rows("1d", [1], day0 - 4 * DAY, day0 - 3 * DAY)[1]["count"].tolist() != merged_1d
    stale = set(
        CandleBlockStale.select(
            CandleBlockStale.coin, CandleBlockStale.timeframe, CandleBlockStale.start
        ).tuples()
    )
    assert (1, "1m", day0 - 4 * DAY) in stale and (1, "1h", block_start(day0 - 4 * DAY, "1h")) in stale
    assert not stale & blocks()  # deleted with the backfill: the rows are read meanwhile
    assert_reads_as_rows(db, ranges())
    assert packer.step() > 0
    assert CandleBlockStale.select().count() == 0
    assert (1, "1m", day0 - 4 * DAY) in blocks()
    assert_reads_as_rows(db, ranges())


def test_packing_goes_on_after_a_restart(database_url, db) -> None:
    simulated_history(db, SimulatedSource(limit=4, seed=2), 2, 900, NOW - 2 * DAY)
    first = BlockPacker(db)
    first.pack_all()
    packed = blocks()
    db.close()
    again = open_database(database_url)  # a new process: the blocks are in the database
    assert blocks() == packed
    assert_reads_as_rows(again, ranges())
    simulated_history(again, SimulatedSource(limit=4, seed=2), 2, 900, NOW)
    packer = BlockPacker(again)
    while packer.step():
        pass
    assert blocks() > packed
    assert_reads_as_rows(again, ranges())


@pytest.mark.parametrize("timeframe", list(TIMEFRAMES))
def test_a_block_is_whole_days_of_at_most_1440_candles(timeframe) -> None:
    length = block_length(timeframe)
    assert length % DAY == 0 and length // TIMEFRAMES[timeframe] <= 1440


def test_the_engine_packs_on_a_beat_of_its_own(db) -> None:
    simulated_history(db, SimulatedSource(limit=3, seed=4), 2, 900, NOW)
    clock = FakeClock(1_000.0)
    beat = start_packing(db, clock, period_s=2.0)
    try:
        clock.set(clock.wait_for_sleeper())
        clock.wait_for_sleeper()  # asleep again: the step is done
        assert (1, "1m", NOW - NOW % DAY - DAY) in blocks()
    finally:
        beat.close(join_s=10.0)
    assert not beat.thread.is_alive()


def chart_rows(coin: int, timeframe: str, start: int | None, end: int | None, limit: int) -> list[tuple]:
    """The chart's candles as the rows alone hold them (the latest ``limit`` in [start, end]): the reference."""
    where = (Candle.coin == coin) & (Candle.timeframe == timeframe)
    if start is not None:
        where &= Candle.open_time >= start
    if end is not None:
        where &= Candle.open_time <= end
    query = (
        Candle.select(Candle.open_time, Candle.open, Candle.high, Candle.low, Candle.close)
        .where(where)
        .order_by(Candle.open_time.desc())
        .limit(limit)
        .tuples()
    )
    return list(reversed(list(query)))


def test_the_chart_reads_the_same_candles_from_blocks_as_from_rows(db) -> None:
    """``GET /v1/coins/{id}/candles`` reads through the BlockReader too (``models/history.py``):
    the same candles before and after packing, as the rows alone hold them, across the gap (a
    window of ``limit`` candles widened), a delisted coin, bounds on either side, a coin without
    any."""
    make_history(db)
    day0 = NOW - NOW % DAY
    cases = [
        (None, None, 5000),
        (None, None, 7),
        (None, day0 - DAY + 5 * MINUTE, 300),  # the newest reach back over the gap
        (day0 - 4 * DAY + 17 * MINUTE, day0 - 2 * DAY, 2000),
        (day0 - 2 * DAY, day0 - 2 * DAY + DAY // 2, 10),  # inside the gap: none
        (NOW - 3 * 3_600_000, None, 1),
    ]
    history = History(db)
    for packed in (False, True):
        if packed:
            assert BlockPacker(db).pack_all() > 0
        for coin in (1, 3408, 99):
            for timeframe in TIMEFRAMES:
                for start, end, limit in cases:
                    got = history.candles(coin, timeframe, start, end, limit)
                    expected = chart_rows(coin, timeframe, start, end, limit)
                    assert got == expected, (packed, coin, timeframe, start, end, limit)
                    assert all(type(c[0]) is int for c in got)
