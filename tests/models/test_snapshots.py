"""A stored snapshot read back equals the one that was stored."""

from __future__ import annotations

import numpy as np

from tests.support.market import market
from ubot.models.snapshots import SnapshotReader
from ubot.models.store import SnapshotWriter

T0 = 1_729_036_800_000


def stored(db, at_ms: int):
    snap = market(at_ms, limit=30, seed=3)
    return snap, SnapshotWriter(db).write(snap, "simulated")


def test_a_snapshot_reads_back_as_stored(db) -> None:
    first, first_id = stored(db, T0)
    second, second_id = stored(db, T0 + 60_000)
    reader = SnapshotReader(db)
    back = reader.load(second_id)
    assert back.timestamp_ms == second.timestamp_ms and back.convert == "USD"
    order = np.argsort(second.column("rank"), kind="stable")
    assert back.ids.tolist() == second.ids[order].tolist()
    assert back.symbols == tuple(second.symbols[i] for i in order)
    for name, column in second.columns.items():
        np.testing.assert_array_equal(back.column(name), column[order], err_msg=name)
    assert back.global_metrics.values == second.global_metrics.values
    assert reader.ids_after(first_id) == [second_id] and reader.ids_after(second_id) == []
    assert reader.previous_timestamp(second_id) == first.timestamp_ms
    assert reader.previous_timestamp(first_id) is None
