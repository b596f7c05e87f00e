"""Schema version 4 (``alert.replayed``): a version-3 database with alerts is upgraded in place, its
alerts kept and marked live (not replayed); and the result is the schema a fresh database gets."""

from __future__ import annotations

from tests.models.test_schema_v3 import make_version_2, shape
from ubot.models.schema import SCHEMA_VERSION, ensure_schema, schema_version
from ubot.models.tables import ALL_TABLES, AlertRecord


def test_a_version_3_database_is_upgraded_keeping_its_alerts_as_live(empty) -> None:
    make_version_2(empty)
    assert ensure_schema(empty, target=3) == 2
    assert "replayed" not in {c.name for c in empty.get_columns("alert")}
    empty.execute_sql(
        "INSERT INTO alert (strategy_id, user_id, strategy_name, coin_id, symbol, timeframe, fired_at, "
        "bar_open, condition, \"values\", subject, text) VALUES (1, 1, 'oversold', 1, 'BTC', '1h', 10, 0, "
        "'rsi(14) < 30', '{}', 's', 't')"
    )

    assert ensure_schema(empty) == 3
    assert schema_version(empty) == SCHEMA_VERSION
    assert [(a.symbol, a.replayed) for a in AlertRecord.select()] == [("BTC", False)]
    upgraded = shape(empty)
    empty.drop_tables(ALL_TABLES)
    assert ensure_schema(empty) == 0
    assert shape(empty) == upgraded
