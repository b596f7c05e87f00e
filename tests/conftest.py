"""Shared fixtures. The database is SQLite in a temporary directory, or the PostgreSQL database named
by ``UBOT_TEST_DATABASE_URL`` (``.ci/run`` runs the whole suite once each way). Every test ends with
no actor running (``stop_actors``, autouse); shared helpers are in ``tests/support/``.

Under pytest-xdist (``-n N``) each worker has a PostgreSQL database of its own (``<database>_gw0``,
…; ``tests/support/workers.py``): the variables naming it are rewritten before any test module
reads them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from peewee import Database

from tests.support.actors import stop_actors  # noqa: F401  (autouse: every test)
from tests.support.schema import reset, sqlite_database
from tests.support.workers import use_worker_databases
from ubot.models.db import open_database, sqlite_path


def pytest_configure(config: pytest.Config) -> None:
    worker = getattr(config, "workerinput", {}).get("workerid")  # set in an xdist worker only
    if worker:
        use_worker_databases(worker)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """UBOT_TEST_DATABASE_URL narrowed to a schema of this test run's own, dropped at the end.

    The PostgreSQL database may be shared (other runs, other sessions, leftovers of an older
    uBot): every connection of this run, subprocesses included, sees only its own schema.
    """
    url = os.environ.get("UBOT_TEST_DATABASE_URL")
    if not url:
        yield None
        return
    from tests.support.cluster import private_schema

    with private_schema(url, f"ubot_test_{os.getpid()}") as (narrowed, _):
        yield narrowed


@pytest.fixture
def database_url(tmp_path, postgres_url) -> str:
    return postgres_url or f"sqlite:///{tmp_path}/ubot-test.db"


@pytest.fixture
def db(database_url, tmp_path_factory) -> Iterator[Database]:
    """The database of ``database_url``, connected, at the current schema and empty
    (tests/support/schema.py makes it from a template, or empties the shared one)."""
    path = sqlite_path(database_url)
    if path is not None and not os.path.exists(path):
        sqlite_database(Path(path), tmp_path_factory.getbasetemp())
    database = open_database(database_url)
    reset(database)
    yield database
    database.close()
