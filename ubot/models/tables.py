"""The schema: coins, snapshots, per-coin quotes, global metrics, candles, and a key/value meta table
(schema version 1); users, their sessions, settings and strategies (added in version 2); alerts, their
deliveries (the outbox) and each (strategy, coin)'s firing state (added in version 3); whether an
alert was raised by a replay (version 4); alerts grouped by (strategy, tick), grouped messages and
capped or cancelled deliveries, a strategy's pause reason (version 6); notifier claims and the shared pacing (version 7); verified destinations (version 8); the covering candle index (version 9); closed candles packed
in blocks for bulk reads (version 10).

Times are ``BIGINT`` epoch milliseconds (UTC). Numeric market values are double precision, ``NULL``
where CoinMarketCap sent null. Quotes and global metrics are raw history, pruned after the retention
period; candles are kept forever. The user tables belong to the UserManager actor alone
(queries in ``models/users.py``), the alert tables to the Notifier actor alone (``models/alerts.py``).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from peewee import (
    AutoField,
    BigIntegerField,
    BlobField,
    BooleanField,
    CharField,
    CompositeKey,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
    fn,
)

from ubot.models.db import database


class BaseModel(Model):
    class Meta:
        database = database
        legacy_table_names = False


class Meta(BaseModel):
    """Schema version and small pipeline state (e.g. the OHLC watermark)."""

    key = CharField(primary_key=True, max_length=64)
    value = TextField()


class Coin(BaseModel):
    id = IntegerField(primary_key=True)  # CoinMarketCap id
    symbol = CharField(max_length=64, index=True)
    name = CharField(max_length=200)
    slug = CharField(max_length=200)
    first_seen = BigIntegerField()


class SnapshotRecord(BaseModel):
    id = AutoField()
    timestamp = BigIntegerField(unique=True)  # status.timestamp of the listings response
    source = CharField(max_length=16)
    convert = CharField(max_length=16)
    coin_count = IntegerField()

    class Meta:
        table_name = "snapshot"


class Quote(BaseModel):
    snapshot = ForeignKeyField(SnapshotRecord, on_delete="CASCADE")
    coin = ForeignKeyField(Coin)
    ts = BigIntegerField()  # the quote's own last_updated
    rank = IntegerField(null=True)
    price = DoubleField()
    volume_24h = DoubleField(null=True)
    volume_change_24h = DoubleField(null=True)
    percent_change_1h = DoubleField(null=True)
    percent_change_24h = DoubleField(null=True)
    percent_change_7d = DoubleField(null=True)
    percent_change_30d = DoubleField(null=True)
    percent_change_60d = DoubleField(null=True)
    percent_change_90d = DoubleField(null=True)
    market_cap = DoubleField(null=True)
    market_cap_dominance = DoubleField(null=True)
    fully_diluted_market_cap = DoubleField(null=True)
    circulating_supply = DoubleField(null=True)
    total_supply = DoubleField(null=True)
    max_supply = DoubleField(null=True)
    num_market_pairs = DoubleField(null=True)

    class Meta:
        primary_key = CompositeKey("snapshot", "coin")
        indexes = ((("coin", "ts"), False),)


class GlobalMetric(BaseModel):
    snapshot = ForeignKeyField(SnapshotRecord, primary_key=True, on_delete="CASCADE")
    ts = BigIntegerField(index=True)
    btc_dominance = DoubleField(null=True)
    eth_dominance = DoubleField(null=True)
    active_cryptocurrencies = DoubleField(null=True)
    total_cryptocurrencies = DoubleField(null=True)
    active_market_pairs = DoubleField(null=True)
    active_exchanges = DoubleField(null=True)
    total_exchanges = DoubleField(null=True)
    total_market_cap = DoubleField(null=True)
    total_volume_24h = DoubleField(null=True)
    altcoin_market_cap = DoubleField(null=True)
    altcoin_volume_24h = DoubleField(null=True)
    defi_market_cap = DoubleField(null=True)
    defi_volume_24h = DoubleField(null=True)
    stablecoin_market_cap = DoubleField(null=True)
    stablecoin_volume_24h = DoubleField(null=True)
    derivatives_volume_24h = DoubleField(null=True)


class Candle(BaseModel):
    coin = ForeignKeyField(Coin)
    timeframe = CharField(max_length=4)
    open_time = BigIntegerField()
    open = DoubleField()
    high = DoubleField()
    low = DoubleField()
    close = DoubleField()
    first_ts = BigIntegerField()
    last_ts = BigIntegerField()
    count = IntegerField()

    class Meta:
        primary_key = CompositeKey("coin", "timeframe", "open_time")
        # Covering the reads of closes over time (dry runs, the Scanner's seeding): a coin's range
        # is read from the index alone, in order, instead of from table pages that the pipeline
        # fills one tick of every coin after the other (schema version 9).
        indexes = ((("coin", "timeframe", "open_time", "close", "last_ts"), False),)


#: Schema version 1: market history.
HISTORY_TABLES = (Meta, Coin, SnapshotRecord, Quote, GlobalMetric, Candle)


# --- users (schema version 2) ---------------------------------------------------------------


class JsonField(TextField):
    """A JSON document stored as text (lists of symbols, channels, indicators)."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def python_value(self, value: str | None) -> Any:
        return None if value is None else json.loads(value)


