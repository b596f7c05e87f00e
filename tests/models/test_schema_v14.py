"""Schema version 14: a version-13 database is upgraded in place with ``session.kind``,
``user_agent`` and ``client``; its live sessions are kept (their tokens still log in) and listed
without them, while a new login records them. Run on SQLite, and on PostgreSQL with
``UBOT_TEST_DATABASE_URL``."""

from __future__ import annotations

from peewee import Database

from tests.models.test_schema_v6 import make_version_5
from tests.support.users import T0, T0_MS, cheap_hasher
from ubot.clocks import FakeClock
from ubot.models.schema import SCHEMA_VERSION, ensure_schema, schema_version
from ubot.models.users import UserStore
from ubot.timeutil import iso_from_ms
from ubot.users import tokens
from ubot.users.manager import UserManager
from ubot.users.passwords import Passwords

NEW = {"kind", "user_agent", "client"}
PW = "correct horse 42"


def test_a_version_13_database_gets_the_session_details_and_keeps_its_sessions(empty: Database) -> None:
    make_version_5(empty)
    assert ensure_schema(empty, target=13) == 5
    assert not NEW & {c.name for c in empty.get_columns("session")}
    token = tokens.issue()
    passwords = Passwords(cheap_hasher())
    empty.execute_sql(
        'UPDATE "user" SET password_hash = ' + empty.param + " WHERE id = 1", (passwords.hash(PW),)
    )
    empty.execute_sql(
        "INSERT INTO session (token_hash, user_id, created_at, expires_at, last_seen_at) "
        "VALUES (%s, 1, %s, %s, %s)".replace("%s", empty.param),
        (tokens.hash_token(token), T0_MS, T0_MS + tokens.SESSION_LIFETIME_MS, T0_MS),
    )

    assert ensure_schema(empty) == 13

    assert schema_version(empty) == SCHEMA_VERSION >= 14
    assert {c.name for c in empty.get_columns("session")} >= NEW
    manager = UserManager(UserStore(empty), FakeClock(T0 + 60), passwords=passwords)
    assert manager.authenticate(token) == 1
    new = manager.login("alice", PW, "192.0.2.1", "browser", "Firefox/140").token
    kept, fresh = sorted(manager.list_sessions(1, token).sessions, key=lambda s: s.created_at)
    assert (kept.kind, kept.user_agent, kept.client, kept.current) == (None, None, None, True)
    assert kept.created_at == iso_from_ms(T0_MS)
    assert (fresh.kind, fresh.user_agent, fresh.client, fresh.current) == (
        "browser",
        "Firefox/140",
        "192.0.2.1",
        False,
    )
    assert manager.authenticate(new) == 1
