"""Create the schema on first start and upgrade it on later starts, keeping users' history.

The schema version lives in the ``meta`` table. Each later change to the tables adds one function to
:data:`MIGRATIONS` (``version -> upgrade from version - 1``) written with ``playhouse.migrate``, and
bumps :data:`SCHEMA_VERSION`. Upgrades run in a transaction where the database allows it.

Versions: 1 = market history; 2 = users, sessions, user settings and strategies; 3 = alerts, their
deliveries and firing states, and two columns of ``strategy`` (``last_error``, ``last_error_at``);
4 = ``alert.replayed`` (an alert raised by a replay); 5 = ``delivery.key`` (a random public id instead
of the row id), ``alert.short`` (the SMS text), and no more ``delivery.secret`` (the webhook secret is
read from the user's settings when sending); 6 = alerts batched by (strategy, tick) (``alert.batch``),
the batch's message stored with each delivery (``delivery.subject``, ``text``, ``skipped``), the
statuses ``capped`` and ``cancelled`` (``delivery.status`` widened to 16), ``strategy.paused_reason``;
7 = ``delivery.claimed_by`` and ``delivery.lease_until`` (a notifier's claim and its lease) and the
``pacing`` table (per-destination pacing shared by notifier processes); 8 = the ``destination``
table (verified destinations: every target already in a user's settings starts unverified); 9 = an index
of ``candle`` covering (coin, timeframe, open time, close, last quote time), for reads of closes over time;
10 = ``candle_block`` and ``candle_block_stale`` (closed candles packed in blocks, ``models/candle_blocks.py``);
11 = ``strategy.template`` (a strategy's message template, NULL for every strategy already saved: uBot's
own words); 12 = ``user_settings.muted_until`` (the Telegram bot's ``/mute``); 13 = ``scan_mark``
(a strategy's last recorded scan); 14 = ``session.kind``, ``user_agent`` and ``client`` (what a login said, for
the user's list of sessions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    Database,
    ForeignKeyField,
    IntegerField,
    TextField,
)
from playhouse.migrate import SchemaMigrator, migrate

from ubot.models.db import is_sqlite, writing
from ubot.models.tables import (
    ALERT_TABLES,
    ALL_TABLES,
    BLOCK_TABLES,
    AlertRecord,
    BaseModel,
    Delivery,
    Destination,
    JsonField,
    Meta,
    Pacing,
    ScanMark,
    SnapshotRecord,
    Strategy,
    User,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 14
Migration = Callable[[Database, SchemaMigrator], None]


def add_user_tables(db: Database, migrator: SchemaMigrator) -> None:
    """Version 2: the user tables, new, beside the untouched history.

    They are created from the models as they are now. When a later version alters one of these
    tables, copy its version-2 definition in here first, so that a version-1 database still goes
    through the same steps as everyone else (tests/models/test_schema_v2.py compares the result with
    a fresh database). ``strategy``, ``user_settings`` and ``session`` are the version-2 copies below
    (versions 3, 12 and 14 added columns).
    """
    db.create_tables([User, _SessionV2, _UserSettingsV2, _StrategyV2])


class _SessionV2(BaseModel):
    """``session`` as schema version 2 created it (frozen here: do not change)."""

    id = AutoField()
    token_hash = CharField(max_length=64, unique=True)
    user = ForeignKeyField(User, on_delete="CASCADE", index=True, backref="+")
    created_at = BigIntegerField()
    expires_at = BigIntegerField()
    revoked_at = BigIntegerField(null=True)
    last_seen_at = BigIntegerField()

    class Meta:
        table_name = "session"


class _UserSettingsV2(BaseModel):
    """``user_settings`` as schema version 2 created it (frozen here: do not change)."""

    user = ForeignKeyField(User, primary_key=True, on_delete="CASCADE", backref="+")
    webhook_url = CharField(max_length=2048, null=True)
    webhook_secret = CharField(max_length=128, null=True)
    telegram_chat_id = CharField(max_length=64, null=True)
    sms_to = CharField(max_length=16, null=True)
    whatsapp_to = CharField(max_length=16, null=True)
    email_to = CharField(max_length=254, null=True)
    quiet_hours = CharField(max_length=11, null=True)
    timezone = CharField(max_length=64, default="UTC")
    quote_currency = CharField(max_length=10, default="USD")

    class Meta:
        table_name = "user_settings"


class _StrategyV2(BaseModel):
    """``strategy`` as schema version 2 created it (frozen here: do not change)."""

    id = AutoField()
    user = ForeignKeyField(User, on_delete="CASCADE", index=True, backref="+")
    name = CharField(max_length=64)
    condition = TextField()
    indicators = JsonField()
    timeframe = CharField(max_length=4)
    symbols = JsonField(null=True)
    top_n = IntegerField(null=True)
    channels = JsonField()
    frequency = CharField(max_length=24)
    cooldown_s = IntegerField()
    expires_at = BigIntegerField(null=True)
    enabled = BooleanField()
    created_at = BigIntegerField()
    updated_at = BigIntegerField()

    class Meta:
        table_name = "strategy"
        indexes = ((("user", "name"), True),)


def add_alert_tables(db: Database, migrator: SchemaMigrator) -> None:
    """Version 3: the strategy's last runtime error (two nullable columns, existing rows untouched),
    and the alert tables, new, created from the models as they are now (copy their version-3
    definition in here before a later version alters them, as for version 2). ``alert`` and
    ``delivery`` are the version-3 copies below (versions 4 and 5 changed them)."""
    migrate(
        migrator.add_column("strategy", "last_error", TextField(null=True)),
        migrator.add_column("strategy", "last_error_at", BigIntegerField(null=True)),
    )
    frozen = {AlertRecord: _AlertV3, Delivery: _DeliveryV3}
    db.create_tables([frozen.get(m, m) for m in ALERT_TABLES])


class _AlertV3(BaseModel):
    """``alert`` as schema version 3 created it (frozen here: do not change)."""

    id = AutoField()
    strategy = ForeignKeyField(Strategy, null=True, on_delete="SET NULL", index=True, backref="+")
    user = ForeignKeyField(User, on_delete="CASCADE", index=False, backref="+")
    strategy_name = CharField(max_length=64)
    coin_id = IntegerField()
    symbol = CharField(max_length=64)
    timeframe = CharField(max_length=4)
    fired_at = BigIntegerField()
    bar_open = BigIntegerField()
    condition = TextField()
    values = JsonField()
    subject = TextField()
    text = TextField()

    class Meta:
        table_name = "alert"
        indexes = ((("user", "fired_at"), False),)


class _DeliveryV3(BaseModel):
    """``delivery`` as schema version 3 created it (frozen here: do not change)."""

    id = AutoField()
    alert = ForeignKeyField(_AlertV3, on_delete="CASCADE", index=True, backref="+")
    channel = CharField(max_length=16)
    target = CharField(max_length=2048)
    secret = CharField(max_length=128, null=True)
    status = CharField(max_length=8)
    attempts = IntegerField(default=0)
    next_attempt_at = BigIntegerField()
    detail = TextField(null=True)
    sent_at = BigIntegerField(null=True)
    created_at = BigIntegerField()

    class Meta:
        table_name = "delivery"
        indexes = ((("status", "next_attempt_at"), False),)


def mark_replayed_alerts(db: Database, migrator: SchemaMigrator) -> None:
    """Version 4: ``alert.replayed``, false for every alert already written (they were live).

    In SQL: playhouse would add the NOT NULL column on SQLite by rebuilding ``alert``, and dropping
    the old table cascades to every delivery (foreign keys are on): the first version of this
    migration lost the deliveries of every SQLite database it upgraded, pending ones included."""
    if is_sqlite(db):
        db.execute_sql("ALTER TABLE alert ADD COLUMN replayed INTEGER NOT NULL DEFAULT 0")
    else:
        db.execute_sql("ALTER TABLE alert ADD COLUMN replayed BOOLEAN NOT NULL DEFAULT false")
        db.execute_sql("ALTER TABLE alert ALTER COLUMN replayed DROP DEFAULT")  # as a fresh table has it


def delivery_keys(db: Database, migrator: SchemaMigrator) -> None:
    """Version 5: ``delivery.key``, 128 random bits in hex for every delivery already written (drawn
    by the database, in one statement); ``alert.short``, empty for the alerts already written (their
    SMS is then the subject and the text, as before); and ``delivery.secret`` dropped: the copies of
    the users' webhook secrets are gone, the secret is read from the settings when sending."""
    # In SQL rather than with playhouse: on SQLite, playhouse adds a NOT NULL column by rebuilding the
    # table, and dropping the old ``alert`` would cascade to every delivery (foreign keys are on).
    db.execute_sql("ALTER TABLE alert ADD COLUMN short TEXT NOT NULL DEFAULT ''")
    if not is_sqlite(db):
        db.execute_sql("ALTER TABLE alert ALTER COLUMN short DROP DEFAULT")  # as a fresh table has it
    migrate(migrator.add_column("delivery", "key", CharField(max_length=32, null=True)))
    random_hex = (
        "lower(hex(randomblob(16)))" if is_sqlite(db) else "replace(gen_random_uuid()::text, '-', '')"
    )
    db.execute_sql(f'UPDATE delivery SET "key" = {random_hex}')
    migrate(
        migrator.add_not_null("delivery", "key"),  # rebuilds ``delivery`` on SQLite: nothing refers to it
        migrator.drop_column("delivery", "secret"),
    )


