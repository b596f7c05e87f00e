"""Bulk writes without per-row round trips, for the pipeline's hot path.

Rows are handed over column-wise (numpy arrays, ``NaN`` for SQL ``NULL``; a scalar for a column that
is the same in every row). peewee renders the statements (so table and column names come from the
models); the rows go straight to the driver:

* SQLite: ``executemany`` over one prepared statement, the rows zipped from the columns as they are
  (SQLite stores NaN as ``NULL`` and a whole float in an integer column as an integer);
* PostgreSQL: ``COPY ... FROM STDIN`` in the binary format (psycopg2's ``copy_expert``), the buffer
  built by numpy: rows with the same ``NULL`` columns share one fixed layout, so each such group is
  one structured array. An upsert copies into a temporary table first, then moves the rows with one
  ``INSERT ... SELECT ... ON CONFLICT``.

Both run inside the caller's transaction.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from itertools import repeat

import numpy as np
from peewee import Field, ForeignKeyField, Model

from ubot.models.db import database, is_sqlite

#: PostgreSQL binary COPY layouts of the field types the hot path writes.
_BINARY = {"INT": ">i4", "AUTO": ">i4", "BIGINT": ">i8", "DOUBLE": ">f8"}
_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
_TRAILER = b"\xff\xff"

Column = np.ndarray | int | float | str


def insert_columns(model: type[Model], fields: Sequence[Field], columns: Sequence[Column]) -> None:
    """Insert the rows of ``columns`` (ordered like ``fields``) into ``model``'s table."""
    n = _length(columns)
    if not n:
        return
    if is_sqlite(database):
        database.cursor().executemany(_insert_sql(model, tuple(fields)), _sqlite_rows(columns, n))
        return
    _copy(_table(model), fields, columns, n)


def upsert_columns(
    model: type[Model],
    fields: Sequence[Field],
    columns: Sequence[Column],
    conflict_target: Sequence[Field],
    update: Sequence[Field],
) -> None:
    """Like :func:`insert_columns`; a row whose ``conflict_target`` key exists gets its ``update``
    fields replaced."""
    n = _length(columns)
    if not n:
        return
    sql = _insert_sql(model, tuple(fields), tuple(conflict_target), tuple(update))
    if is_sqlite(database):
        database.cursor().executemany(sql, _sqlite_rows(columns, n))
        return
    table = _table(model)
    staging = f"{model._meta.table_name}_staging"
    names = ", ".join(f'"{f.column_name}"' for f in fields)
    cursor = database.cursor()
    cursor.execute(f'CREATE TEMPORARY TABLE IF NOT EXISTS "{staging}" (LIKE {table}) ON COMMIT DELETE ROWS')
    cursor.execute(f'TRUNCATE "{staging}"')
    _copy(f'"{staging}"', fields, columns, n)
    into, _, rest = sql.partition(" VALUES ")
    conflict = rest[rest.index(" ON CONFLICT") :]
    cursor.execute(f'{into} SELECT {names} FROM "{staging}"{conflict}')


def insert_rows(
    model: type[Model],
    fields: Sequence[Field],
    rows: Sequence[tuple],
    conflict_target: Sequence[Field] = (),
    update: Sequence[Field] = (),
) -> None:
    """Insert ``rows`` (tuples ordered like ``fields``, ``None`` for ``NULL``) into ``model``'s table.

    With ``conflict_target``, a row whose key already exists gets its ``update`` fields replaced.
    On PostgreSQL the rows go as multi-row ``VALUES`` pages rendered by psycopg2 in C
    (``execute_values``): for rows that are not columns of numbers (the alert tables).
    """
    if not rows:
        return
    sql = _insert_sql(model, tuple(fields), tuple(conflict_target), tuple(update))
    if is_sqlite(database):
        database.cursor().executemany(sql, rows)
        return
    from psycopg2.extras import execute_values

    one_row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    if one_row not in sql:
        raise RuntimeError(f"unexpected INSERT rendering: {sql}")
    execute_values(database.cursor(), sql.replace(one_row, "%s", 1), rows, page_size=2000)


