"""Schema version 2 (users, sessions, settings, strategies): fresh databases get it directly; a
version-1 database with history is upgraded in place, its history kept. (Version 3 is
tests/models/test_schema_v3.py.)"""

from __future__ import annotations

import pytest
from peewee import Database, IntegrityError

from ubot.models.schema import MIGRATIONS, SCHEMA_VERSION, ensure_schema, schema_version
from ubot.models.tables import (
    ALL_TABLES,
    HISTORY_TABLES,
    USER_TABLES,
    Candle,
    Coin,
    GlobalMetric,
    Meta,
    Quote,
    SnapshotRecord,
    Strategy,
    User,
)


def make_version_1(db: Database) -> None:
    """A database as uBot 1 left it: the history tables and ``schema_version = 1``."""
    db.create_tables(HISTORY_TABLES)
    Meta.create(key="schema_version", value="1")


def add_history() -> None:
    Coin.create(id=1, symbol="BTC", name="Bitcoin", slug="bitcoin", first_seen=1_000)
    snap = SnapshotRecord.create(timestamp=60_000, source="simulated", convert="USD", coin_count=1)
    Quote.create(snapshot=snap, coin=1, ts=59_000, rank=1, price=65_000.5)
    GlobalMetric.create(snapshot=snap, ts=59_000, btc_dominance=52.5)
    Candle.create(
        coin=1,
        timeframe="1m",
        open_time=0,
        open=1,
        high=2,
        low=0.5,
        close=1.5,
        first_ts=1,
        last_ts=2,
        count=3,
    )
    Meta.create(key="ohlc_watermark", value="60000")


def history(db: Database) -> list:
    return [
        db.execute_sql("SELECT id, symbol, first_seen FROM coin").fetchall(),
        db.execute_sql("SELECT timestamp, coin_count FROM snapshot").fetchall(),
        db.execute_sql("SELECT coin_id, ts, price FROM quote").fetchall(),
        db.execute_sql("SELECT ts, btc_dominance FROM global_metric").fetchall(),
        db.execute_sql("SELECT coin_id, open_time, close, count FROM candle").fetchall(),
        db.execute_sql("SELECT value FROM meta WHERE key = 'ohlc_watermark'").fetchall(),
    ]


def shape(db: Database) -> dict[str, tuple]:
    """Columns (name, nullable) and indexes (name, columns, unique) of the user tables."""
    result = {}
    for model in USER_TABLES:
        table = model._meta.table_name
        columns = sorted((c.name, c.null) for c in db.get_columns(table))
        indexes = sorted(
            (i.name, tuple(str(c) for c in i.columns), i.unique)
            for i in db.get_indexes(table)
            if not i.name.endswith("pkey")
        )
        result[table] = (columns, indexes)
    return result


def test_version_2_has_its_migration() -> None:
    assert SCHEMA_VERSION >= 2
    assert 2 in MIGRATIONS


def test_a_fresh_database_gets_the_user_tables(empty) -> None:
    assert ensure_schema(empty) == 0

    assert schema_version(empty) == SCHEMA_VERSION
    assert {m._meta.table_name for m in USER_TABLES} <= set(empty.get_tables())


def test_a_version_1_database_is_upgraded_keeping_its_history(empty) -> None:
    make_version_1(empty)
    add_history()
    before = history(empty)
    assert before[0] == [(1, "BTC", 1_000)]
    assert not empty.table_exists("user")

    assert ensure_schema(empty, target=2) == 1

    assert schema_version(empty) == 2
    assert history(empty) == before
    user = User.create(
        username="alice", email="a@example.com", password_hash="h", created_at=1, password_changed_at=1
    )
    Strategy.create(
        user=user,
        name="s",
        condition="price > 1",
        indicators=[],
        timeframe="1h",
        top_n=10,
        channels=["email"],
        frequency="once",
        cooldown_s=0,
        enabled=True,
        created_at=1,
        updated_at=1,
    )
    assert ensure_schema(empty, target=2) == 2  # and again: nothing to do


def test_an_upgraded_database_has_the_same_user_tables_as_a_fresh_one(empty) -> None:
    make_version_1(empty)
    ensure_schema(empty)
    upgraded = shape(empty)
    empty.drop_tables(ALL_TABLES)

    ensure_schema(empty)

    assert shape(empty) == upgraded


def test_usernames_and_e_mails_are_unique_in_any_case(db) -> None:
    def user(username: str, email: str) -> User:
        return User.create(
            username=username, email=email, password_hash="h", created_at=1, password_changed_at=1
        )

    user("alice", "Alice@Example.com")
    for username, email in (("ALICE", "other@example.com"), ("bob", "alice@example.COM")):
        with pytest.raises(IntegrityError), db.atomic():
            user(username, email)

    assert User.select().count() == 1
