"""The SQLite database file deleted (or replaced) while uBot runs (issue 12). Before, ``/health``
stayed ok, sign-ups succeeded and everything went to the deleted file, lost at the next start. Now
the file's identity is checked once per tick: the pipeline stops, nothing more is written,
``/health`` says degraded and why, and a headless uBot exits 1 with a clear message."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.procs import sqlite_path, start
from tests.support.waits import wait_until
from ubot.models.db import DatabaseLost, open_database, refuse_writes, writing
from ubot.models.tables import SnapshotRecord
from ubot.models.watch import DatabaseWatch, watch_database

SIMULATED = ("--source", "simulated", "--limit", "5", "--interval", "0")


@pytest.fixture
def writes_allowed_again() -> Iterator[None]:
    yield
    refuse_writes(None)  # the refusal is for the whole process: not for the next test


@pytest.fixture
def sqlite_url(database_url) -> str:
    if sqlite_path(database_url) is None:
        pytest.skip("a PostgreSQL database has no file to delete")
    return database_url


def test_postgresql_has_no_file_to_watch() -> None:
    assert watch_database("postgresql://nobody@127.0.0.1/none") is None


def test_a_deleted_file_is_seen_and_writes_stop(tmp_path, writes_allowed_again) -> None:
    db = open_database(f"sqlite:///{tmp_path}/a.db")
    watch = DatabaseWatch(str(tmp_path / "a.db"))
    assert watch.check() is None
    with writing(db):
        pass
    os.remove(tmp_path / "a.db")
    reason = watch.check()
    assert reason == f"database file {tmp_path / 'a.db'} was deleted while uBot was running"
    with pytest.raises(DatabaseLost, match="was deleted"), writing(db):
        pass
    Path(tmp_path / "a.db").write_bytes(b"")  # coming back does not undo it: the data is gone
    assert watch.check() == reason
    db.close()


def test_a_replaced_file_is_seen(tmp_path, writes_allowed_again) -> None:
    path = tmp_path / "b.db"
    path.write_bytes(b"")
    watch = DatabaseWatch(str(path))
    path.rename(tmp_path / "old.db")
    path.write_bytes(b"")  # another file (another inode) at the same path
    assert watch.check() == f"database file {path} was replaced by another file while uBot was running"


def test_headless_exits_1_saying_the_file_was_deleted(tmp_path, db, sqlite_url) -> None:
    ubot = start(tmp_path, *SIMULATED, "--db", sqlite_url)
    try:
        wait_until(lambda: SnapshotRecord.select().count() >= 2, "two snapshots", alive=ubot)
        os.remove(sqlite_path(sqlite_url))
        assert ubot.wait_exit() == 1
    finally:
        ubot.close()
    log = ubot.log
    line = "was deleted while uBot was running: the pipeline is stopped and nothing more is written"
    assert line in log
    # What came after it was refused (a write in flight may log why), and nothing was ticked.
    after = log[log.index(line) :]
    assert "clock stopped: database lost" in after
    assert not [entry for entry in after.splitlines() if " tick " in entry and "coins=" in entry]
    assert log.rstrip().endswith("INFO ubot: stopped")


def test_under_gunicorn_health_is_degraded_and_nothing_more_is_written(tmp_path, db, sqlite_url) -> None:
    ubot = start(tmp_path, *SIMULATED, "--db", sqlite_url, http=True)
    try:
        wait_until(lambda: SnapshotRecord.select().count() >= 2, "two snapshots", alive=ubot)
        os.remove(sqlite_path(sqlite_url))

        def degraded() -> dict | None:
            answer = requests.get(ubot.base + "/health", timeout=5)
            return answer.json() if answer.status_code == 503 and "reason" in answer.json() else None

        health = wait_until(degraded, "/health to answer 503 with a reason", alive=ubot)
        assert health["status"] == "degraded"
        assert "was deleted while uBot was running" in health["reason"]
        assert "restore the file from a backup, or restart uBot" in health["reason"]
        ticks = health["ticks"]
        signup = requests.post(
            ubot.base + "/v1/users",
            json={"username": "grace", "email": "grace@example.com", "password": "a long passphrase 7"},
            timeout=5,
        )
        assert signup.status_code != 201  # not accepted into a file that is gone
        assert requests.get(ubot.base + "/health", timeout=5).json()["ticks"] == ticks  # stopped
        assert ubot.stop(signal.SIGTERM) == 0
    finally:
        ubot.close()
