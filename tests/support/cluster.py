"""uBot's processes as a deployment starts them, for the tests of the roles and the benchmarks: a
private corner of a shared PostgreSQL and Redis, waiting for a started gateway to serve, an account
made through the API.

- :func:`private_space`: a PostgreSQL schema and a Redis key prefix of the caller's own (the database
  and the Redis server may be shared with other runs), removed at the end; :func:`private_schema`
  the schema alone (``tests/conftest.py``, ``bench/alerts.py``);
- :func:`wait_serving`: until a started ``run.py``'s ``/health`` answers 200 (it serves a snapshot);
- :func:`account`: a user signed up and logged in over HTTP, its bearer token.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import requests

from tests.support.waits import Running, wait_until

#: Seconds a request or a wait may take: only reached when something is about to fail.
TIMEOUT_S = 60.0
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Space:
    """``db_url``: the PostgreSQL URL narrowed to ``schema`` (every connection, a subprocess's too,
    sees only it); ``prefix``: the Redis key prefix (``[cluster] redis_prefix``)."""

    db_url: str
    schema: str
    prefix: str


def schema_url(postgres_url: str, schema: str) -> str:
    """``postgres_url`` with ``schema`` as its search path."""
    separator = "&" if "?" in postgres_url else "?"
    return f"{postgres_url}{separator}options={quote(f'-csearch_path={schema}')}"


@contextlib.contextmanager
def private_schema(postgres_url: str, name: str) -> Iterator[tuple[str, str]]:
    """A new schema in ``postgres_url`` (``name`` and a random suffix), dropped at the end:
    ``(postgres_url narrowed to it, its name)``."""
    import psycopg2

    schema = f"{name}_{uuid.uuid4().hex[:10]}"
    with psycopg2.connect(postgres_url) as admin, admin.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield schema_url(postgres_url, schema), schema
    finally:
        admin = psycopg2.connect(postgres_url)
        try:
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
        finally:
            admin.close()


@contextlib.contextmanager
def private_space(postgres_url: str, redis_url: str, name: str = "ubot_test") -> Iterator[Space]:
    """A new schema in ``postgres_url`` (:func:`private_schema`) and a new key prefix in
    ``redis_url`` (``name`` and a random suffix); at the end the schema is dropped and the prefix's
    keys deleted."""
    import redis

    prefix = f"{name.replace('_', '-')}-{uuid.uuid4().hex[:10]}"
    with private_schema(postgres_url, name) as (db_url, schema):
        try:
            yield Space(db_url, schema, prefix)
        finally:
            client = redis.Redis.from_url(redis_url)
            try:
                keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                if keys:
                    client.delete(*keys)
            finally:
                client.close()


def wait_serving(base: str, process: Running, what: str = "the gateway", timeout: float = TIMEOUT_S) -> None:
    """Until ``GET {base}/health`` answers 200; fails at once (with the end of its log) if
    ``process`` exits meanwhile."""
    wait_until(
        lambda: requests.get(base + "/health", timeout=5).status_code == 200,
        f"{what} to serve a snapshot",
        timeout,
        alive=process,
        ignoring=(requests.ConnectionError,),
    )


def account(base: str, username: str = "ada", password: str = PASSWORD) -> str:
    """A user signed up (``{username}@example.com``) and logged in through ``base``: its token."""
    created = requests.post(
        base + "/v1/users",
        json={"username": username, "email": f"{username}@example.com", "password": password},
        timeout=TIMEOUT_S,
    )
    assert created.status_code == 201, created.text
    session = requests.post(
        base + "/v1/sessions", json={"username": username, "password": password}, timeout=TIMEOUT_S
    )
    assert session.status_code == 201, session.text
    return session.json()["token"]
