"""Reading a stored snapshot back as a :class:`~ubot.market.snapshot.Snapshot` (for the Scanner's
catch-up after a crash: a snapshot stored, but killed before it was scanned, is scanned at the next
start)."""

from __future__ import annotations

import numpy as np
from peewee import Database

from ubot.market.snapshot import GLOBAL_FIELDS, NUMERIC_FIELDS, GlobalMetrics, Snapshot
from ubot.models.tables import Coin, GlobalMetric, Quote, SnapshotRecord

_QUOTE_COLUMNS = [Quote.coin, Quote.ts] + [getattr(Quote, name) for name in NUMERIC_FIELDS]


class SnapshotReader:
    def __init__(self, db: Database) -> None:
        self._db = db

    def ids_after(self, snapshot_id: int) -> list[int]:
        """Ids of the snapshots stored after ``snapshot_id``, oldest first."""
        query = SnapshotRecord.select(SnapshotRecord.id).where(SnapshotRecord.id > snapshot_id)
        return [row[0] for row in query.order_by(SnapshotRecord.id).tuples()]

    def previous_timestamp(self, snapshot_id: int) -> int | None:
        row = self._previous(snapshot_id)
        return None if row is None else row.timestamp

    def previous_id(self, snapshot_id: int) -> int | None:
        """The id of the snapshot stored just before ``snapshot_id``, or None."""
        row = self._previous(snapshot_id)
        return None if row is None else row.id

    def _previous(self, snapshot_id: int) -> SnapshotRecord | None:
        return (
            SnapshotRecord.select(SnapshotRecord.id, SnapshotRecord.timestamp)
            .where(SnapshotRecord.id < snapshot_id)
            .order_by(SnapshotRecord.id.desc())
            .first()
        )

    def load(self, snapshot_id: int) -> Snapshot:
        """The snapshot as it was parsed when stored (coins in rank order, unranked last)."""
        record = SnapshotRecord.get_by_id(snapshot_id)
        rows = list(Quote.select(*_QUOTE_COLUMNS).where(Quote.snapshot == snapshot_id).tuples())
        rank_at = 2 + NUMERIC_FIELDS.index("rank")
        rows.sort(key=lambda r: (r[rank_at] is None, r[rank_at] or 0, r[0]))
        ids = [r[0] for r in rows]
        names = {c.id: c for c in Coin.select().where(Coin.id.in_(ids))} if ids else {}
        columns = {
            name: np.array([np.nan if r[2 + i] is None else r[2 + i] for r in rows], dtype=np.float64)
            for i, name in enumerate(NUMERIC_FIELDS)
        }
        metrics = GlobalMetric.get_or_none(GlobalMetric.snapshot == snapshot_id)
        global_metrics = (
            None
            if metrics is None
            else GlobalMetrics(metrics.ts, {name: getattr(metrics, name) for name in GLOBAL_FIELDS})
        )
        return Snapshot(
            timestamp_ms=record.timestamp,
            convert=record.convert,
            ids=np.array(ids, dtype=np.int64),
            symbols=tuple(names[i].symbol for i in ids),
            names=tuple(names[i].name for i in ids),
            slugs=tuple(names[i].slug for i in ids),
            quote_ts_ms=np.array([r[1] for r in rows], dtype=np.int64),
            columns=columns,
            global_metrics=global_metrics,
        )
