"""An empty database at the current schema for each test, made cheaply (the ``db`` fixture,
tests/conftest.py).

Creating the schema (some forty tables and their indexes) is most of a small test's time: ~50 ms on
SQLite and ~0.5 s on PostgreSQL (dropping and creating every table), for each of about a thousand
tests. So it is made once per test process and then reused as it is, never assumed:

- SQLite: the schema is created once in a template file, which each test's database starts as a copy
  of (a file copy: identical pages, the WAL mode in the header).
- PostgreSQL (one schema shared by the run's tests, tests/conftest.py ``postgres_url``): after
  creating it, its definition is fingerprinted (columns, types, defaults, indexes, constraints from
  the catalogue). A later test finds it emptied with ``DELETE`` and its sequences restarted, and
  the rows the creation wrote (the schema version) put back, if the fingerprint is unchanged; a test
  that migrated, altered or dropped anything leaves a different fingerprint, and the next one gets
  the schema dropped and created again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from peewee import Database, sort_models

from ubot.models.db import is_sqlite, open_database
from ubot.models.schema import ensure_schema
from ubot.models.tables import ALL_TABLES, Meta

#: The definition of the current schema: one digest of what ``pg_catalog`` says of its relations.
FINGERPRINT = """
SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM (
  SELECT c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod) || ':'
         || a.attnotnull || ':' || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ':' || c.relkind::text AS x
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
  WHERE c.relnamespace = current_schema()::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
  WHERE c.relnamespace = current_schema()::regnamespace
  UNION ALL
  SELECT conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
  WHERE connamespace = current_schema()::regnamespace
  UNION ALL
  SELECT tgrelid::regclass::text || ' ' || tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  WHERE c.relnamespace = current_schema()::regnamespace AND NOT t.tgisinternal
) s
"""
#: One ``setval`` per sequence of the current schema, restarting it as a new one starts.
RESTART_SEQUENCES = """
SELECT string_agg(format('SELECT setval(%%L, 1, false)', s.oid::regclass), '; ')
FROM pg_class s WHERE s.relkind = 'S' AND s.relnamespace = current_schema()::regnamespace
"""

#: Per PostgreSQL schema: (its fingerprint just after creation, the Meta rows creation wrote).
_created: dict[str, tuple[str, list[tuple]]] = {}
#: The SQLite template of this process (see :func:`sqlite_database`).
_template: list[Path] = []


def sqlite_database(path: Path, templates: Path) -> None:
    """Make ``path`` an SQLite database at the current schema, holding nothing: a copy of a template
    made once, in ``templates``, by this process."""
    if not _template:
        template = templates / "schema-template.db"
        made = open_database(f"sqlite:///{template}")
        ensure_schema(made)
        made.close()  # the last connection: the WAL is checkpointed into the file and removed
        _template.append(template)
    shutil.copyfile(_template[0], path)


def reset(db: Database) -> None:
    """Bring ``db`` to an empty schema at the current version (PostgreSQL is shared between tests);
    on SQLite, a database made by :func:`sqlite_database` is that already."""
    if is_sqlite(db):
        ensure_schema(db)
        return
    schema = db.execute_sql("SELECT current_schema()").fetchone()[0]
    created = _created.get(schema)
    if created is not None and db.execute_sql(FINGERPRINT).fetchone()[0] == created[0]:
        with db.atomic():
            for model in reversed(sort_models(ALL_TABLES)):  # those referring first
                model.delete().execute()
            restart = db.execute_sql(RESTART_SEQUENCES).fetchone()[0]
            if restart:
                db.execute_sql(restart)
            if created[1]:
                Meta.insert_many(created[1], fields=[Meta.key, Meta.value]).execute()
        return
    db.drop_tables(ALL_TABLES, cascade=True, safe=True)
    ensure_schema(db)
    _created[schema] = (
        db.execute_sql(FINGERPRINT).fetchone()[0],
        list(Meta.select(Meta.key, Meta.value).tuples()),
    )