def batched_deliveries(db: Database, migrator: SchemaMigrator) -> None:
    """Version 6: ``alert.batch`` (NULL for every alert already written: each its own batch, as it
    was sent), ``delivery.subject``/``text`` (NULL: the alert's own), ``delivery.skipped`` (0),
    ``delivery.status`` 16 characters wide (``cancelled``), ``strategy.paused_reason`` (NULL).

    In SQL for the NOT NULL column: on SQLite, playhouse adds one by rebuilding the table, and dropping
    the old table would cascade (foreign keys are on). SQLite does not enforce a VARCHAR's length, so
    only PostgreSQL's ``status`` is altered."""
    migrate(
        migrator.add_column("alert", "batch", BigIntegerField(null=True)),
        migrator.add_index("alert", ("batch",), False),
        migrator.add_column("delivery", "subject", TextField(null=True)),
        migrator.add_column("delivery", "text", TextField(null=True)),
        migrator.add_column("strategy", "paused_reason", TextField(null=True)),
    )
    db.execute_sql("ALTER TABLE delivery ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0")
    if not is_sqlite(db):
        db.execute_sql("ALTER TABLE delivery ALTER COLUMN skipped DROP DEFAULT")  # as a fresh table has it
        db.execute_sql("ALTER TABLE delivery ALTER COLUMN status TYPE VARCHAR(16)")


