"""Schema version 11: a version-9 database is upgraded in place with ``strategy.template``; its
strategies are kept, each without a template (uBot's own words), and a template saved afterwards
is read back as written. Run on SQLite, and on PostgreSQL with ``UBOT_TEST_DATABASE_URL``."""

from __future__ import annotations

from peewee import Database

from tests.models.test_schema_v3 import kept
from tests.models.test_schema_v9 import make_version_8
from ubot.models.schema import SCHEMA_VERSION, ensure_schema, schema_version
from ubot.models.tables import Strategy


def make_version_9(db: Database) -> None:
    make_version_8(db)
    assert ensure_schema(db, target=9) == 8


def test_a_version_9_database_gets_strategy_templates_and_keeps_its_strategies(empty) -> None:
    make_version_9(empty)
    assert "template" not in {c.name for c in empty.get_columns("strategy")}
    before = kept(empty)

    assert ensure_schema(empty) == 9

    assert schema_version(empty) == SCHEMA_VERSION  # 11, then the later versions
    assert ("template", True) in {(c.name, c.null) for c in empty.get_columns("strategy")}
    assert kept(empty) == before
    assert [(s.name, s.template) for s in Strategy.select()] == [("oversold", None)]
    Strategy.update(template="{symbol} at {price}\n{value:rsi(14):.1f}").execute()
    assert [s.template for s in Strategy.select()] == ["{symbol} at {price}\n{value:rsi(14):.1f}"]
