"""``--role`` and ``--redis`` as a user gives them: every role but ``all`` refuses to start, with one
line, without PostgreSQL and Redis; ``run.py check`` says the role and whether Redis answers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.ports import refused_port
from tests.support.processes import EXIT_TIMEOUT_S, command, environment

POSTGRES_URL = os.environ.get("UBOT_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("UBOT_TEST_REDIS_URL")


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(*args),
        cwd=tmp_path,
        env=environment(tmp_path / "home", env),
        capture_output=True,
        text=True,
        timeout=EXIT_TIMEOUT_S,
    )


def one_line_refusal(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("ubot: ")
    return lines[0]


@pytest.mark.parametrize("role", ["engine", "gateway"])
def test_a_role_on_sqlite_is_refused_in_one_line(tmp_path, role) -> None:
    line = one_line_refusal(run(tmp_path, "--role", role, "--redis", "redis://127.0.0.1:1/0"))
    assert f"--role {role} needs PostgreSQL" in line
    assert not (tmp_path / "ubot.db").exists()


@pytest.mark.parametrize("role", ["engine", "scanner", "notifier", "gateway"])
def test_a_role_without_redis_is_refused_in_one_line(tmp_path, role) -> None:
    line = one_line_refusal(run(tmp_path, "--role", role, "--db", "postgresql://u@127.0.0.1:1/x"))
    assert line == (
        f"ubot: --role {role} needs Redis, for what travels between processes: set --redis "
        "redis://host:port/0 or [cluster] redis_url"
    )


@pytest.mark.parametrize("name", ["scanners", "notifiers"])
def test_role_all_refuses_external_scanners_or_notifiers_in_one_line(tmp_path, name) -> None:
    line = one_line_refusal(run(tmp_path, env={f"UBOT_CLUSTER_{name.upper()}": "external"}))
    assert line == (
        f"ubot: [cluster] {name} = external needs --role engine (with {name[:-1]} processes); "
        f"--role all runs everything itself: set [cluster] {name} = internal"
    )


def test_an_unknown_role_names_the_choices(tmp_path) -> None:
    line = one_line_refusal(run(tmp_path, "--role", "scanner-ish"))
    assert "[cluster] role; expected one of all, engine, scanner, notifier, gateway" in line


@pytest.mark.skipif(not POSTGRES_URL, reason="UBOT_TEST_POSTGRES_URL is not set")
def test_redis_that_does_not_answer_is_refused_in_one_line(tmp_path) -> None:
    with refused_port() as port:
        args = ("--role", "gateway", "--db", POSTGRES_URL, "--redis", f"redis://127.0.0.1:{port}/0")
        line = one_line_refusal(run(tmp_path, *args))  # type: ignore[arg-type]
        assert line.startswith(f"ubot: Redis redis://127.0.0.1:{port}/0 does not answer: ")
        checked = run(tmp_path, "check", *args)  # type: ignore[arg-type]
    assert checked.returncode == 2
    assert f"Redis redis://127.0.0.1:{port}/0 does not answer" in checked.stderr


@pytest.mark.skipif(not (POSTGRES_URL and REDIS_URL), reason="UBOT_TEST_POSTGRES_URL/REDIS_URL unset")
@pytest.mark.parametrize("role", ["engine", "scanner", "notifier", "gateway"])
def test_check_says_the_role_and_that_redis_answers(tmp_path, role) -> None:
    result = run(tmp_path, "check", "--role", role, "--db", POSTGRES_URL, "--redis", REDIS_URL)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stdout + result.stderr
    shown = dict(
        (part.strip() for part in line.split(":", 1))
        for line in result.stdout.splitlines()
        if line.startswith("  ")
    )
    assert shown["role"].startswith(f"{role} (")
    assert shown["redis"] == f"{REDIS_URL} (answers; keys under ubot:)"


@pytest.mark.skipif(not (POSTGRES_URL and REDIS_URL), reason="UBOT_TEST_POSTGRES_URL/REDIS_URL unset")
def test_a_gateway_on_a_database_without_the_schema_is_refused_in_one_line(tmp_path) -> None:
    """The engine creates and upgrades the schema; a gateway started first says so (two processes
    creating it at once would collide)."""
    import uuid
    from urllib.parse import quote

    import psycopg2

    schema = f"ubot_roles_{uuid.uuid4().hex[:10]}"
    with psycopg2.connect(POSTGRES_URL) as admin, admin.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{schema}"')
    url = f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"
    try:
        line = one_line_refusal(run(tmp_path, "--role", "gateway", "--db", url, "--redis", REDIS_URL))  # type: ignore[arg-type]
        assert line.endswith(
            "has no current uBot schema (empty): start an engine first (--role engine creates or upgrades it)"
        )
    finally:
        admin = psycopg2.connect(POSTGRES_URL)
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
