"""Schema version 10: a version-9 database is upgraded in place with the tables of packed candle
blocks, empty: its candles are kept and read as before (from the rows) until the packer packs them.
Run on SQLite, and on PostgreSQL with ``UBOT_TEST_DATABASE_URL``."""

from __future__ import annotations

from tests.models.test_schema_v9 import make_version_8, store_three_candles
from ubot.models.candle_blocks import BlockReader
from ubot.models.schema import SCHEMA_VERSION, ensure_schema, schema_drift, schema_version
from ubot.models.tables import CandleBlock, CandleBlockStale


def test_a_version_9_database_gets_the_block_tables_and_keeps_its_candles(empty) -> None:
    make_version_8(empty)
    assert ensure_schema(empty, target=9) == 8
    assert not empty.table_exists("candle_block")
    store_three_candles()

    assert ensure_schema(empty) == 9

    assert schema_version(empty) == SCHEMA_VERSION  # 10 here; 11 came later
    assert schema_drift(empty) == []
    assert CandleBlock.select().count() == 0 and CandleBlockStale.select().count() == 0
    ids, columns = BlockReader(empty).columns("1m", [90_001], 0, 86_400_000, ("close", "last_ts"))
    assert ids.tolist() == [90_001] * 3
    assert columns["close"].tolist() == [1.5, 2.5, 3.5]
    assert columns["last_ts"].tolist() == [59_000, 119_000, 179_000]
