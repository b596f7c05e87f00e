"""Who waits for whom on PostgreSQL. A test builds a moment by holding a lock in one session and
showing that another session's statement waits for it (``pg_blocking_pids``) before letting go:
that a race is decided one way is then a fact checked, not a guess about timing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from tests.support.waits import wait_until


def waiting_for(connection: Any, pid: int, application_name: str | None = None) -> list[str]:
    """The statements of the sessions waiting for a lock that session ``pid`` holds (only those whose
    ``application_name`` it is, when given). ``connection``: anything with a DB-API ``cursor()`` on
    the database (a psycopg2 connection, a peewee database), the holder's own session included.

    ``pg_stat_activity`` is read once per transaction; it is read anew here, so polling from inside
    a transaction (the holder's) sees the sessions that began waiting since."""
    sql = "SELECT query FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
    params: list[Any] = [pid]
    if application_name is not None:
        sql += " AND application_name = %s"
        params.append(application_name)
    cursor = connection.cursor()
    try:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]
    finally:
        cursor.close()


def backend_pid(connection: Any) -> int:
    """The pid of ``connection``'s session (the ``pid`` of :func:`waiting_for`)."""
    cursor = connection.cursor()
    try:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]
    finally:
        cursor.close()


def second_waits(
    db: Any, turn: AbstractContextManager, first: Callable[[], Any], second: Callable[[], Any]
) -> Any:
    """Two processes' writers at one moment, on threads with connections of their own: this thread
    enters ``turn`` (a lock held by its session), ``second`` starts on another thread and is shown
    waiting for it, then ``first`` runs inside the turn; once the turn ends ``second`` goes on. What
    ``second`` returned, or the exception it raised (returned, not raised). ``db``: a peewee database."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = second()
        except Exception as error:  # noqa: BLE001 - handed to the test
            outcome["result"] = error
        finally:
            db.close()  # this thread's connection

    with turn:
        me = backend_pid(db)
        thread = threading.Thread(target=run)
        thread.start()
        wait_until(lambda: waiting_for(db, me), "the second writer to wait for the first's turn")
        first()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return outcome["result"]
