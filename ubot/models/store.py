"""Writing snapshots: each one in a single transaction, all of it or none of it; and pruning.

This is the logic behind the Store actor, usable (and tested) without any thread.
"""

from __future__ import annotations

import numpy as np
from peewee import Database

from ubot.market.snapshot import GLOBAL_FIELDS, NUMERIC_FIELDS, Snapshot
from ubot.models.bulk import insert_columns, insert_rows, upsert_columns
from ubot.models.db import is_sqlite, writing
from ubot.models.tables import Coin, GlobalMetric, Quote, SnapshotRecord

_QUOTE_FIELDS = [Quote.snapshot, Quote.coin, Quote.ts] + [getattr(Quote, name) for name in NUMERIC_FIELDS]
_GLOBAL_FIELDS = [GlobalMetric.snapshot, GlobalMetric.ts] + [
    getattr(GlobalMetric, name) for name in GLOBAL_FIELDS
]
_COIN_FIELDS = [Coin.id, Coin.symbol, Coin.name, Coin.slug, Coin.first_seen]


class SnapshotWriter:
    """Persists snapshots. Keeps which coins the database already knows, to write only changes."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._coins: dict[int, tuple[str, str, str]] | None = None
        #: The coin list of the last snapshot written (ids, symbols, names, slugs): many snapshots
        #: repeat it, and comparing whole tuples is cheaper still than looking every coin up.
        self._last_list: tuple | None = None

    def _known_coins(self) -> dict[int, tuple[str, str, str]]:
        if self._coins is None:
            query = Coin.select(Coin.id, Coin.symbol, Coin.name, Coin.slug).tuples()
            self._coins = {row[0]: row[1:] for row in query}
        return self._coins

    def write(self, snap: Snapshot, source: str) -> int | None:
        """Store ``snap``; return its id, or ``None`` when a snapshot with its timestamp exists."""
        known = self._known_coins()
        coin_list = (snap.ids.tobytes(), snap.symbols, snap.names, snap.slugs)
        changed = []
        if coin_list != self._last_list:
            ids = snap.ids.tolist()
            texts = list(zip(snap.symbols, snap.names, snap.slugs, strict=True))
            # The same coins in another order (ranks moved): one comparison of whole lists, in C.
            if list(map(known.get, ids)) != texts:
                for coin_id, text in zip(ids, texts, strict=True):
                    if known.get(coin_id) != text:
                        changed.append((coin_id, *text, snap.timestamp_ms))
        with writing(self._db):
            exists = (
                SnapshotRecord.select(SnapshotRecord.id)
                .where(SnapshotRecord.timestamp == snap.timestamp_ms)
                .exists()
            )
            if exists:
                return None
            if changed:
                upsert_columns(
                    Coin,
                    _COIN_FIELDS,
                    [np.array(column) for column in zip(*changed, strict=True)],
                    conflict_target=[Coin.id],
                    update=[Coin.symbol, Coin.name, Coin.slug],
                )
            snapshot_id = SnapshotRecord.insert(
                timestamp=snap.timestamp_ms,
                source=source,
                convert=snap.convert,
                coin_count=len(snap),
            ).execute()
            insert_columns(Quote, _QUOTE_FIELDS, _by_coin(snap.ids, self.quote_columns(snapshot_id, snap)))
            if snap.global_metrics is not None:
                values = snap.global_metrics.values
                row = (snapshot_id, snap.global_metrics.timestamp_ms) + tuple(
                    values.get(name) for name in GLOBAL_FIELDS
                )
                insert_rows(GlobalMetric, _GLOBAL_FIELDS, [row])
        # Only after the commit: a rolled-back transaction must not poison the cache.
        for coin_id, symbol, name, slug, _ in changed:
            known[coin_id] = (symbol, name, slug)
        self._last_list = coin_list
        return snapshot_id

    @staticmethod
    def quote_columns(snapshot_id: int, snap: Snapshot) -> list:
        """The quote rows of ``snap`` column-wise, ordered like the quote fields (NaN for NULL)."""
        return [snapshot_id, snap.ids, snap.quote_ts_ms, *(snap.column(name) for name in NUMERIC_FIELDS)]

    def checkpoint(self) -> None:
        """Copy the SQLite write-ahead log into the database file without blocking anyone.

        Called by the Store actor once a snapshot has been handed on, so the copy (which releases
        the GIL) overlaps the next stage instead of landing inside some later commit. A no-op on
        PostgreSQL.
        """
        if is_sqlite(self._db):
            self._db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def prune(self, older_than_ms: int) -> int:
        """Delete raw quotes and global metrics of snapshots older than ``older_than_ms``.

        Candles are kept. Returns the number of snapshots pruned.
        """
        old = SnapshotRecord.select(SnapshotRecord.id).where(SnapshotRecord.timestamp < older_than_ms)
        with writing(self._db):
            Quote.delete().where(Quote.snapshot.in_(old)).execute()
            GlobalMetric.delete().where(GlobalMetric.snapshot.in_(old)).execute()
            return SnapshotRecord.delete().where(SnapshotRecord.timestamp < older_than_ms).execute()


def _by_coin(ids: np.ndarray, columns: list) -> list:
    """``columns`` with their rows in coin id order: each index on (coin, ...) is then written in
    key order, one page after the next, instead of at 5,000 scattered places (a fifth less time
    per snapshot on SQLite). The order of a snapshot's rows means nothing to any reader."""
    order = np.argsort(ids, kind="stable")
    return [column[order] if isinstance(column, np.ndarray) else column for column in columns]
