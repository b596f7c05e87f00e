"""Schema creation, versioning and upgrades through playhouse.migrate."""

from __future__ import annotations

import pytest
from peewee import CharField, Database
from playhouse.migrate import SchemaMigrator, migrate

from ubot.models.schema import SCHEMA_VERSION, SchemaError, ensure_schema, schema_version
from ubot.models.tables import ALL_TABLES, Coin, Meta

NEXT = SCHEMA_VERSION + 1  # a version that does not exist yet, for made-up migrations


def add_logo(db: Database, migrator: SchemaMigrator) -> None:
    migrate(migrator.add_column("coin", "logo", CharField(null=True)))


def coin_columns(db: Database) -> set[str]:
    return {column.name for column in db.get_columns("coin")}


def test_a_fresh_database_gets_every_table_at_the_current_version(empty) -> None:
    assert schema_version(empty) is None

    assert ensure_schema(empty) == 0

    assert schema_version(empty) == SCHEMA_VERSION
    assert {m._meta.table_name for m in ALL_TABLES} <= set(empty.get_tables())


def test_running_it_again_is_a_no_op(db) -> None:
    Coin.create(id=1, symbol="BTC", name="Bitcoin", slug="bitcoin", first_seen=0)
    calls = []

    assert ensure_schema(db, migrations={SCHEMA_VERSION + 1: lambda *_: calls.append(1)}) == SCHEMA_VERSION

    assert schema_version(db) == SCHEMA_VERSION
    assert calls == []
    assert [c.symbol for c in Coin.select()] == ["BTC"]


def test_a_database_from_a_newer_ubot_is_refused(db) -> None:
    Meta.update(value=str(SCHEMA_VERSION + 1)).where(Meta.key == "schema_version").execute()

    with pytest.raises(SchemaError, match=rf"version {SCHEMA_VERSION + 1} is newer .*\({SCHEMA_VERSION}\)"):
        ensure_schema(db)

    assert schema_version(db) == SCHEMA_VERSION + 1


def test_a_migration_upgrades_and_keeps_existing_rows(db) -> None:
    Coin.create(id=1, symbol="BTC", name="Bitcoin", slug="bitcoin", first_seen=123)

    assert ensure_schema(db, target=NEXT, migrations={NEXT: add_logo}) == SCHEMA_VERSION

    assert schema_version(db) == NEXT
    assert "logo" in coin_columns(db)
    assert db.execute_sql("SELECT id, symbol, first_seen, logo FROM coin").fetchall() == [
        (1, "BTC", 123, None)
    ]
    assert ensure_schema(db, target=NEXT, migrations={NEXT: add_logo}) == NEXT  # and again: nothing to do


def test_a_missing_migration_is_refused_before_anything_changes(db) -> None:
    with pytest.raises(SchemaError, match=f"no migration to schema version {NEXT + 1}"):
        ensure_schema(db, target=NEXT + 1, migrations={NEXT: add_logo})

    assert schema_version(db) == SCHEMA_VERSION
    assert "logo" not in coin_columns(db)


def test_a_failing_migration_is_rolled_back(db) -> None:
    def broken(db: Database, migrator: SchemaMigrator) -> None:
        add_logo(db, migrator)
        raise RuntimeError("migration bug")

    with pytest.raises(RuntimeError, match="migration bug"):
        ensure_schema(db, target=NEXT, migrations={NEXT: broken})

    assert schema_version(db) == SCHEMA_VERSION
    assert "logo" not in coin_columns(db)


def test_tables_without_a_schema_version_are_refused(empty) -> None:
    empty.create_tables([Coin])

    with pytest.raises(SchemaError, match=r"uBot-like tables \(coin\) but no schema version"):
        ensure_schema(empty)

    assert schema_version(empty) is None
    assert set(empty.get_tables()) == {"coin"}


def test_a_meta_table_alone_is_taken_as_empty(empty) -> None:
    """An interrupted first start may leave just ``meta``: the schema is created then."""
    empty.create_tables([Meta])

    assert ensure_schema(empty) == 0
    assert schema_version(empty) == SCHEMA_VERSION