class User(BaseModel):
    id = AutoField()
    username = CharField(max_length=32)  # stored lower-case; unique on LOWER(username), below
    email = CharField(max_length=254)  # as typed; unique on LOWER(email), below
    password_hash = CharField(max_length=255)  # argon2id, PHC string format
    created_at = BigIntegerField()
    password_changed_at = BigIntegerField()
    # Failed-login throttling of this account (ubot/users/throttle.py): consecutive failures,
    # the time of the last one, and when the next attempt is allowed.
    failed_logins = IntegerField(default=0)
    last_failed_at = BigIntegerField(null=True)
    locked_until = BigIntegerField(null=True)


User.add_index(User.index(fn.LOWER(User.username), unique=True, name="user_username_lower"))
User.add_index(User.index(fn.LOWER(User.email), unique=True, name="user_email_lower"))


class Session(BaseModel):
    """A login. Only the SHA-256 of the bearer token is stored, never the token. ``kind``, the
    ``user_agent`` and the ``client`` address are what the login said (shown in the user's list of
    sessions); NULL for sessions started before schema version 14 recorded them."""

    id = AutoField()
    token_hash = CharField(max_length=64, unique=True)
    user = ForeignKeyField(User, on_delete="CASCADE", index=True)
    created_at = BigIntegerField()
    expires_at = BigIntegerField()
    revoked_at = BigIntegerField(null=True)
    last_seen_at = BigIntegerField()
    kind = CharField(max_length=8, null=True)  # "browser" (the cookie) or "program" (a bearer token)
    user_agent = CharField(max_length=256, null=True)
    client = CharField(max_length=64, null=True)  # the client's address at the login


class UserSettings(BaseModel):
    """Where and how to reach a user. ``NULL``: not configured."""

    user = ForeignKeyField(User, primary_key=True, on_delete="CASCADE")
    webhook_url = CharField(max_length=2048, null=True)
    webhook_secret = CharField(max_length=128, null=True)
    telegram_chat_id = CharField(max_length=64, null=True)
    sms_to = CharField(max_length=16, null=True)
    whatsapp_to = CharField(max_length=16, null=True)
    email_to = CharField(max_length=254, null=True)
    quiet_hours = CharField(max_length=11, null=True)  # "22:00-07:00", in `timezone`
    timezone = CharField(max_length=64, default="UTC")  # IANA name
    quote_currency = CharField(max_length=10, default="USD")
    # Schema version 12: until when (epoch ms) the user muted their alerts from the Telegram bot
    # (``/mute 2h``), or set as ``muted_until`` in the settings: deliveries raised before then are held
    # until then, like quiet hours. Written apart from the other settings (``SETTINGS_COLUMNS`` leaves
    # it out): a PATCH that does not name it keeps it.
    muted_until = BigIntegerField(null=True)


class Strategy(BaseModel):
    id = AutoField()
    user = ForeignKeyField(User, on_delete="CASCADE", index=True)
    name = CharField(max_length=64)
    condition = TextField()
    indicators = JsonField()  # derived from `condition`: ["rsi(14)", ...]
    timeframe = CharField(max_length=4)
    symbols = JsonField(null=True)  # ["BTC", "ETH"], or NULL when `top_n` is set
    top_n = IntegerField(null=True)
    channels = JsonField()  # ["telegram", "email"]
    frequency = CharField(max_length=24)
    cooldown_s = IntegerField()
    expires_at = BigIntegerField(null=True)
    enabled = BooleanField()
    created_at = BigIntegerField()
    updated_at = BigIntegerField()
    # The last runtime error of the condition (reported by the Scanner to the owner), and when (v3).
    last_error = TextField(null=True)
    last_error_at = BigIntegerField(null=True)
    # Why uBot disabled it by itself (schema version 6): it fired too often (``[notify]
    # pause_after_alerts``). Cleared when its owner enables it again.
    paused_reason = TextField(null=True)
    # Its message template (schema version 11), checked when saved: ``ubot/notify/templates.py``;
    # NULL: uBot's own words.
    template = TextField(null=True)

    class Meta:
        indexes = ((("user", "name"), True),)


