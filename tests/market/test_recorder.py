"""Recording: one atomic file per tick, named in time order, that replays to the same snapshots."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest

from tests.fakecmc import KEY, T0_MS, Error, FakeCmc
from ubot.clocks import FakeClock
from ubot.market.cmc_source import CmcSource
from ubot.market.coinmarketcap import GLOBAL_PATH, CmcClient
from ubot.market.recorder import Recorder
from ubot.market.replay import ReplaySource, replay_files
from ubot.market.snapshot import Snapshot, parse_listings
from ubot.market.source import SourceExhausted


def assert_same(a: Snapshot, b: Snapshot) -> None:
    assert (a.timestamp_ms, a.convert, a.symbols, a.names, a.slugs) == (
        b.timestamp_ms,
        b.convert,
        b.symbols,
        b.names,
        b.slugs,
    )
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.quote_ts_ms, b.quote_ts_ms)
    for name, column in a.columns.items():
        assert np.array_equal(column, b.columns[name], equal_nan=True), name
    assert (a.global_metrics is None) == (b.global_metrics is None)
    if a.global_metrics is not None:
        assert a.global_metrics == b.global_metrics
    assert (a.dropped, a.nulled, a.warnings) == (b.dropped, b.nulled, b.warnings)


@pytest.mark.parametrize("compress", [False, True])
def test_a_recorded_run_replays_to_the_same_snapshots(tmp_path, compress):
    clock = FakeClock(T0_MS / 1000)
    live = []
    with FakeCmc() as fake:
        client = CmcClient(KEY, fake.base_url, clock=clock, sleeper=clock.advance)
        source = CmcSource(client, 150, "USD", clock, budget_s=30, recorder=Recorder(tmp_path, compress))
        for minute in range(4):
            fake.now_ms = T0_MS + minute * 60_000
            if minute == 2:  # this tick's global metrics fail: recorded as null
                fake.script(GLOBAL_PATH, Error(500), Error(500), Error(500))
            raw = source.fetch(fake.now_ms)
            live.append(parse_listings(raw.listings, "USD", raw.global_metrics))
            clock.advance(60)
        source.close()

    suffix = ".json.gz" if compress else ".json"
    names = sorted(os.listdir(tmp_path))
    assert names == [f"20261124T08{31 + m}00Z-{m + 1:06d}{suffix}" for m in range(4)]
    assert live[2].global_metrics is None and live[1].global_metrics is not None

    replay = ReplaySource(str(tmp_path))
    for index, expected in enumerate(live):
        raw = replay.fetch(0)
        assert raw.position == (index + 1, 4)
        assert_same(parse_listings(raw.listings, "USD", raw.global_metrics), expected)
    with pytest.raises(SourceExhausted):
        replay.fetch(0)


def test_files_hold_the_replay_format(tmp_path):
    listings = {"status": {"timestamp": "2026-11-24T08:31:00.000Z", "error_code": 0}, "data": []}
    path = Recorder(tmp_path).write(T0_MS, listings, None)
    with open(path, encoding="utf-8") as handle:
        assert json.load(handle) == {"listings": listings, "global": None}


def test_names_sort_in_time_order_and_continue_across_runs(tmp_path):
    doc = {"status": {"error_code": 0}, "data": []}
    first = Recorder(tmp_path)
    times = [T0_MS, T0_MS + 500, T0_MS + 1000, T0_MS + 86_400_000]  # two ticks in one second
    paths = [first.write(t, doc, None) for t in times]
    again = Recorder(tmp_path)  # a restart into the same directory
    paths.append(again.write(T0_MS + 2 * 86_400_000, doc, None))
    names = [os.path.basename(p) for p in paths]
    assert names == sorted(names)
    assert names == [
        "20261124T083100Z-000001.json",
        "20261124T083100Z-000002.json",
        "20261124T083101Z-000003.json",
        "20261125T083100Z-000004.json",
        "20261126T083100Z-000005.json",
    ]
    assert all(re.fullmatch(r"\d{8}T\d{6}Z-\d{6}\.json", n) for n in names)
    assert replay_files(str(tmp_path)) == sorted(paths)


def test_a_crash_while_writing_leaves_no_half_file(tmp_path, monkeypatch):
    recorder = Recorder(tmp_path)
    doc = {"status": {"error_code": 0}, "data": []}
    recorder.write(T0_MS, doc, None)

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="No space left"):
        recorder.write(T0_MS + 60_000, doc, None)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["20261124T083100Z-000001.json"]  # temporary file removed too


def test_a_leftover_temporary_file_is_not_replayed(tmp_path):
    recorder = Recorder(tmp_path)
    recorder.write(T0_MS, {"status": {"error_code": 0}, "data": []}, None)
    (tmp_path / ".20261124T083200Z-000002.json.x1y2.tmp").write_text('{"listings": {"stat')
    assert [os.path.basename(p) for p in replay_files(str(tmp_path))] == ["20261124T083100Z-000001.json"]
