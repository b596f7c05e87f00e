"""Shared fixtures. The database is SQLite in a temporary directory, or the PostgreSQL database named
by ``UBOT_TEST_DATABASE_URL`` (``.ci/run`` runs the whole suite once each way)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from peewee import Database

from ubot.models.db import is_sqlite, open_database
from ubot.models.schema import ensure_schema
from ubot.models.tables import ALL_TABLES


@pytest.fixture
def database_url(tmp_path) -> str:
    return os.environ.get("UBOT_TEST_DATABASE_URL") or f"sqlite:///{tmp_path}/ubot-test.db"


def reset(db: Database) -> None:
    """An empty schema at the current version (PostgreSQL is shared between tests)."""
    if not is_sqlite(db):
        db.drop_tables(ALL_TABLES, cascade=True, safe=True)
    ensure_schema(db)


@pytest.fixture
def db(database_url) -> Iterator[Database]:
    database = open_database(database_url)
    reset(database)
    yield database
    database.close()
