"""``run.py --version`` and the LICENSE file, both in step with setup.cfg (the one source)."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import ubot

REPO = Path(__file__).resolve().parents[1]


def metadata() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(REPO / "setup.cfg", encoding="utf-8")
    return parser["metadata"]


def test_version_prints_the_version_of_setup_cfg(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "run.py"), "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"ubot {metadata()['version']}\n"
    assert result.stderr == ""


def test_the_package_version_is_the_installed_metadata() -> None:
    assert ubot.__version__ == metadata()["version"]


def test_license_matches_setup_cfg() -> None:
    assert metadata()["license"] == "MIT"
    assert metadata()["license_files"].strip() == "LICENSE"
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the uBot authors" in text
