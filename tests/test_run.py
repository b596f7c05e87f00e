"""``run.py`` as a user runs it: a subprocess in an empty directory, judged by exit code and output."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.replayfiles import MALFORMED, NULL_PRICE_COIN, write_replay
from tests.support.ports import busy_port, free_port
from tests.support.processes import EXIT_TIMEOUT_S, command, environment, launch
from tests.support.waits import wait_until
from tests.test_gateway_workers import workers_of
from ubot.models.tables import Coin, GlobalMetric, Quote, SnapshotRecord

FLAGS = [
    "--config",
    "--source",
    "--replay-dir",
    "--interval",
    "--limit",
    "--seed",
    "--db",
    "--bind",
    "--ticks",
    "--no-http",
    "--deliver",
    "--backfill",
    "--log-level",
]


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None, config: bool = True):
    return subprocess.run(
        command(*args, config=config),
        cwd=tmp_path,
        env=environment(tmp_path / "home", env),
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
    )


def assert_refused(result, *words: str) -> str:
    """Exit 2 with exactly one line on stderr, no traceback, naming ``words``."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ubot: ")
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


def tick_lines(log: str) -> list[str]:
    return re.findall(r"ubot\.actors\.monitor: (tick \d+ coins=\d+ .*)", log)


def test_help_lists_every_flag(tmp_path) -> None:
    result = run(tmp_path, "--help", config=False)
    assert result.returncode == 0
    for flag in [*FLAGS, "--version", "{check}"]:
        assert flag in result.stdout, flag
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--interval", "abc"], {}, ["--interval", "'abc'", "[market] interval", "a number of seconds >= 0"]),
        (["--interval", "-1"], {}, ["--interval", "a number of seconds >= 0"]),
        (["--limit", "0"], {}, ["--limit", "'0'", "[market] limit", "1..5000"]),
        (["--ticks", "many"], {}, ["--ticks", "[market] ticks", "an integer >= 0"]),
        (["--bind", "localhost"], {}, ["--bind", "[http] bind", "HOST:PORT"]),
        (["--db", "mysql://x/y"], {}, ["--db", "[database] url", "sqlite:///path or postgresql://"]),
        (["--log-level", "LOUD"], {}, ["[log] level", "DEBUG, INFO, WARNING, ERROR"]),
        (
            [],
            {"UBOT_MARKET_SOURCE": "bogus"},
            ["UBOT_MARKET_SOURCE", "'bogus'", "auto, simulated, replay, cmc"],
        ),
        ([], {"UBOT_HTTP_THREADS": "0"}, ["UBOT_HTTP_THREADS", "[http] threads", "1..256"]),
        ([], {"UBOT_MARKET_INTERVALL": "5"}, ["UBOT_MARKET_INTERVALL", "did you mean UBOT_MARKET_INTERVAL?"]),
        (["--source", "replay"], {}, ["--replay-dir"]),
        (["--source", "cmc"], {}, ["UBOT_COINMARKETCAP_API_KEY"]),
    ],
)
def test_an_invalid_value_is_one_line_and_exit_2(tmp_path, args, env, words) -> None:
    assert_refused(run(tmp_path, *args, env=env), *words)
    assert not (tmp_path / "ubot.db").exists()


def test_a_flag_wins_over_the_environment(tmp_path) -> None:
    result = run(tmp_path, "--limit", "abc", env={"UBOT_MARKET_LIMIT": "7"})
    assert_refused(result, "--limit", "'abc'")


def test_an_unknown_config_file(tmp_path) -> None:
    assert_refused(
        run(tmp_path, "--config", str(tmp_path / "nope.ini"), config=False), "nope.ini", "does not exist"
    )


def test_an_unknown_option_in_the_config_file(tmp_path) -> None:
    path = tmp_path / "mine.ini"
    path.write_text("[market]\nintervall = 5\n")
    assert_refused(run(tmp_path, "--config", str(path), config=False), "intervall", "interval")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("sqlite:////nonexistent-ubot-dir/sub/ubot.db", "does not exist"),
        ("sqlite:////proc/ubot-test.db", "cannot open database"),
        ("sqlite:///not-a-db.db", "file is not a database"),
    ],
)
def test_an_unusable_database_is_one_line(tmp_path, url, why) -> None:
    (tmp_path / "not-a-db.db").write_text("these are notes, not a database\n" * 100)
    assert_refused(run(tmp_path, "--db", url, "--no-http"), "database", why)


def test_a_port_in_use_is_one_line_and_leaves_nothing_behind(tmp_path) -> None:
    with busy_port() as port:
        result = run(tmp_path, "--bind", f"127.0.0.1:{port}")
    assert_refused(result, f"127.0.0.1:{port}", "already in use", "--bind")
    assert not (tmp_path / "ubot.db").exists()  # refused before the database was created


