"""tests/support/workers.py: the per-worker PostgreSQL databases of a pytest-xdist run, and what a
run makes once for all its workers."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest

from tests.support.workers import create_database, made_once, use_worker_databases, worker_database_url

POSTGRES_URL = os.environ.get("UBOT_TEST_POSTGRES_URL")


def test_a_worker_database_is_named_after_the_worker_and_keeps_the_rest_of_the_url() -> None:
    url = "postgresql://u:p@db.example:5433/ubot_test?sslmode=disable"
    assert worker_database_url(url, "gw3") == "postgresql://u:p@db.example:5433/ubot_test_gw3?sslmode=disable"


def test_a_url_without_a_database_name_is_refused() -> None:
    with pytest.raises(ValueError, match="naming a database"):
        worker_database_url("postgresql://u@db.example:5432", "gw0")


@pytest.mark.skipif(not POSTGRES_URL, reason="UBOT_TEST_POSTGRES_URL is not set")
def test_the_worker_database_is_created_when_missing_and_left_alone_when_there() -> None:
    import psycopg2

    worker = f"probe{uuid.uuid4().hex[:8]}"
    url = worker_database_url(POSTGRES_URL or "", worker)
    environ = {"UBOT_TEST_POSTGRES_URL": POSTGRES_URL or ""}  # UBOT_TEST_DATABASE_URL unset: left so
    try:
        use_worker_databases(worker, environ)
        assert environ == {"UBOT_TEST_POSTGRES_URL": url}
        create_database(POSTGRES_URL or "", url)  # there already: nothing happens
        with psycopg2.connect(url) as conn, conn.cursor() as cursor:
            cursor.execute("SELECT current_database()")
            assert url.endswith("/" + cursor.fetchone()[0])
        conn.close()
    finally:
        with contextlib.closing(psycopg2.connect(POSTGRES_URL)) as admin:
            admin.autocommit = True  # DROP DATABASE cannot run in a transaction
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"')


def test_what_a_run_makes_once_is_made_once(tmp_path_factory) -> None:
    name = f"made-{uuid.uuid4().hex[:8]}"
    calls: list[Path] = []

    def make(directory: Path) -> None:
        calls.append(directory)
        (directory / "made.txt").write_text("made")

    first = made_once(tmp_path_factory, name, make)
    again = made_once(tmp_path_factory, name, make)
    assert first == again == calls[0]
    assert len(calls) == 1
    assert (again / "made.txt").read_text() == "made"
