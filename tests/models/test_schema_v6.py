"""Schema versions 6 and 7: a version-5 database is upgraded in place. Its alerts and deliveries are kept (no
table rebuilt on SQLite: a rebuilt ``alert`` would cascade to every delivery), each alert its own
batch, each delivery the alert's own words (``subject``/``text`` NULL) with nothing skipped; a status
of 9 characters (``cancelled``) fits; strategies get no pause reason; deliveries are unclaimed (version 7: the notifiers' claims and leases)
and the shared ``pacing`` table exists. Run on SQLite, and on
PostgreSQL with ``UBOT_TEST_DATABASE_URL``."""

from __future__ import annotations

from peewee import Database

from tests.models.test_schema_v5 import make_version_4
from ubot.models.alerts import cancel_deliveries
from ubot.models.schema import SCHEMA_VERSION, ensure_schema, schema_version
from ubot.models.tables import AlertRecord, Delivery, Strategy


def make_version_5(db: Database) -> None:
    make_version_4(db)
    assert ensure_schema(db, target=5) == 4


def test_a_version_5_database_keeps_its_alerts_and_deliveries(empty) -> None:
    make_version_5(empty)
    keys = [d.key for d in Delivery.select(Delivery.id, Delivery.key).order_by(Delivery.id)]

    assert ensure_schema(empty) == 5

    assert schema_version(empty) == SCHEMA_VERSION  # 7 here; 8 and 9 came later
    assert {"claimed_by", "lease_until"} <= {c.name for c in empty.get_columns("delivery")}
    assert "pacing" in empty.get_tables()
    assert [(a.symbol, a.batch) for a in AlertRecord.select()] == [("BTC", None)]
    rows = list(Delivery.select().order_by(Delivery.id))
    assert [(d.key, d.status, d.subject, d.text, d.skipped) for d in rows] == [
        (keys[0], "sent", None, None, 0),
        (keys[1], "pending", None, None, 0),
        (keys[2], "pending", None, None, 0),
    ]
    assert [s.paused_reason for s in Strategy.select()] == [None]
    # the strategy's owner disables it: what it had not sent is cancelled (9 characters)
    assert cancel_deliveries(1, "cancelled: the strategy was disabled") == 2
    assert [d.status for d in Delivery.select().order_by(Delivery.id)] == ["sent", "cancelled", "cancelled"]
