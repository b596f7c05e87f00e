"""Replay: recorded responses played in file-name order, bad files skipped with their name."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

from ubot.market.replay import ReplaySource, replay_files, split_recording
from ubot.market.snapshot import parse_listings
from ubot.market.source import FatalSourceError, SourceError, SourceExhausted


def listings(minute: int, price: float = 63_000.0) -> dict:
    stamp = f"2024-10-16T00:{minute:02d}:00.000Z"
    return {
        "status": {
            "timestamp": stamp,
            "error_code": 0,
            "error_message": None,
            "elapsed": 10,
            "credit_count": 1,
        },
        "data": [
            {
                "id": 1,
                "name": "Bitcoin",
                "symbol": "BTC",
                "slug": "bitcoin",
                "cmc_rank": 1,
                "last_updated": stamp,
                "quote": {"USD": {"price": price, "last_updated": stamp}},
            }
        ],
    }


GLOBAL = {
    "status": {"timestamp": "2024-10-16T00:01:00.000Z", "error_code": 0},
    "data": {"active_cryptocurrencies": 9915, "quote": {"USD": {"total_market_cap": 2.2e12}}},
}


def write_json(directory: Path, name: str, doc) -> None:
    (directory / name).write_text(json.dumps(doc), encoding="utf-8")


def write_gz(directory: Path, name: str, doc) -> None:
    (directory / name).write_bytes(gzip.compress(json.dumps(doc).encode()))


def test_files_are_played_in_name_order_whatever_their_format(tmp_path):
    write_json(tmp_path, "20241016T000300.json", listings(3))
    write_gz(tmp_path, "20241016T000100.json.gz", {"listings": listings(1), "global": GLOBAL})
    write_json(tmp_path, "20241016T000200.json", {"listings": listings(2), "global": None})
    (tmp_path / "README.txt").write_text("not a recording")
    (tmp_path / "20241016T000000.json.bak").write_text("{}")

    source = ReplaySource(str(tmp_path))
    assert source.name == "replay"
    first, second, third = (source.fetch(0) for _ in range(3))
    assert [first.origin, second.origin, third.origin] == [
        "20241016T000100.json.gz",
        "20241016T000200.json",
        "20241016T000300.json",
    ]
    assert [r.position for r in (first, second, third)] == [(1, 3), (2, 3), (3, 3)]
    assert first.listings == listings(1)
    assert first.global_metrics == GLOBAL
    assert second.global_metrics is None
    assert third.listings == listings(3) and third.global_metrics is None
    snap = parse_listings(first.listings, "USD", first.global_metrics)
    assert snap.symbols == ("BTC",) and snap.global_metrics is not None
    with pytest.raises(SourceExhausted, match="finished \\(3 files\\)"):
        source.fetch(0)
    with pytest.raises(SourceExhausted):
        source.fetch(0)
    source.close()


def test_timestamps_come_from_the_data_not_the_tick(tmp_path):
    write_json(tmp_path, "a.json", listings(7))
    raw = ReplaySource(str(tmp_path)).fetch(at_ms=123)
    assert raw.listings["status"]["timestamp"] == "2024-10-16T00:07:00.000Z"


def _bad_files(directory: Path) -> dict[str, str]:
    """name -> what the error must say about it."""
    (directory / "b_truncated.json").write_text('{"status": {"timestamp": ')
    (directory / "c_array.json").write_text("[1, 2, 3]")
    (directory / "d_other_object.json").write_text('{"data": []}')
    (directory / "e_not_utf8.json").write_bytes(b'{"status": "\xff\xfe"}')
    (directory / "f_not_gzip.json.gz").write_text(json.dumps(listings(1)))
    compressed = gzip.compress(json.dumps([listings(m) for m in range(30)]).encode())
    corrupt = compressed[:20] + bytes(b ^ 0x5A for b in compressed[20:60]) + compressed[60:]
    (directory / "g_corrupt.json.gz").write_bytes(corrupt)
    (directory / "h_cut.json.gz").write_bytes(compressed[: len(compressed) // 2])
    (directory / "i_empty.json").write_text("")
    (directory / "j_directory.json").mkdir()
    return {
        "b_truncated.json": "not a recorded response",
        "c_array.json": "expected a listings response",
        "d_other_object.json": "expected a listings response",
        "e_not_utf8.json": "not a recorded response",
        "f_not_gzip.json.gz": "cannot read",
        "g_corrupt.json.gz": "corrupt gzip data",
        "h_cut.json.gz": "corrupt gzip data",
        "i_empty.json": "not a recorded response",
        "j_directory.json": "cannot read: Is a directory",
    }


def test_bad_files_raise_source_error_naming_the_file_and_the_replay_goes_on(tmp_path):
    write_json(tmp_path, "a_good.json", listings(1))
    expected = _bad_files(tmp_path)
    write_json(tmp_path, "z_good.json", listings(9))
    source = ReplaySource(str(tmp_path))
    total = len(expected) + 2
    assert source.fetch(0).origin == "a_good.json"
    for index, (name, problem) in enumerate(sorted(expected.items()), start=2):
        with pytest.raises(SourceError) as info:
            source.fetch(0)
        message = str(info.value)
        assert message.startswith(f"replay file {name}: "), message
        assert problem in message
        assert "\n" not in message
        assert source.position == index
    last = source.fetch(0)
    assert last.origin == "z_good.json" and last.position == (total, total)
    with pytest.raises(SourceExhausted):
        source.fetch(0)


def test_file_removed_after_start_is_a_source_error(tmp_path):
    write_json(tmp_path, "a.json", listings(1))
    write_json(tmp_path, "b.json", listings(2))
    source = ReplaySource(str(tmp_path))
    os.remove(tmp_path / "a.json")
    with pytest.raises(SourceError, match=r"^replay file a\.json: cannot read: No such file or directory$"):
        source.fetch(0)
    assert source.fetch(0).origin == "b.json"


def test_missing_directory_is_fatal(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(FatalSourceError, match=f"replay directory {missing} does not exist"):
        ReplaySource(str(missing))


def test_a_file_is_not_a_directory(tmp_path):
    write_json(tmp_path, "a.json", listings(1))
    with pytest.raises(FatalSourceError, match="is not a directory"):
        replay_files(str(tmp_path / "a.json"))


def test_directory_without_recordings_is_fatal(tmp_path):
    with pytest.raises(FatalSourceError, match="has no .json or .json.gz files"):
        ReplaySource(str(tmp_path))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FatalSourceError, match=f"replay directory {tmp_path} has no"):
        replay_files(str(tmp_path))


def test_replay_files_are_full_paths_in_name_order(tmp_path):
    for name in ("10.json", "02.json.gz", "1.json"):
        (tmp_path / name).write_text("{}")
    assert replay_files(str(tmp_path)) == [str(tmp_path / n) for n in ("02.json.gz", "1.json", "10.json")]


def test_split_recording():
    bare = listings(1)
    assert split_recording(bare) == (bare, None)
    assert split_recording({"listings": bare, "global": GLOBAL}) == (bare, GLOBAL)
    assert split_recording({"listings": bare}) == (bare, None)
    for doc in ([], None, "x", {"data": []}):
        with pytest.raises(ValueError, match="expected a listings response"):
            split_recording(doc)
