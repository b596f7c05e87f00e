"""Schema version 13: a version-11 database is upgraded in place with the ``scan_mark`` table, empty
(version 12 is another branch's number, nothing here); its alerts are kept. Run on SQLite, and on
PostgreSQL with ``UBOT_TEST_DATABASE_URL``."""

from __future__ import annotations

from peewee import Database

from tests.models.test_schema_v11 import make_version_9
from ubot.models.alerts import advance_marks
from ubot.models.schema import SCHEMA_VERSION, ensure_schema, schema_version
from ubot.models.tables import AlertRecord, ScanMark


def make_version_11(db: Database) -> None:
    make_version_9(db)
    assert ensure_schema(db, target=11) == 9


def test_a_version_11_database_gets_the_scan_marks_and_keeps_its_alerts(empty) -> None:
    make_version_11(empty)
    assert "scan_mark" not in empty.get_tables()
    alerts = AlertRecord.select().count()

    assert ensure_schema(empty) == 11

    assert schema_version(empty) == SCHEMA_VERSION >= 13
    assert "scan_mark" in empty.get_tables()
    assert ScanMark.select().count() == 0
    assert AlertRecord.select().count() == alerts
    assert advance_marks([1, 2], 5) == {1, 2}
    assert advance_marks([2, 3], 5) == {3}
    assert sorted(ScanMark.select(ScanMark.strategy_id, ScanMark.snapshot_id).tuples()) == [
        (1, 5),
        (2, 5),
        (3, 5),
    ]
