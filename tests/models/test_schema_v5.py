"""Schema version 5: a version-4 database is upgraded in place. Every delivery gets a random public id
(32 hex digits, distinct), the copies of the webhook secrets are dropped with their column, alerts get
an empty SMS text; and the result is the schema a fresh database gets. Run on SQLite, and on
PostgreSQL with ``UBOT_TEST_DATABASE_URL``."""

from __future__ import annotations

import re

from peewee import Database

from tests.models.test_schema_v3 import make_version_2, shape
from ubot.models.schema import SCHEMA_VERSION, ensure_schema, schema_version
from ubot.models.tables import ALL_TABLES, AlertRecord, Delivery


def make_version_4(db: Database) -> None:
    """A version-4 database with one alert and three deliveries, two of them carrying a copied secret."""
    make_version_2(db)
    assert ensure_schema(db, target=4) == 2
    db.execute_sql(
        "INSERT INTO alert (strategy_id, user_id, strategy_name, coin_id, symbol, timeframe, fired_at, "
        "bar_open, condition, \"values\", subject, text, replayed) VALUES (1, 1, 'oversold', 1, 'BTC', '1h', "
        "10, 0, 'rsi(14) < 30', '{}', 's', 't', false)"
    )
    for channel, target, secret, status in (
        ("webhook", "https://example.com/a", "copied-secret-0123", "sent"),
        ("webhook", "https://example.com/a", "copied-secret-0123", "pending"),
        ("telegram", "42", None, "pending"),
    ):
        db.execute_sql(
            "INSERT INTO delivery (alert_id, channel, target, secret, status, attempts, next_attempt_at, "
            "created_at) VALUES (1, %s, %s, %s, %s, 0, 10, 10)".replace("%s", db.param),
            (channel, target, secret, status),
        )


def test_a_version_4_database_gets_delivery_keys_and_loses_the_copied_secrets(empty) -> None:
    make_version_4(empty)
    assert "secret" in {c.name for c in empty.get_columns("delivery")}

    assert ensure_schema(empty) == 4

    assert schema_version(empty) == SCHEMA_VERSION >= 5
    columns = {c.name for c in empty.get_columns("delivery")}
    assert "secret" not in columns and "key" in columns
    keys = [d.key for d in Delivery.select().order_by(Delivery.id)]
    assert len(keys) == 3 and len(set(keys)) == 3
    assert all(re.fullmatch("[0-9a-f]{32}", key) for key in keys), keys
    assert [(d.channel, d.status) for d in Delivery.select().order_by(Delivery.id)] == [
        ("webhook", "sent"),
        ("webhook", "pending"),
        ("telegram", "pending"),
    ]
    assert [(a.subject, a.text, a.short) for a in AlertRecord.select()] == [("s", "t", "")]
    dumped = " ".join(str(row) for row in empty.execute_sql("SELECT * FROM delivery").fetchall())
    assert "copied-secret" not in dumped


def test_the_upgraded_schema_is_the_fresh_one(empty) -> None:
    make_version_4(empty)
    ensure_schema(empty)
    upgraded = shape(empty)
    empty.drop_tables(ALL_TABLES)
    assert ensure_schema(empty) == 0
    assert shape(empty) == upgraded


def test_a_version_3_database_keeps_its_deliveries_through_versions_4_and_5(empty) -> None:
    """SQLite rebuilds a table to add a NOT NULL column with playhouse, and dropping the old ``alert``
    cascaded to every delivery: the migrations add their columns in SQL instead."""
    make_version_2(empty)
    assert ensure_schema(empty, target=3) == 2
    empty.execute_sql(
        "INSERT INTO alert (strategy_id, user_id, strategy_name, coin_id, symbol, timeframe, fired_at, "
        "bar_open, condition, \"values\", subject, text) VALUES (1, 1, 'oversold', 1, 'BTC', '1h', 10, 0, "
        "'rsi(14) < 30', '{}', 's', 't')"
    )
    empty.execute_sql(
        "INSERT INTO delivery (alert_id, channel, target, secret, status, attempts, next_attempt_at, "
        "created_at) VALUES (1, 'telegram', '42', NULL, 'pending', 0, 10, 10)"
    )

    assert ensure_schema(empty) == 3

    assert [(d.channel, d.status, len(d.key)) for d in Delivery.select()] == [("telegram", "pending", 32)]
    assert [(a.symbol, a.replayed, a.short) for a in AlertRecord.select()] == [("BTC", False, "")]
