"""docs/deploy.md and deploy/ cannot drift from run.py: every ``run.py`` command line in them parses
with run.py's own argument parser and its settings load; every setting they name (``[section]
option``, ``UBOT_<SECTION>_<OPTION>``) exists; compose.yaml is valid YAML (when PyYAML is there).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from ubot.config import OPTIONS

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("ubot_run", REPO / "run.py")
assert _spec is not None and _spec.loader is not None
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)  # run.py's own parser and settings loading
DOC = REPO / "docs" / "deploy.md"
DEPLOY = REPO / "deploy"
FILES = [DOC, *sorted(p for p in DEPLOY.rglob("*") if p.is_file())]
ROLES = {"engine", "scanner", "notifier", "gateway"}
SETTING = re.compile(r"\[([a-z_]+)\] ([a-z_]+)")
ENV = re.compile(r"\bUBOT_[A-Z0-9_]+")
KNOWN = {(o.section, o.name) for o in OPTIONS}
ENVS = {o.env for o in OPTIONS}


def command_lines() -> list[tuple[str, list[str]]]:
    """(where, the arguments after ``run.py``) of every line that runs run.py."""
    found = []
    for path in FILES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "run.py" not in line or line.lstrip().startswith(("#", "|")) or "`" in line:
                continue
            tail = line.split("run.py", 1)[1].split("#", 1)[0].strip().strip("\"'")
            # systemd's %i is the instance (the gateway's port)
            found.append((f"{path.relative_to(REPO)}:{number}", shlex.split(tail.replace("%i", "8081"))))
    return found


LINES = command_lines()


def test_the_docs_and_units_run_every_role() -> None:
    roles = {args[args.index("--role") + 1] for _, args in LINES if "--role" in args}
    assert roles == ROLES
    assert any("--workers" in args for _, args in LINES)


@pytest.mark.parametrize(("where", "args"), LINES, ids=[where for where, _ in LINES])
def test_each_command_line_parses_and_its_settings_load(where: str, args: list[str]) -> None:
    parsed = run.parse_args(args)
    # /etc/ubot/settings.ini and /etc/ubot/ubot.env are the deployment's: here the repository's
    # settings.ini, with deploy/ubot.env's database and Redis
    parsed.config = None
    parsed.db = parsed.db or "postgresql://ubot@10.0.0.1:5432/ubot"
    parsed.redis = parsed.redis or "redis://10.0.0.1:6379/0"
    settings = run.load(parsed)
    assert settings.cluster.role in ROLES, where


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(REPO)) for p in FILES])
def test_every_setting_named_exists(path: Path) -> None:
    text = path.read_text()
    named = set(SETTING.findall(text))
    assert named <= KNOWN, named - KNOWN
    assert set(ENV.findall(text)) <= ENVS, set(ENV.findall(text)) - ENVS


def test_the_compose_file_is_yaml_and_runs_run_py() -> None:
    yaml = pytest.importorskip("yaml")  # not a dependency: checked where it is installed
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    commands = [s["command"] for s in compose["services"].values() if "run.py" in str(s.get("command", ""))]
    assert len(commands) >= 4
    for line in commands:
        run.parse_args(shlex.split(line.split("run.py", 1)[1]))
    for service in compose["services"].values():
        assert set(service.get("environment") or {}) <= ENVS | {
            "POSTGRES_USER",
            "POSTGRES_PASSWORD",
            "POSTGRES_DB",
        }
