"""Bulk inserts without per-row round trips, for the pipeline's hot path.

peewee renders the statement once (so table and column names come from the models); the rows go
straight to the driver: SQLite's ``executemany`` over one prepared statement, and psycopg2's
``execute_values`` (multi-row ``VALUES`` pages) on PostgreSQL. Rendering ``insert_many`` in Python
cost ~10x more than that on PostgreSQL for a 5,000-coin snapshot (measured: 355 ms vs ~35 ms).
Both run inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from peewee import Field, Model

from ubot.models.db import database, is_sqlite


def insert_rows(
    model: type[Model],
    fields: Sequence[Field],
    rows: Sequence[tuple],
    conflict_target: Sequence[Field] = (),
    update: Sequence[Field] = (),
) -> None:
    """Insert ``rows`` (tuples ordered like ``fields``) into ``model``'s table.

    With ``conflict_target``, a row whose key already exists gets its ``update`` fields replaced.
    """
    if not rows:
        return
    query = model.insert({f: None for f in fields})
    if conflict_target:
        query = query.on_conflict(conflict_target=list(conflict_target), preserve=update)
    sql, _ = query.sql()
    if is_sqlite(database):
        database.cursor().executemany(sql, rows)
        return
    # PostgreSQL (psycopg2): one multi-row statement per page, rendered by the driver in C.
    from psycopg2.extras import execute_values

    one_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    if one_row not in sql:
        raise RuntimeError(f"unexpected INSERT rendering: {sql}")
    execute_values(database.cursor(), sql.replace(one_row, "%s", 1), rows, page_size=2000)
