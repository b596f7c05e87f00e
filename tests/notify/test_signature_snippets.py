"""The verification snippets of docs/alerts.md, run against uBot's own signer: the Python one executed
here, the JavaScript one with ``node`` (skipped, saying so, on a machine without node). Each must accept
a fresh signature and refuse a replay (a timestamp older than 5 minutes), another body, another secret
and a forged timestamp."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ubot.notify.channels.webhook import TOLERANCE_S, encode_payload, sign

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"
SECRET = "whsec-0123456789abcdef"
BODY = encode_payload({"id": 42, "symbol": "BTC", "name": "Bitcoin", "note": "fünf €"})


def snippet(language: str) -> str:
    match = re.search(rf"<!-- verify: {language} -->\n```{language}\n(.*?)\n```", DOC.read_text(), re.DOTALL)
    assert match, f"docs/alerts.md has no {language} verification snippet"
    return match.group(1)


def cases() -> list[tuple[str, str, bytes, bool]]:
    """(secret, header, body, accepted) made with the real signer, at the time of the test."""
    now = int(time.time())
    fresh = sign(SECRET, now, BODY)
    forged = fresh.replace(f"t={now}", f"t={now + 1}")
    return [
        (SECRET, fresh, BODY, True),
        (SECRET, sign(SECRET, now - TOLERANCE_S + 30, BODY), BODY, True),
        (SECRET, sign(SECRET, now - TOLERANCE_S - 60, BODY), BODY, False),  # replayed 6 minutes later
        (SECRET, sign(SECRET, now + TOLERANCE_S + 60, BODY), BODY, False),  # from the future
        (SECRET, fresh, BODY + b" ", False),
        ("another-secret-0123456", fresh, BODY, False),
        (SECRET, forged, BODY, False),  # the time moved without the secret
        (SECRET, "sha256=" + fresh.split("v1=")[1], BODY, False),  # the old format
        (SECRET, "", BODY, False),
    ]


def test_the_python_snippet_verifies_the_real_signature() -> None:
    scope: dict = {}
    exec(compile(snippet("python"), str(DOC), "exec"), scope)  # noqa: S102 - our own documentation
    verify = scope["verify_ubot"]
    results = [verify(secret, header, body) for secret, header, body, _ in cases()]
    assert results == [accepted for *_, accepted in cases()]


def test_the_javascript_snippet_verifies_the_real_signature(tmp_path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript snippet is not run")
    given = [
        {"secret": secret, "header": header, "body": body.decode("utf-8"), "accepted": accepted}
        for secret, header, body, accepted in cases()
    ]
    script = tmp_path / "verify.js"
    script.write_text(
        snippet("javascript")
        + "\nconst cases = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));\n"
        + "console.log(JSON.stringify(cases.map((c) => verifyUbot(c.secret, c.header, Buffer.from(c.body, 'utf8')))));\n"
    )
    run = subprocess.run(
        [node, str(script)], input=json.dumps(given), capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == [c["accepted"] for c in given]
