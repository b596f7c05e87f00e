"""Two engines on one database (issue 12): the second refuses to start with one line naming the
holder, instead of both ticking and skipping each other's snapshots as duplicates. The lock is
released when its holder dies, however it dies: a restarted engine, or a gunicorn worker restarted
by its master after a crash, takes it again."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import requests

from tests.procs import start
from tests.support.processes import EXIT_TIMEOUT_S, command, environment
from tests.support.waits import wait_until
from ubot.engine_lock import FileEngineLock, engine_lock, lock_key, other_engine
from ubot.models.tables import SnapshotRecord

SIMULATED = ("--source", "simulated", "--limit", "5")


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args),
        cwd=tmp_path,
        env=environment(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
    )


def snapshots() -> int:
    return SnapshotRecord.select().count()


def test_one_holder_at_a_time_and_the_holder_is_named(database_url) -> None:
    first, second = engine_lock(database_url), engine_lock(database_url)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        holder = second.holder()
        assert f"pid {os.getpid()} on {socket.gethostname()}" in holder
        assert other_engine(database_url) is not None
        first.release()
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()
    assert other_engine(database_url) is None


def test_the_postgresql_key_is_one_constant_per_schema() -> None:
    assert lock_key("public") == lock_key("public")
    assert lock_key("public") != lock_key("other")
    assert -(2**63) <= lock_key("public") < 2**63


def test_check_creates_no_lock_file(tmp_path) -> None:
    lock = FileEngineLock(str(tmp_path / "ubot.db.lock"))
    assert not lock.held_by_other()
    assert not (tmp_path / "ubot.db.lock").exists()


def test_a_second_engine_is_refused_naming_the_first_and_a_dead_ones_lock_is_free(
    tmp_path, db, database_url
) -> None:
    first = start(tmp_path, *SIMULATED, "--interval", "1", "--db", database_url)
    try:
        wait_until(lambda: snapshots() >= 1, "the first engine's first snapshot", alive=first)
        second = run(
            tmp_path, "--no-http", *SIMULATED, "--interval", "0", "--ticks", "5", "--db", database_url
        )
        assert second.returncode == 2, second.stderr
        lines = second.stderr.splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith("ubot: database ")
        assert "is in use by another uBot engine (" in lines[0]
        assert f"pid {first.proc.pid} on {socket.gethostname()}" in lines[0]
        assert lines[0].endswith("stop that one first, or use another database (--db)")

        checked = run(tmp_path, "check", "--no-http", *SIMULATED, "--db", database_url)
        assert checked.returncode == 2
        assert lines[0] in checked.stderr.splitlines()

        first.kill()  # SIGKILL: no clean-up of its own; the OS (or PostgreSQL) frees the lock
        before = snapshots()
        third = run(
            tmp_path, "--no-http", *SIMULATED, "--interval", "0", "--ticks", "2", "--db", database_url
        )
        assert third.returncode == 0, third.stderr
        assert snapshots() == before + 2
    finally:
        first.close()


def test_a_gunicorn_worker_restarted_after_a_crash_takes_the_lock_again(tmp_path, db, database_url) -> None:
    ubot = start(tmp_path, *SIMULATED, "--interval", "1", "--db", database_url, http=True)
    try:
        worker = ubot.wait_worker(1)
        wait_until(lambda: snapshots() >= 1, "the first worker's first snapshot", alive=ubot)
        refused = run(
            tmp_path, "--no-http", *SIMULATED, "--interval", "0", "--ticks", "1", "--db", database_url
        )
        assert refused.returncode == 2 and f"pid {worker} " in refused.stderr, refused.stderr

        ubot.kill_worker(worker)
        restarted = ubot.wait_worker(2)
        assert restarted != worker
        before = snapshots()
        wait_until(lambda: snapshots() > before, "a snapshot of the restarted worker", alive=ubot)
        health = wait_until(
            lambda: requests.get(ubot.base + "/health", timeout=5).json(),
            "the restarted worker's /health",
            alive=ubot,
            ignoring=(requests.ConnectionError,),
        )
        assert health["status"] in ("ok", "starting")
        assert "in use by another uBot engine" not in ubot.log
        refused = run(
            tmp_path, "--no-http", *SIMULATED, "--interval", "0", "--ticks", "1", "--db", database_url
        )
        assert refused.returncode == 2 and f"pid {restarted} " in refused.stderr, refused.stderr
        assert ubot.stop(signal.SIGTERM) == 0
        assert re.search(r"pipeline stopped", ubot.log)
    finally:
        ubot.close()
