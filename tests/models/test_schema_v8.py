"""Schema version 8: a version-7 database is upgraded in place with the ``destination`` table, empty:
every target already in a user's settings is unverified (nothing is sent to it before its owner
verifies it), and settings, strategies and deliveries are kept. Run on SQLite, and on PostgreSQL with
``UBOT_TEST_DATABASE_URL``."""

from __future__ import annotations

from tests.models.test_schema_v6 import make_version_5
from tests.support.users import T0
from ubot.clocks import FakeClock
from ubot.models.schema import SCHEMA_VERSION, ensure_schema, schema_version
from ubot.models.tables import Delivery, Destination, UserSettings
from ubot.models.users import UserStore
from ubot.users.manager import UserManager


def test_a_version_7_database_gets_the_destination_table_and_every_target_is_unverified(empty) -> None:
    make_version_5(empty)
    assert ensure_schema(empty, target=7) == 5
    deliveries = Delivery.select().count()
    assert not empty.table_exists("destination")

    assert ensure_schema(empty) == 7

    assert schema_version(empty) == SCHEMA_VERSION  # 8 here; 9 came later
    assert empty.table_exists("destination") and Destination.select().count() == 0
    assert Delivery.select().count() == deliveries
    assert UserSettings.get().telegram_chat_id == "42"  # kept, but not verified
    manager = UserManager(UserStore(empty), FakeClock(T0))
    states = {d.channel: (d.target, d.state) for d in manager.get_settings(1).destinations}
    assert states["telegram"] == ("42", "unverified")
    (spec,) = manager.specs_of(1).specs or (None,)
    assert spec is None or all(d.unverified for d in spec.deliveries)