def delivery_claims(db: Database, migrator: SchemaMigrator) -> None:
    """Version 7: ``delivery.claimed_by`` and ``delivery.lease_until`` (nullable: every delivery
    already written is unclaimed), and the ``pacing`` table, new."""
    migrate(
        migrator.add_column("delivery", "claimed_by", CharField(max_length=64, null=True)),
        migrator.add_column("delivery", "lease_until", BigIntegerField(null=True)),
    )
    db.create_tables([Pacing])


def add_destinations(db: Database, migrator: SchemaMigrator) -> None:
    """Version 8: the ``destination`` table, new and empty: every target already in a user's
    settings is unverified until its owner verifies it (nothing is sent there before)."""
    db.create_tables([Destination])


def covering_candle_index(db: Database, migrator: SchemaMigrator) -> None:
    """Version 9: the ``candle`` index that covers a dry run's reads (``models/dryrun.py``) and the
    Scanner's seeding (``models/closes.py``): built once over the candles already stored (unless a
    database built from today's models has it already)."""
    columns = ["coin_id", "timeframe", "open_time", "close", "last_ts"]
    if columns not in [index.columns for index in db.get_indexes("candle")]:
        migrate(migrator.add_index("candle", tuple(columns), False))


def add_candle_blocks(db: Database, migrator: SchemaMigrator) -> None:
    """Version 10: the ``candle_block`` and ``candle_block_stale`` tables, new and empty: the block
    packer packs the candles already stored in the background, and readers take the rows until then."""
    db.create_tables(list(BLOCK_TABLES))


