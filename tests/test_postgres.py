"""PostgreSQL specifics: runs only when UBOT_TEST_POSTGRES_URL names a server (.ci/run sets it)."""

from __future__ import annotations

import os

import pytest

from ubot.market.candles import CandleBook
from ubot.market.simulated import SimulatedSource
from ubot.market.snapshot import parse_listings
from ubot.models.candle_store import CandleStore
from ubot.models.db import is_sqlite, open_database
from ubot.models.history import History
from ubot.models.schema import ensure_schema
from ubot.models.store import SnapshotWriter
from ubot.models.tables import ALL_TABLES, Quote

URL = os.environ.get("UBOT_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="UBOT_TEST_POSTGRES_URL is not set")


def test_snapshot_and_candles_round_trip_on_postgres() -> None:
    db = open_database(URL)
    try:
        assert not is_sqlite(db)
        db.drop_tables(ALL_TABLES, cascade=True, safe=True)
        ensure_schema(db)
        source = SimulatedSource(limit=300, seed=3)
        writer, candles, book = SnapshotWriter(db), CandleStore(db), CandleBook()
        snaps = []
        for minute in range(3):
            raw = source.documents(1_767_225_600_000 + minute * 60_000)
            snap = parse_listings(raw.listings, "USD", raw.global_metrics)
            snaps.append(snap)
            snapshot_id = writer.write(snap, "simulated")
            candles.save(book, book.apply(snap.ids, snap.quote_ts_ms, snap.column("price")), snapshot_id)
        assert Quote.select().count() == 900
        rows = History(db).candles(1, "1m", None, None, 10)  # the closed ones: the open one is in memory
        assert [r[0] for r in rows] == [1_767_225_600_000 + m * 60_000 for m in range(2)]
        assert rows[-1][4] == pytest.approx(float(snaps[1].column("price")[list(snaps[1].ids).index(1)]))
        assert book.open_candles("1m", [1]).close[0] == float(snap.column("price")[list(snap.ids).index(1)])
    finally:
        db.close()