@pytest.mark.parametrize("kind", ["missing", "empty", "a file", "no json"])
def test_an_unusable_replay_directory_is_one_line(tmp_path, kind) -> None:
    directory = tmp_path / "replay"
    if kind == "empty":
        directory.mkdir()
    elif kind == "a file":
        directory.write_text("{}")
    elif kind == "no json":
        directory.mkdir()
        (directory / "README.txt").write_text("recordings go here")
        (directory / "2024.json.bak").write_text("{}")
    line = assert_refused(run(tmp_path, "--source", "replay", "--replay-dir", str(directory), "--no-http"))
    assert str(directory) in line
    assert not (tmp_path / "ubot.db").exists()


def test_headless_replay_stores_every_good_snapshot_and_reports_the_bad_file(
    tmp_path, db, database_url
) -> None:
    replay = write_replay(tmp_path / "replay")
    result = run(
        tmp_path,
        *("--no-http", "--source", "replay", "--replay-dir", replay.directory, "--interval", "0"),
        *("--db", database_url),
    )
    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert "Traceback" not in log
    stored = [row.timestamp for row in SnapshotRecord.select().order_by(SnapshotRecord.timestamp)]
    assert stored == replay.snapshot_times
    assert Quote.select().count() == replay.good_files * len(replay.prices)
    assert GlobalMetric.select().count() == len(replay.global_times)
    assert Coin.get_or_none(Coin.id == NULL_PRICE_COIN["id"]) is None
    skipped = [line for line in log.splitlines() if "SKIPPED" in line]
    assert len(skipped) == 1 and MALFORMED in skipped[0]
    assert len(tick_lines(log)) == len(replay.files)
    dropped = [line for line in log.splitlines() if f"id {NULL_PRICE_COIN['id']}" in line]
    assert len(dropped) == 1 and "dropped" in dropped[0]
    assert "source exhausted" in log


def test_ticks_3_with_the_simulated_source_exits_after_exactly_3_ticks(tmp_path, db, database_url) -> None:
    simulated = ("--source", "simulated", "--limit", "25")
    result = run(tmp_path, "--ticks", "3", "--interval", "0", "--no-http", *simulated, "--db", database_url)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "SIMULATED" in result.stderr
    ticks = tick_lines(result.stderr)
    assert [line.split()[1] for line in ticks] == ["1", "2", "3"]
    assert all("coins=25 " in line for line in ticks)
    assert SnapshotRecord.select().count() == 3
    assert Quote.select().count() == 75


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_headless_stops_cleanly_on_a_signal_during_a_tick(tmp_path, db, database_url, signum) -> None:
    """The signal arrives while the first tick is between the Store and the Monitor (2,000 coins
    keep the OHLC and Container stages busy for a while): that tick is finished, nothing breaks."""
    ubot = launch(
        command("--no-http", "--interval", "1", "--limit", "2000", "--db", database_url),
        tmp_path / "ubot.log",
        cwd=tmp_path,
        env=environment(tmp_path / "home"),
    )
    try:
        # the first tick is stored, not yet done
        wait_until(lambda: SnapshotRecord.select().count() >= 1, "the first snapshot stored", alive=ubot)
        ubot.proc.send_signal(signum)
        assert ubot.wait_exit() == 0
    finally:
        ubot.close()
    log = ubot.log
    assert f"received {signal.Signals(signum).name}" in log
    assert log.rstrip().endswith("INFO ubot: stopped")
    # Every tick that was logged as done is in the database: nothing in flight was lost.
    assert SnapshotRecord.select().count() == len(tick_lines(log)) >= 1
    assert "Traceback" not in log, log


#: An extension module of ``scipy.signal`` (``lfilter``'s own), as its path shows in ``/proc/PID/maps``.
SCIPY_SIGNAL = "scipy/signal/_sigtools"


def mapped(pid: int, library: str) -> bool:
    """Whether process ``pid`` has ``library`` (a part of a shared object's path) loaded."""
    return library in Path(f"/proc/{pid}/maps").read_text()


def test_the_gateway_worker_imports_the_dry_runs_maths_before_any_dry_run(tmp_path, db, database_url) -> None:
    """``scipy.signal`` (the EMA's ``lfilter``, about a second to import) is left out of the start and
    imported by the gateway's worker as it starts serving (``run.py: warm_up_dry_runs``), so that
    the first dry run does not wait for it: seen from outside, its extension module is loaded in the
    worker while no dry run has been asked for, and not in the master (the start did not pay it)."""
    port = free_port()
    ubot = launch(
        command("--source", "simulated", "--limit", "5", "--bind", f"127.0.0.1:{port}", "--db", database_url),
        tmp_path / "ubot.log",
        cwd=tmp_path,
        env=environment(tmp_path / "home"),
    )
    try:
        (worker,) = wait_until(lambda: workers_of(ubot.proc.pid), "the gateway's worker", alive=ubot)
        wait_until(lambda: mapped(worker, SCIPY_SIGNAL), "scipy.signal imported in the worker", alive=ubot)
        assert not mapped(ubot.proc.pid, SCIPY_SIGNAL)
        ubot.proc.send_signal(signal.SIGTERM)
        assert ubot.wait_exit() == 0
    finally:
        ubot.close()
    assert "Traceback" not in ubot.log, ubot.log