def strategy_templates(db: Database, migrator: SchemaMigrator) -> None:
    """Version 11: ``strategy.template``, NULL for every strategy already saved (uBot's own words)."""
    migrate(migrator.add_column("strategy", "template", TextField(null=True)))


def muted_until(db: Database, migrator: SchemaMigrator) -> None:
    """Version 12: ``user_settings.muted_until`` (nullable: nobody is muted)."""
    migrate(migrator.add_column("user_settings", "muted_until", BigIntegerField(null=True)))


def add_scan_marks(db: Database, migrator: SchemaMigrator) -> None:
    """Version 13: the ``scan_mark`` table, new and empty: a strategy without a mark has no scan
    recorded, so the first scanner to scan it writes one (its scans so far were covered by the
    scanners' watermarks in ``meta``, which stay)."""
    db.create_tables([ScanMark])


def session_details(db: Database, migrator: SchemaMigrator) -> None:
    """Version 14: ``session.kind``, ``user_agent`` and ``client`` (nullable: a session started
    before is listed without them)."""
    migrate(
        migrator.add_column("session", "kind", CharField(max_length=8, null=True)),
        migrator.add_column("session", "user_agent", CharField(max_length=256, null=True)),
        migrator.add_column("session", "client", CharField(max_length=64, null=True)),
    )


#: version -> the function that upgrades a database from ``version - 1`` to ``version``.
MIGRATIONS: dict[int, Migration] = {
    2: add_user_tables,
    3: add_alert_tables,
    4: mark_replayed_alerts,
    5: delivery_keys,
    6: batched_deliveries,
    7: delivery_claims,
    8: add_destinations,
    9: covering_candle_index,
    10: add_candle_blocks,
    11: strategy_templates,
    12: muted_until,
    13: add_scan_marks,
    14: session_details,
}


class SchemaError(RuntimeError):
    """The database cannot be used by this version of uBot."""


def schema_version(db: Database) -> int | None:
    """The stored schema version, or ``None`` for an empty database."""
    if not db.table_exists(Meta._meta.table_name):
        return None
    row = Meta.get_or_none(Meta.key == "schema_version")
    return int(row.value) if row else None


def pending_migrations(
    db: Database,
    target: int = SCHEMA_VERSION,
    migrations: Mapping[int, Migration] = MIGRATIONS,
) -> tuple[int | None, list[int]]:
    """(the stored version, the versions ``ensure_schema`` would migrate to, in order), without
    changing anything; ``None`` and ``[]`` for an empty database (created at ``target``).
    Raises :class:`SchemaError` when the database cannot be used by this uBot."""
    current = schema_version(db)
    if current is None:
        existing = [m for m in ALL_TABLES if db.table_exists(m._meta.table_name)]
        if existing and existing != [Meta]:
            names = ", ".join(m._meta.table_name for m in existing)
            raise SchemaError(f"database has uBot-like tables ({names}) but no schema version")
        return None, []
    if current > target:
        raise SchemaError(
            f"database schema version {current} is newer than this uBot understands ({target}); upgrade uBot"
        )
    missing = [v for v in range(current + 1, target + 1) if v not in migrations]
    if missing:
        raise SchemaError(f"no migration to schema version {missing[0]}")
    return current, list(range(current + 1, target + 1))


