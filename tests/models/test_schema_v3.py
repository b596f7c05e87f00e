"""Schema version 3 (alerts, deliveries, firing states; ``strategy.last_error[_at]``): fresh databases
get it directly; a version-2 database with users and strategies is upgraded in place, keeping them."""

from __future__ import annotations

from peewee import Database

from ubot.models.schema import MIGRATIONS, SCHEMA_VERSION, ensure_schema, schema_version
from ubot.models.tables import (
    ALERT_TABLES,
    ALL_TABLES,
    HISTORY_TABLES,
    USER_TABLES,
    AlertRecord,
    AlertStateRecord,
    Coin,
    Delivery,
    Meta,
    Strategy,
    User,
    UserSettings,
)


def make_version_2(db: Database) -> None:
    """A database as uBot 2 left it, with a user, their settings, a strategy and some history."""
    db.create_tables(HISTORY_TABLES)
    Meta.create(key="schema_version", value="1")
    assert ensure_schema(db, target=2) == 1
    Coin.create(id=1, symbol="BTC", name="Bitcoin", slug="bitcoin", first_seen=1_000)
    db.execute_sql(
        'INSERT INTO "user" (username, email, password_hash, created_at, password_changed_at, failed_logins) '
        "VALUES ('alice', 'a@example.com', 'h', 1, 2, 0)"
    )
    db.execute_sql(
        "INSERT INTO user_settings (user_id, telegram_chat_id, timezone, quote_currency) "
        "VALUES (1, '42', 'Europe/Paris', 'EUR')"
    )
    db.execute_sql(
        "INSERT INTO strategy (user_id, name, condition, indicators, timeframe, top_n, channels, frequency, "
        "cooldown_s, enabled, created_at, updated_at) VALUES (1, 'oversold', 'rsi(14) < 30', "
        """'["rsi(14)"]', '1h', 10, '["telegram"]', 'once_per_bar', 0, TRUE, 3, 4)"""
    )


def kept(db: Database) -> list:
    return [
        db.execute_sql("SELECT id, symbol FROM coin").fetchall(),
        db.execute_sql('SELECT id, username, created_at FROM "user"').fetchall(),
        db.execute_sql("SELECT user_id, telegram_chat_id, timezone FROM user_settings").fetchall(),
        db.execute_sql(
            "SELECT id, user_id, name, condition, indicators, top_n, created_at FROM strategy"
        ).fetchall(),
    ]


def shape(db: Database) -> dict[str, tuple]:
    """Columns (name, nullable) and indexes (name, columns, unique) of the user and alert tables, and
    the foreign keys of the alert tables."""
    result = {}
    for model in USER_TABLES + ALERT_TABLES:
        table = model._meta.table_name
        columns = sorted((c.name, c.null) for c in db.get_columns(table))
        indexes = sorted(
            (i.name, tuple(str(c) for c in i.columns), i.unique)
            for i in db.get_indexes(table)
            if not i.name.endswith("pkey")
        )
        keys = sorted((k.column, k.dest_table, k.dest_column) for k in db.get_foreign_keys(table))
        result[table] = (columns, indexes, keys)
    return result


def test_version_3_has_its_migration() -> None:
    assert SCHEMA_VERSION >= 3
    assert 3 in MIGRATIONS


def test_a_fresh_database_gets_the_alert_tables(empty) -> None:
    assert ensure_schema(empty) == 0

    assert schema_version(empty) == SCHEMA_VERSION
    assert {m._meta.table_name for m in ALERT_TABLES} <= set(empty.get_tables())
    assert {"last_error", "last_error_at"} <= {c.name for c in empty.get_columns("strategy")}


def test_a_version_2_database_is_upgraded_keeping_users_and_strategies(empty) -> None:
    make_version_2(empty)
    before = kept(empty)
    assert before[3] and not empty.table_exists("alert")
    assert "last_error" not in {c.name for c in empty.get_columns("strategy")}

    assert ensure_schema(empty) == 2

    assert schema_version(empty) == SCHEMA_VERSION
    assert kept(empty) == before
    strategy = Strategy.get()
    assert (strategy.name, strategy.indicators, strategy.last_error, strategy.last_error_at) == (
        "oversold",
        ["rsi(14)"],
        None,
        None,
    )
    assert UserSettings.get().timezone == "Europe/Paris"
    Strategy.update(last_error="division by zero", last_error_at=5).execute()
    alert = AlertRecord.create(
        strategy=strategy,
        user=strategy.user_id,
        strategy_name="oversold",
        coin_id=1,
        symbol="BTC",
        timeframe="1h",
        fired_at=10,
        bar_open=0,
        condition="rsi(14) < 30",
        values={"rsi(14)": 28.0},
        subject="s",
        text="t",
    )
    Delivery.create(
        alert=alert, channel="telegram", target="42", status="pending", next_attempt_at=10, created_at=10
    )
    AlertStateRecord.create(strategy=strategy, coin_id=1, active=True)
    assert Strategy.get().last_error == "division by zero"
    assert ensure_schema(empty) == SCHEMA_VERSION  # and again: nothing to do


def test_version_1_goes_to_3_in_one_start(empty) -> None:
    empty.create_tables(HISTORY_TABLES)
    Meta.create(key="schema_version", value="1")

    assert ensure_schema(empty) == 1

    assert schema_version(empty) == SCHEMA_VERSION
    assert {m._meta.table_name for m in ALL_TABLES} <= set(empty.get_tables())


def test_an_upgraded_database_has_the_same_tables_as_a_fresh_one(empty) -> None:
    make_version_2(empty)
    ensure_schema(empty)
    upgraded = shape(empty)
    empty.drop_tables(ALL_TABLES)

    ensure_schema(empty)

    assert shape(empty) == upgraded
    assert ("strategy_id", "strategy", "id") in upgraded["alert"][2]


def test_the_alert_history_outlives_its_strategy_not_its_user(db) -> None:
    user = User.create(
        username="bob", email="b@example.com", password_hash="h", created_at=1, password_changed_at=1
    )
    strategy = Strategy.create(
        user=user,
        name="s",
        condition="price > 1",
        indicators=[],
        timeframe="1h",
        top_n=1,
        channels=[],
        frequency="once",
        cooldown_s=0,
        enabled=True,
        created_at=1,
        updated_at=1,
    )
    alert = AlertRecord.create(
        strategy=strategy,
        user=user,
        strategy_name="s",
        coin_id=1,
        symbol="BTC",
        timeframe="1h",
        fired_at=1,
        bar_open=0,
        condition="price > 1",
        values={},
        subject="s",
        text="t",
    )
    Delivery.create(
        alert=alert, channel="webhook", target="https://x", status="sent", next_attempt_at=1, created_at=1
    )
    AlertStateRecord.create(strategy=strategy, coin_id=1, active=True)

    strategy.delete_instance()
    assert AlertRecord.get_by_id(alert.id).strategy_id is None
    assert (Delivery.select().count(), AlertStateRecord.select().count()) == (1, 0)

    user.delete_instance()
    assert (AlertRecord.select().count(), Delivery.select().count()) == (0, 0)
