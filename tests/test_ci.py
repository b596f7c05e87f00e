"""``.ci/run`` runs the README's test command (its second command) as it is written there: install the
test extras, then the whole suite with the same pytest options, once on SQLite, once on PostgreSQL."""

from __future__ import annotations

import re

from tests.support.processes import REPO

README = (REPO / "README.md").read_text()
CI = (REPO / ".ci" / "run").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    commands = re.findall(r"```sh\n(.*?)\n```", README, re.S)
    steps = commands[1].split(" && ")
    assert steps[-1].startswith(".venv/bin/python -m pytest"), steps
    assert " && ".join(steps[:-1]) in CI.splitlines()
    suite_runs = [line for line in CI.splitlines() if "-m pytest" in line]
    assert suite_runs == [steps[-1], f'UBOT_TEST_DATABASE_URL="$UBOT_TEST_POSTGRES_URL" {steps[-1]}']