#: Schema version 2: accounts, sessions, settings, strategies.
USER_TABLES = (User, Session, UserSettings, Strategy)


# --- alerts (schema version 3) --------------------------------------------------------------


class AlertRecord(BaseModel):
    """An alert as raised, self-contained: it keeps the strategy's name, condition and the values that
    made it fire, so the user's alert history survives the strategy (``ON DELETE SET NULL``); it
    goes with the user (``CASCADE``)."""

    id = AutoField()
    strategy = ForeignKeyField(Strategy, null=True, on_delete="SET NULL", index=True)
    user = ForeignKeyField(User, on_delete="CASCADE", index=False)  # (user, fired_at) below
    strategy_name = CharField(max_length=64)
    coin_id = IntegerField()  # CoinMarketCap id, as in `coin` (not a foreign key: history only)
    symbol = CharField(max_length=64)
    timeframe = CharField(max_length=4)
    fired_at = BigIntegerField()  # the snapshot's timestamp
    bar_open = BigIntegerField()  # open time of the strategy's candle it belongs to
    condition = TextField()
    values = JsonField()  # {"rsi(14)": 28.4, "price": 61234.5}
    subject = TextField()
    text = TextField()
    # Raised by a replay of recorded data (schema version 4): not a live alert, sent only when the
    # operator asked (--deliver).
    replayed = BooleanField(default=False)
    # The text of one SMS (schema version 5); empty for an alert written before: subject + text then.
    short = TextField(default="")
    # The first alert of its strategy's tick (schema version 6): the alerts a strategy raised in one
    # tick are sent as one message per destination, whose deliveries hang on that first alert.
    # NULL: the alert is the first (or alone).
    batch = BigIntegerField(null=True, index=True)

    class Meta:
        table_name = "alert"
        indexes = ((("user", "fired_at"), False),)


class Delivery(BaseModel):
    """The outbox: one row per (strategy, tick, channel), written with the alerts before anything is
    sent, on the first alert of the tick's batch (``alert.batch``).

    ``status``: ``pending`` (to send at ``next_attempt_at``), ``held`` (quiet hours: to send at
    ``next_attempt_at``, their end), ``sent``, ``failed`` (``detail`` says why, for the user),
    ``capped`` (never sent: an hourly cap was reached; the next message says so), ``cancelled``
    (the strategy was disabled or deleted before it went).
    Rows go with their alert (``CASCADE``), pruned after ``[notify] retention_days``.
    """

    id = AutoField()
    alert = ForeignKeyField(AlertRecord, on_delete="CASCADE", index=True)
    channel = CharField(max_length=16)
    target = CharField(max_length=2048)  # URL, chat id, phone number or e-mail address
    # The delivery's public id (schema version 5): 128 random bits in hex, the same on every attempt
    # (``X-Ubot-Delivery``). The webhook secret is not stored here: it is read from the user's
    # settings when the delivery is sent.
    key = CharField(max_length=32, default=lambda: secrets.token_hex(16))
    status = CharField(max_length=16)  # 8 until schema version 6
    attempts = IntegerField(default=0)
    next_attempt_at = BigIntegerField()
    detail = TextField(null=True)  # the last error, one line without secrets
    sent_at = BigIntegerField(null=True)
    created_at = BigIntegerField()
    # The message of a batch as sent on this channel (schema version 6), fitted to its limits; NULL:
    # the alert's own subject and text (a batch of one).
    subject = TextField(null=True)
    text = TextField(null=True)
    # Alerts not sent to this destination before this message (hourly caps), said in its text.
    skipped = IntegerField(default=0)
    # Schema version 7: the notifier process that claimed it, and until when (epoch ms) the
    # claim holds; another notifier takes it over once ``lease_until`` has passed. ``claimed_by`` stays
    # on a sent delivery (who sent it); ``lease_until`` is cleared when the attempt's result is written.
    claimed_by = CharField(max_length=64, null=True)
    lease_until = BigIntegerField(null=True)

    class Meta:
        indexes = ((("status", "next_attempt_at"), False),)


class AlertStateRecord(BaseModel):
    """Firing state of one (strategy, coin), so a restarted Scanner worker carries on where it was."""

    strategy = ForeignKeyField(Strategy, on_delete="CASCADE", index=False)  # the key's first column
    coin_id = IntegerField()
    active = BooleanField()
    last_fired_at = BigIntegerField(null=True)
    last_bar_open = BigIntegerField(null=True)

    class Meta:
        table_name = "alert_state"
        primary_key = CompositeKey("strategy", "coin_id")