def schema_drift(db: Database) -> list[str]:
    """One line per table or column of the current models missing from ``db`` (for ``run.py check``
    on a database at :data:`SCHEMA_VERSION`: a hand-edited or half-restored database)."""
    problems = []
    for model in ALL_TABLES:
        table = model._meta.table_name
        if not db.table_exists(table):
            problems.append(f"database schema version {SCHEMA_VERSION} lacks table {table}")
            continue
        present = {column.name for column in db.get_columns(table)}
        for column in model._meta.columns:
            if column not in present:
                problems.append(f"database table {table} lacks column {column}")
    return problems


def ensure_schema(
    db: Database,
    target: int = SCHEMA_VERSION,
    migrations: Mapping[int, Migration] = MIGRATIONS,
) -> int:
    """Bring ``db`` to schema ``target``; return the version it was at (0 when it was empty)."""
    current, pending = pending_migrations(db, target, migrations)
    if current is None:
        with writing(db):
            db.create_tables(ALL_TABLES, safe=True)
            _set_version(target)
        log.info("created database schema version %d", target)
        return 0
    migrator = SchemaMigrator.from_database(db)
    for version in pending:
        with writing(db):
            migrations[version](db, migrator)
            _set_version(version)
        log.info("upgraded database schema to version %d", version)
    return current


def _set_version(version: int) -> None:
    _set_meta("schema_version", str(version))


def _set_meta(key: str, value: str) -> None:
    Meta.insert(key=key, value=value).on_conflict(
        conflict_target=[Meta.key], update={Meta.value: value}
    ).execute()


# --- the quote currency ---------------------------------------------------------------------------

#: Meta key of the currency every price of the database is in (``[market] convert``).
QUOTE_CURRENCY = "quote_currency"


class QuoteCurrencyError(SchemaError):
    """The database holds prices in another currency than ``[market] convert``."""


def recorded_quote_currency(db: Database) -> str | None:
    """The currency the database's prices are in: the one recorded in ``meta``; for a database of an
    uBot that did not record it yet, the currency of its newest snapshot; ``None`` for one without
    any price (any currency will do)."""
    if not db.table_exists(Meta._meta.table_name):
        return None
    row = Meta.get_or_none(Meta.key == QUOTE_CURRENCY)
    if row is not None:
        return row.value
    if not db.table_exists(SnapshotRecord._meta.table_name):
        return None
    newest = SnapshotRecord.select(SnapshotRecord.convert).order_by(SnapshotRecord.timestamp.desc()).first()
    return None if newest is None else newest.convert


def quote_currency_problem(db: Database, convert: str, shown_url: str) -> str | None:
    """The one line refusing ``convert`` on this database, or ``None`` when it fits."""
    recorded = recorded_quote_currency(db)
    if recorded is None or recorded == convert:
        return None
    return (
        f"database {shown_url} holds prices in {recorded} but [market] convert = {convert}: "
        f"mixing them would corrupt the candles and fire false alerts; set [market] convert = "
        f"{recorded} again, or use a new database (--db) for {convert}"
    )


def ensure_quote_currency(db: Database, convert: str, shown_url: str) -> None:
    """Record ``convert`` as the database's quote currency (at its first start, or the first start of
    this uBot on an older database); raise :class:`QuoteCurrencyError` when it holds another one."""
    problem = quote_currency_problem(db, convert, shown_url)
    if problem is not None:
        raise QuoteCurrencyError(problem)
    if Meta.get_or_none(Meta.key == QUOTE_CURRENCY) is None:
        with writing(db):
            _set_meta(QUOTE_CURRENCY, convert)
        log.info("database quote currency recorded: %s", convert)
