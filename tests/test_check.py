"""``python run.py check`` as a user runs it: a subprocess, judged by exit code and output.

It prints what would run on stdout, one ``ubot: ...`` line per problem on stderr, exits 0 or 2, and
leaves nothing behind (no database file, no schema change).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakecmc import KEY, FakeCmc
from tests.replayfiles import write_replay
from tests.support.ports import busy_port, free_port, refused_port
from tests.support.processes import EXIT_TIMEOUT_S, command, environment
from ubot.models.db import open_database
from ubot.models.schema import SCHEMA_VERSION, ensure_schema


def check(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command("check", *args),
        cwd=tmp_path,
        env=environment(tmp_path / "home", env),
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
    )


def facts(result: subprocess.CompletedProcess) -> dict[str, str]:
    """``{label: text}`` of the indented ``label: text`` lines of stdout."""
    pairs = [line.split(":", 1) for line in result.stdout.splitlines() if line.startswith("  ")]
    return {label.strip(): text.strip() for label, text in pairs}


def problems(result: subprocess.CompletedProcess) -> list[str]:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert all(line.startswith("ubot: ") for line in lines), lines
    assert result.stdout.splitlines()[-1] == f"check: {len(lines)} problem(s)"
    return [line.removeprefix("ubot: ") for line in lines]


def assert_ok(result: subprocess.CompletedProcess) -> dict[str, str]:
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[-1] == "check: ok"
    return facts(result)


def database(tmp_path: Path, version: int | None = SCHEMA_VERSION) -> str:
    """A SQLite URL of a database at the current schema, its stored version then set to ``version``."""
    path = tmp_path / "ubot.db"
    db = open_database(f"sqlite:///{path}")
    ensure_schema(db)
    db.close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    return f"sqlite:///{path}"


def test_all_well_prints_what_would_run_and_leaves_nothing_behind(tmp_path) -> None:
    port = free_port()
    shown = assert_ok(check(tmp_path, "--bind", f"127.0.0.1:{port}", "--limit", "250", "--interval", "30"))
    assert shown["source"] == "simulated market (seed 42): prices are not real"
    assert shown["interval"] == "30 s"
    assert shown["coins"] == "top 250 in USD"
    assert (
        shown["database"]
        == f"sqlite:///ubot.db (a new file: schema version {SCHEMA_VERSION} would be created)"
    )
    assert shown["bind"] == f"http://127.0.0.1:{port} (8 threads, 2000 streams)"
    assert shown["role"] == "all (pipeline, gateway in this process, in-process bus)"
    assert shown["alerts"] == "10 scan workers; channels: webhook"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no ubot.db, no -wal, no -shm


def test_without_the_gateway(tmp_path) -> None:
    shown = assert_ok(check(tmp_path, "--no-http"))
    assert shown["bind"] == "none (--no-http)"
    assert shown["role"] == "all (pipeline in this process, in-process bus)"


def test_a_current_database_is_said_so_and_left_unchanged(tmp_path) -> None:
    url = database(tmp_path)
    before = (tmp_path / "ubot.db").read_bytes()
    shown = assert_ok(check(tmp_path, "--db", url, "--no-http"))
    assert shown["database"] == f"{url} (schema version {SCHEMA_VERSION}, current)"
    assert (tmp_path / "ubot.db").read_bytes() == before


def test_an_older_database_says_which_migrations_would_run(tmp_path) -> None:
    url = database(tmp_path, version=1)
    shown = assert_ok(check(tmp_path, "--db", url, "--no-http"))
    later = ", ".join(str(v) for v in range(2, SCHEMA_VERSION + 1))
    assert shown["database"] == f"{url} (schema version 1: migrations to {later} would run)"
    with sqlite3.connect(tmp_path / "ubot.db") as raw:  # not run
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)


def test_a_newer_database_is_a_problem(tmp_path) -> None:
    url = database(tmp_path, version=SCHEMA_VERSION + 1)
    assert problems(check(tmp_path, "--db", url, "--no-http")) == [
        f"database {url}: database schema version {SCHEMA_VERSION + 1} is newer than this uBot "
        f"understands ({SCHEMA_VERSION}); upgrade uBot"
    ]


def test_a_damaged_schema_names_each_missing_table_and_column(tmp_path) -> None:
    url = database(tmp_path)
    with sqlite3.connect(tmp_path / "ubot.db") as raw:
        raw.execute("DROP TABLE candle")
        raw.execute("ALTER TABLE strategy DROP COLUMN last_error")
    assert problems(check(tmp_path, "--db", url, "--no-http")) == [
        f"database {url}: database schema version {SCHEMA_VERSION} lacks table candle",
        f"database {url}: database table strategy lacks column last_error",
    ]


def test_a_file_that_is_not_a_database(tmp_path) -> None:
    (tmp_path / "notes.db").write_text("these are notes, not a database\n" * 100)
    (line,) = problems(check(tmp_path, "--db", "sqlite:///notes.db", "--no-http"))
    assert line == "cannot use database sqlite:///notes.db: file is not a database"


def test_every_problem_gets_its_own_line(tmp_path) -> None:
    with busy_port() as port:
        result = check(
            tmp_path,
            "--bind",
            f"127.0.0.1:{port}",
            "--source",
            "replay",
            "--replay-dir",
            str(tmp_path / "nowhere"),
            "--db",
            "sqlite:////nonexistent-ubot-dir/ubot.db",
        )
    lines = problems(result)
    assert lines == [
        f"replay directory {tmp_path / 'nowhere'} does not exist or is not a directory",
        "directory /nonexistent-ubot-dir of database /nonexistent-ubot-dir/ubot.db does not exist",
        f"cannot listen on 127.0.0.1:{port}: the address is already in use (another uBot or program "
        "is listening); set --bind or [http] bind",
    ]
    assert facts(result)["source"] == f"replay of {tmp_path / 'nowhere'}"  # what would run, still


def test_a_replay_directory_is_counted(tmp_path) -> None:
    write_replay(tmp_path / "rec")
    count = len(list((tmp_path / "rec").iterdir()))
    shown = assert_ok(
        check(tmp_path, "--source", "replay", "--replay-dir", "rec", "--interval", "0", "--no-http")
    )
    assert shown["source"] == f"replay of rec ({count} files)"
    assert shown["interval"] == "0 (back-to-back)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_replay_file(tmp_path) -> None:
    write_replay(tmp_path / "rec")
    hidden = sorted((tmp_path / "rec").iterdir())[0]
    hidden.chmod(0)
    lines = problems(check(tmp_path, "--source", "replay", "--replay-dir", "rec", "--no-http"))
    assert lines == [f"replay file {os.path.join('rec', hidden.name)} is not readable by this user"]


def test_a_settings_error_is_one_line(tmp_path) -> None:
    result = check(tmp_path, UBOT_MARKET_INTERVALL="5")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "ubot: environment UBOT_MARKET_INTERVALL: unknown setting; did you mean UBOT_MARKET_INTERVAL?\n"
    )


# -- CoinMarketCap (the local fake) ---------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeCmc]:
    server = FakeCmc().start()
    yield server
    server.stop()


def test_cmc_key_accepted_with_the_plan(tmp_path, fake) -> None:
    result = check(
        tmp_path, "--no-http", UBOT_COINMARKETCAP_API_KEY=KEY, UBOT_COINMARKETCAP_BASE_URL=fake.base_url
    )
    shown = assert_ok(result)
    assert shown["source"] == f"CoinMarketCap at {fake.base_url}"
    assert (
        shown["plan"]
        == f"key accepted: {fake.plan_monthly:,} credits a month, {fake.month_used:,} used this month"
    )
    assert (
        "it would run out" in shown["credits"]
        and "fit_to_plan would stretch the interval" in shown["credits"]
    )
    assert [call.path for call in fake.calls()] == ["/v1/key/info"]  # nothing that costs a credit
    assert KEY not in result.stdout


def test_cmc_key_refused_is_a_problem(tmp_path, fake) -> None:
    result = check(
        tmp_path,
        "--no-http",
        UBOT_COINMARKETCAP_API_KEY="0000-not-the-key",
        UBOT_COINMARKETCAP_BASE_URL=fake.base_url,
    )
    (line,) = problems(result)
    assert "API key is invalid" in line and "UBOT_COINMARKETCAP_API_KEY" in line


def test_cmc_unreachable_is_said_but_not_a_problem(tmp_path) -> None:
    with refused_port() as port:
        url = f"http://127.0.0.1:{port}"
        result = check(tmp_path, "--no-http", UBOT_COINMARKETCAP_API_KEY=KEY, UBOT_COINMARKETCAP_BASE_URL=url)
    shown = assert_ok(result)
    assert shown["plan"].startswith("unknown (")
    assert shown["plan"].endswith("; [coinmarketcap] monthly_credits = 10000")


POSTGRES_URL = os.environ.get("UBOT_TEST_POSTGRES_URL")


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="UBOT_TEST_POSTGRES_URL is not set")
def test_a_postgresql_database(tmp_path) -> None:
    from ubot.models.db import redact

    shown = assert_ok(check(tmp_path, "--db", POSTGRES_URL, "--no-http"))  # type: ignore[arg-type]
    assert shown["database"].startswith(f"{redact(POSTGRES_URL)} (")  # type: ignore[arg-type]
    assert "schema version" in shown["database"]