#: Schema version 3: alerts, their deliveries (the outbox) and the firing states.
ALERT_TABLES = (AlertRecord, Delivery, AlertStateRecord)


class Pacing(BaseModel):
    """Schema version 7: per destination of a paced channel, when its next send may start (epoch ms),
    shared by every notifier process (``AlertStore.pace``). ``key``: SHA-256 of channel and
    destination, in hex (a destination may be a long URL; the key never shows it). Also the slots of
    the verification messages' throttle (``UserStore.send_slots``: when each send leaves its window),
    shared by every gateway process, under keys of their own."""

    key = CharField(primary_key=True, max_length=64)
    next_at = BigIntegerField()


#: Schema version 7: what the notifier processes share.
CLUSTER_TABLES = (Pacing,)


class Destination(BaseModel):
    """Schema version 8: whether the user proved they own a channel's target (``ubot/users/destinations.py``).

    One row per (user, channel), for the ``target`` it was made for: a row for another target (the
    address changed) counts as none, so a changed address is unverified. ``state``: ``pending`` (a
    code, link or request was sent) or ``verified``. ``code_hash``: SHA-256 of the code sent (never
    the code); ``token``: the Telegram deep link's start parameter (a chat is not known before);
    ``expires_at``: when the code or token stops working; ``attempts``: wrong codes given for it.
    """

    user = ForeignKeyField(User, on_delete="CASCADE", index=False, backref="+")
    channel = CharField(max_length=16)
    target = CharField(max_length=2048)
    state = CharField(max_length=16)
    code_hash = CharField(max_length=64, null=True)
    token = CharField(max_length=64, null=True, unique=True)
    expires_at = BigIntegerField(null=True)
    attempts = IntegerField(default=0)
    sent_at = BigIntegerField(null=True)
    verified_at = BigIntegerField(null=True)

    class Meta:
        primary_key = CompositeKey("user", "channel")


#: Schema version 8: verified destinations.
DESTINATION_TABLES = (Destination,)


class CandleBlock(BaseModel):
    """Schema version 10: a block of one coin's closed candles of one timeframe, packed for reading in
    bulk (``models/candle_blocks.py``): the candles opened in ``[start, start + block length)``, the
    same values as their ``candle`` rows, each column a little-endian array of ``candles`` numbers
    (float64 prices, int64 times and counts), in open-time order. Written by the block packer from the
    candle rows, never the other way; the dry run's columns first (a SQLite read of them stops early)."""

    coin = ForeignKeyField(Coin, index=False, backref="+")
    timeframe = CharField(max_length=4)
    start = BigIntegerField()
    candles = IntegerField()
    close = BlobField()
    last_ts = BlobField()
    open_time = BlobField()
    open = BlobField()
    high = BlobField()
    low = BlobField()
    first_ts = BlobField()
    count = BlobField()

    class Meta:
        table_name = "candle_block"
        primary_key = CompositeKey("coin", "timeframe", "start")


class CandleBlockStale(BaseModel):
    """Schema version 10: blocks to pack again because candle rows of their range were written after
    they were packed (a backfill merged into older candles): their ``candle_block`` row is deleted in
    the same transaction, so readers take the rows meanwhile."""

    coin = ForeignKeyField(Coin, index=False, backref="+")
    timeframe = CharField(max_length=4)
    start = BigIntegerField()

    class Meta:
        table_name = "candle_block_stale"
        primary_key = CompositeKey("coin", "timeframe", "start")


#: Schema version 10: closed candles packed in blocks.
BLOCK_TABLES = (CandleBlock, CandleBlockStale)


class ScanMark(BaseModel):
    """Schema version 13: per strategy, the last snapshot whose scan of it was written
    (``--role scanner``; ``AlertStore.record`` moves it forward in the transaction of the scan's
    alerts and firing states, and writes nothing of a scan that would not move it: the guard against
    two scanners scanning one strategy for one snapshot). No foreign key: a deleted strategy's row is
    one small row, and a scan's write need not look its strategies up."""

    strategy_id = BigIntegerField(primary_key=True)
    snapshot_id = BigIntegerField(index=True)

    class Meta:
        table_name = "scan_mark"


#: Schema version 13: what the scanner processes share.
SCANNER_TABLES = (ScanMark,)
ALL_TABLES = (
    HISTORY_TABLES
    + USER_TABLES
    + ALERT_TABLES
    + CLUSTER_TABLES
    + DESTINATION_TABLES
    + BLOCK_TABLES
    + SCANNER_TABLES
)
