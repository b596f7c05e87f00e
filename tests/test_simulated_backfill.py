"""``run.py --backfill DAYS`` with the simulated source (``backfill.simulated_history``): history made
through the Store's and the OHLC stage's own code, refused over newer data, dry-runnable at once; and
``--record`` with the simulated source: its recording replays to the same snapshots."""

from __future__ import annotations

import io

import numpy as np
import pytest

from tests.test_run import assert_refused, run
from ubot.backfill import ReplayRefused, simulated_history
from ubot.config import ConfigError, load_settings
from ubot.market.candles import CandleBook
from ubot.market.recorder import Recorder
from ubot.market.replay import ReplaySource
from ubot.market.simulated import SimulatedSource
from ubot.market.snapshot import NUMERIC_FIELDS, parse_listings
from ubot.models.alerts import SCAN_WATERMARK
from ubot.models.candle_blocks import BlockPacker
from ubot.models.candle_store import WATERMARK
from ubot.models.dryrun import DryRunReader
from ubot.models.tables import Candle, CandleBlock, Meta, SnapshotRecord
from ubot.progress import Progress
from ubot.scan import dryrun

NOW = 1_767_225_600_000 + 37 * 60_000 + 12_345  # 2026-01-01T00:37:12.345Z
MINUTE = 60_000


def test_days_of_simulated_history_are_stored_and_folded_into_candles(db) -> None:
    source = SimulatedSource(limit=12, seed=7)
    shown = io.StringIO()
    result = simulated_history(
        db, source, 0.05, 60, NOW, progress=Progress(shown, minimum=1, label="backfill")
    )
    # 0.05 days = 72 minutes of ticks on the minute, up to now's minute (00:37).
    end = NOW - NOW % MINUTE
    stamps = [
        r[0] for r in SnapshotRecord.select(SnapshotRecord.timestamp).order_by(SnapshotRecord.id).tuples()
    ]
    assert stamps == list(range(end - 71 * MINUTE, end + 1, MINUTE))
    assert result.stored == 72 and (result.first_ms, result.last_ms) == (stamps[0], stamps[-1])
    assert "backfill [##############################] 100% 72/72" in shown.getvalue()
    # The candles are the OHLC stage's: every closed one of a CandleBook fed the same snapshots.
    book, expected = CandleBook(), {}
    for at in stamps:
        snap = source.fetch(at).snapshot
        for timeframe, rows in book.apply(snap.ids, snap.quote_ts_ms, snap.column("price")).closed.items():
            for coin, start, *_, close, _first, _last, _count in rows.rows():
                expected[(coin, timeframe, start)] = close
    stored = {
        (c, tf, t): close
        for c, tf, t, close in Candle.select(
            Candle.coin, Candle.timeframe, Candle.open_time, Candle.close
        ).tuples()
    }
    assert stored == expected and result.candles == len(expected)
    assert {tf for _, tf, _ in stored} == {"1m", "5m", "15m", "1h", "4h", "1d"}  # across midnight
    last_id = SnapshotRecord.select(SnapshotRecord.id).order_by(SnapshotRecord.id.desc()).scalar()
    marks = dict(Meta.select(Meta.key, Meta.value).where(Meta.key.in_([WATERMARK, SCAN_WATERMARK])).tuples())
    assert marks == {WATERMARK: str(last_id), SCAN_WATERMARK: str(last_id)}  # nothing left to fold or scan

    # A dry run over it at once.
    btc = dryrun.DryRunSpec("price > 0", "5m", "once_per_bar", 0, stamps[0], end + 1, symbols=("BTC",))
    answer = dryrun.dry_run(btc, DryRunReader(db).read)
    assert answer.coins == 1 and answer.candles == 71  # the last minute's candle is still open
    assert [f.time_ms for f in answer.firings] == [
        t for t in stamps[:-1] if t % (5 * MINUTE) == 0 or t == stamps[0]
    ]

    with pytest.raises(ReplayRefused, match="already holds history up to 2026-01-01T00:37:00.000Z"):
        simulated_history(db, source, 0.05, 60, NOW)


def test_a_recording_of_the_simulated_source_replays_to_the_same_snapshots(tmp_path) -> None:
    source = SimulatedSource(limit=20, seed=3)
    source.recorder = Recorder(tmp_path)
    fetched = [source.fetch(NOW + k * MINUTE).snapshot for k in range(3)]
    replay = ReplaySource(str(tmp_path))
    assert len(replay.files) == 3
    for snap in fetched:
        raw = replay.fetch(0)
        again = parse_listings(raw.listings, "USD", raw.global_metrics)
        assert again.timestamp_ms == snap.timestamp_ms
        assert again.ids.tolist() == snap.ids.tolist() and again.symbols == snap.symbols
        for name in NUMERIC_FIELDS:
            np.testing.assert_array_equal(again.column(name), snap.column(name), err_msg=name)
        assert again.global_metrics.values == pytest.approx(snap.global_metrics.values, nan_ok=True)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (
            {("market", "source"): "replay", ("market", "replay_dir"): "r", ("market", "backfill_days"): "3"},
            "a replay's --backfill takes no DAYS",
        ),
        (
            {("market", "source"): "simulated", ("market", "backfill"): "true"},
            "with the simulated source give the days to make (--backfill 7)",
        ),
        (
            {("market", "source"): "replay", ("market", "replay_dir"): "r", ("market", "record_dir"): "x"},
            "it needs --source cmc or simulated, not replay",
        ),
        ({("market", "source"): "simulated", ("market", "backfill_days"): "-1"}, "--backfill DAYS"),
    ],
)
def test_backfill_and_record_are_refused_where_they_cannot_work(overrides, words) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(None, environ={}, overrides=overrides)
    assert words in str(error.value)


def test_run_py_backfills_then_refuses_newer_data(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/b.db"
    made = run(tmp_path, "--source", "simulated", "--limit", "5", "--backfill", "0.01", "--db", url)
    assert made.returncode == 0, made.stderr
    assert "backfill: 14 simulated snapshot(s) of 5 coins stored" in made.stderr
    assert "min per day of data" in made.stderr
    again = run(tmp_path, "--source", "simulated", "--limit", "5", "--backfill", "0.01", "--db", url)
    assert_refused(again, "already holds history up to", "backfill into a new database")


def test_run_py_backfill_leaves_its_candles_packed_in_blocks(tmp_path, db, database_url) -> None:
    """The first dry run after a backfill reads blocks, not millions of rows: ``--backfill`` packs
    every sealed block before it exits, so a packer run afterwards finds nothing left to pack."""
    made = run(
        tmp_path,
        "--source",
        "simulated",
        "--limit",
        "3",
        "--interval",
        "3600",
        "--backfill",
        "3",
        "--db",
        database_url,
    )
    assert made.returncode == 0, made.stderr
    assert "backfill: 72 simulated snapshot(s) of 3 coins stored" in made.stderr
    blocks = CandleBlock.select().count()
    assert blocks >= 3 * 2  # each coin's 1m blocks of at least the two whole days before the last
    assert f"backfill: {blocks} block(s) of candles packed" in made.stderr
    assert BlockPacker(db).pack_all() == 0


def test_the_simulated_source_records_when_asked(tmp_path) -> None:
    from ubot.market.sources import make_source

    settings = load_settings(
        None,
        environ={},
        overrides={("market", "source"): "simulated", ("market", "record_dir"): str(tmp_path)},
    )
    source = make_source(settings, announce=False)
    source.fetch(NOW)
    assert len(ReplaySource(str(tmp_path)).files) == 1
