"""Schema version 9: a version-8 database is upgraded in place with the index of ``candle`` covering
(coin, timeframe, open time, close, last quote time); its candles are kept, and on SQLite a dry run's
read of a coin's closes is answered from that index alone. Run on SQLite, and on PostgreSQL with
``UBOT_TEST_DATABASE_URL``."""

from __future__ import annotations

from peewee import Database

from tests.models.test_schema_v6 import make_version_5
from ubot.models.candle_store import CANDLE_FIELDS
from ubot.models.db import is_sqlite
from ubot.models.schema import SCHEMA_VERSION, ensure_schema, schema_version
from ubot.models.tables import Candle, Coin

COVERING = ["coin_id", "timeframe", "open_time", "close", "last_ts"]
INDEX = "candle_" + "_".join(COVERING)


def make_version_8(db: Database) -> None:
    make_version_5(db)
    assert ensure_schema(db, target=8) == 5
    # The old versions are built from today's models: a real version-8 database has no such index.
    db.execute_sql(f"DROP INDEX {INDEX}")


def store_three_candles() -> None:
    """Coin 90001's 1m candles of minutes 0, 1 and 2: closes 1.5, 2.5, 3.5, last quotes at :59."""
    Coin.insert(id=90_001, symbol="XBC", name="Example", slug="example", first_seen=0).execute()
    Candle.insert_many(
        [
            (90_001, "1m", t * 60_000, 1.0, 2.0, 0.5, 1.5 + t, t * 60_000, t * 60_000 + 59_000, 3)
            for t in range(3)
        ],
        fields=CANDLE_FIELDS,
    ).execute()


def test_a_version_8_database_gets_the_covering_index_and_keeps_its_candles(empty) -> None:
    make_version_8(empty)
    assert COVERING not in [i.columns for i in empty.get_indexes("candle")]
    store_three_candles()

    assert ensure_schema(empty, target=9) == 8

    assert schema_version(empty) == 9 <= SCHEMA_VERSION
    assert COVERING in [i.columns for i in empty.get_indexes("candle")]
    rows = list(
        Candle.select(Candle.close, Candle.last_ts)
        .where(Candle.coin == 90_001)
        .order_by(Candle.open_time)
        .tuples()
    )
    assert rows == [(1.5, 59_000), (2.5, 119_000), (3.5, 179_000)]
    if is_sqlite(empty):
        sql, params = (
            Candle.select(Candle.close, Candle.last_ts)
            .where((Candle.coin == 90_001) & (Candle.timeframe == "1m") & (Candle.open_time >= 0))
            .order_by(Candle.open_time)
            .sql()
        )
        plan = " ".join(str(row) for row in empty.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params))
        assert f"COVERING INDEX {INDEX}" in plan
