"""The schema: coins, snapshots, per-coin quotes, global metrics, candles, and a key/value meta table.

Times are ``BIGINT`` epoch milliseconds (UTC). Numeric market values are double precision, ``NULL``
where CoinMarketCap sent null. Quotes and global metrics are raw history, pruned after the retention
period; candles are kept forever.
"""

from __future__ import annotations

from peewee import (
    AutoField,
    BigIntegerField,
    CharField,
    CompositeKey,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
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


ALL_TABLES = (Meta, Coin, SnapshotRecord, Quote, GlobalMetric, Candle)