def _insert_sql(
    model: type[Model],
    fields: tuple[Field, ...],
    conflict_target: tuple[Field, ...] = (),
    update: tuple[Field, ...] = (),
) -> str:
    """peewee's ``INSERT`` of one row of ``fields`` (with its ``ON CONFLICT``), rendered once per
    statement and database kind: rendering it costs as much as a few hundred rows' binding."""
    key = (
        type(database.obj),
        model,
        *(tuple(f.column_name for f in part) for part in (fields, conflict_target, update)),
    )
    sql = _SQL.get(key)
    if sql is None:
        query = model.insert({f: None for f in fields})
        if conflict_target:
            query = query.on_conflict(conflict_target=list(conflict_target), preserve=list(update))
        sql = _SQL[key] = query.sql()[0]
    return sql


_SQL: dict[tuple, str] = {}


def _table(model: type[Model]) -> str:
    return f'"{model._meta.table_name}"'


def _length(columns: Sequence[Column]) -> int:
    lengths = {len(c) for c in columns if isinstance(c, np.ndarray)}
    if len(lengths) != 1:
        raise ValueError(f"columns of different lengths {sorted(lengths)}, or no array among them")
    return lengths.pop()


def _kind(field: Field) -> str:
    target = field.rel_field if isinstance(field, ForeignKeyField) else field
    return target.field_type


def _sqlite_rows(columns: Sequence[Column], n: int) -> Iterator[tuple]:
    """Row tuples for SQLite, straight from the columns: SQLite itself stores a NaN as ``NULL``, and a
    whole float as an integer in an integer column (its type affinity), so no column needs a pass
    of its own in Python. An iterator: ``executemany`` binds each row as it comes, so the rows are
    never all held at once (``zip`` then reuses one tuple, and the garbage collector has nothing
    new to track: building the list of 5,000 rows cost more than binding them)."""
    lists = [column.tolist() if isinstance(column, np.ndarray) else repeat(column, n) for column in columns]
    return zip(*lists)


def _copy(table: str, fields: Sequence[Field], columns: Sequence[Column], n: int) -> None:
    names = ", ".join(f'"{f.column_name}"' for f in fields)
    body = binary_copy([_kind(f) for f in fields], columns, n)
    database.cursor().copy_expert(f"COPY {table} ({names}) FROM STDIN WITH (FORMAT binary)", io.BytesIO(body))


def binary_copy(kinds: Sequence[str], columns: Sequence[Column], n: int) -> bytes:
    """PostgreSQL's binary COPY stream of ``n`` rows: field types ``kinds`` (peewee's: INT, BIGINT,
    DOUBLE, VARCHAR...), values ``columns`` (arrays, NaN for NULL; or one value for every row)."""
    width = len(kinds)
    values: list[np.ndarray] = []
    nulls = np.zeros((n, width), dtype=bool)
    layout = np.zeros(n, dtype=np.int64)  # rows of one layout: the same NULLs, the same text lengths
    for j, (kind, column) in enumerate(zip(kinds, columns, strict=True)):
        if not isinstance(column, np.ndarray):  # the same value in every row
            column = np.full(n, column)
        if column.dtype.kind in "USO":  # text: UTF-8 bytes, their length part of the layout
            column = np.char.encode(column.astype(str), "utf-8")
            layout = layout * 256 + np.char.str_len(column)
        elif kind in _BINARY:
            if column.dtype.kind == "f":
                nulls[:, j] = np.isnan(column)
                column = np.where(nulls[:, j], 0, column)
            column = column.astype(_BINARY[kind])
        else:
            raise TypeError(f"no binary COPY layout for {kind} columns")
        values.append(column)
    if nulls.any():
        layout = layout * (1 << width) + (nulls * (1 << np.arange(width, dtype=np.int64))).sum(axis=1)
    parts = [_HEADER]
    for key in np.unique(layout).tolist():
        rows = np.flatnonzero(layout == key)
        first = rows[0]
        dtype = [("count", ">i2")]
        for j, column in enumerate(values):
            dtype.append((f"l{j}", ">i4"))
            if not nulls[first, j]:
                fmt = f"S{len(column[first])}" if column.dtype.kind == "S" else column.dtype
                dtype.append((f"v{j}", fmt))
        records = np.empty(len(rows), dtype=dtype)
        records["count"] = width
        for j, column in enumerate(values):
            if nulls[first, j]:
                records[f"l{j}"] = -1
            else:
                records[f"l{j}"] = records.dtype[f"v{j}"].itemsize
                records[f"v{j}"] = column[rows]
        parts.append(records.tobytes())
    parts.append(_TRAILER)
    return b"".join(parts)
