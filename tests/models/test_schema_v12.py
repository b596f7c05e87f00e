"""Schema version 12: a version-9 database is upgraded in place with ``user_settings.muted_until``
(nobody muted); the settings already saved are kept, and a mute can be stored. Run on SQLite, and on
PostgreSQL with ``UBOT_TEST_DATABASE_URL``."""

from __future__ import annotations

from peewee import Database

from tests.models.test_schema_v9 import make_version_8
from ubot.models.schema import SCHEMA_VERSION, ensure_schema, schema_drift, schema_version
from ubot.models.tables import User, UserSettings
from ubot.models.users import UserStore


def make_version_9(db: Database) -> None:
    make_version_8(db)
    assert ensure_schema(db, target=9) == 8  # user_settings as version 2 made it (schema.py)


def test_a_version_9_database_gets_muted_until_and_keeps_its_settings(empty) -> None:
    make_version_9(empty)
    assert "muted_until" not in {c.name for c in empty.get_columns("user_settings")}
    user = User.insert(
        username="ada", email="ada@example.com", password_hash="x", created_at=0, password_changed_at=0
    ).execute()
    # the columns given only: muted_until has no default, so it is not in the INSERT
    UserSettings.insert(
        user=user, telegram_chat_id="42", quiet_hours="22:00-07:00", timezone="Europe/Berlin"
    ).execute()

    assert ensure_schema(empty) == 9

    assert schema_version(empty) == SCHEMA_VERSION and schema_drift(empty) == []
    store = UserStore(empty)
    assert store.muted_until(user) is None
    saved = store.settings(user)
    assert saved is not None and saved["telegram_chat_id"] == "42" and saved["timezone"] == "Europe/Berlin"
    store.set_muted_until(user, 1_800_000_000_000)
    assert store.muted_until(user) == 1_800_000_000_000
    store.put_settings(user, {**saved, "quiet_hours": None})  # the settings API leaves the mute alone
    assert store.muted_until(user) == 1_800_000_000_000
