"""The services of one pytest-xdist worker (``-n N``: processes ``gw0``, ``gw1``, …).

Workers run tests at the same time, so the PostgreSQL database named by ``UBOT_TEST_POSTGRES_URL`` /
``UBOT_TEST_DATABASE_URL`` is one per worker: ``<database>_gw0``, ``<database>_gw1``, … on the same
server, created when missing and kept for the next run (a test's own schema inside it is dropped by
its fixture). Tests read those variables after ``tests/conftest.py`` has pointed them at the worker's
database, and pass them on to the ``run.py`` processes they start (``--db``).

What costs more to make than a test takes (the browser tests' stored market history) is made once
per run, by whichever worker asks first, in a directory all of them share (:func:`made_once`).

Redis needs nothing per worker: every test that writes to the shared server uses a key prefix of its
own (``tests/bus/conftest.py``, ``UBOT_CLUSTER_REDIS_PREFIX`` in tests/test_roles_cluster.py), and
the servers a test stops and starts are its own (``tests/support/own_redis.py``). Ports are picked
free by the OS (``tests/support/ports.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from collections.abc import Callable, MutableMapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

#: The worker's name (``gw0``, ``gw1``, …); unset without ``-n``.
WORKER_VARIABLE = "PYTEST_XDIST_WORKER"
#: The variables naming a PostgreSQL database, each pointed at the worker's own.
POSTGRES_VARIABLES = ("UBOT_TEST_POSTGRES_URL", "UBOT_TEST_DATABASE_URL")


def worker_database_url(url: str, worker: str) -> str:
    """``url`` with its database name followed by ``_<worker>`` (``…/test`` → ``…/test_gw0``)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or "/" in name:
        raise ValueError(f"a PostgreSQL URL naming a database was expected, not {url!r}")
    return urlunsplit(parts._replace(path=f"/{name}_{worker}"))


def create_database(admin_url: str, url: str) -> None:
    """Create the database ``url`` names, if missing, over a connection to ``admin_url`` (a database
    of the same server that exists)."""
    import psycopg2
    import psycopg2.errors
    from psycopg2 import sql

    name = urlsplit(url).path.lstrip("/")
    admin = psycopg2.connect(admin_url)
    try:
        admin.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with admin.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cursor.fetchone() is None:
                # (another run may create it meanwhile)
                with contextlib.suppress(psycopg2.errors.DuplicateDatabase, psycopg2.errors.UniqueViolation):
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        admin.close()


def use_worker_databases(worker: str, environ: MutableMapping[str, str] = os.environ) -> None:
    """Point every variable of :data:`POSTGRES_VARIABLES` that is set at the worker's own database,
    creating it when missing."""
    made: dict[str, str] = {}
    for variable in POSTGRES_VARIABLES:
        url = environ.get(variable)
        if not url:
            continue
        if url not in made:
            made[url] = worker_database_url(url, worker)
            create_database(url, made[url])
        environ[variable] = made[url]


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """The directory ``name`` of this test run, filled by ``make(directory)`` the first time any
    worker asks for it; the others wait for that (a lock on a file beside it), then use it as made.
    Without xdist, simply a directory of the run's own, made here."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get(WORKER_VARIABLE):
        base = base.parent  # the run's directory, above each worker's own (``popen-gw0``, …)
    directory = base / name
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        done = base / f"{name}.made"
        if not done.exists():
            if directory.exists():  # a worker that failed half-way: start again
                shutil.rmtree(directory)
            directory.mkdir()
            make(directory)
            done.touch()
    return directory
