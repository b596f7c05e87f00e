"""Subprocesses of the tests: ``run.py`` as a user starts it, in the test's own directory and
environment, its output in a log file; killed at the end if a test left it running."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN = str(REPO / "run.py")
SETTINGS = str(REPO / "settings.ini")
#: Seconds a process gets to exit: only reached when a test is about to fail.
EXIT_TIMEOUT_S = 30.0


def command(*args: str, config: bool = True) -> list[str]:
    """``python run.py [--config settings.ini] args``."""
    return [sys.executable, RUN, *(["--config", SETTINGS] if config else []), *args]


def environment(home: Path, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """This process's environment without any uBot setting, ``HOME`` at ``home``; then ``extra``
    (a ``None`` value leaves that variable unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UBOT_") and k != "XDG_RUNTIME_DIR"}
    env["HOME"] = str(home)
    env.update(extra or {})
    return {name: value for name, value in env.items() if value is not None}


@dataclass
class Process:
    """A started subprocess whose output goes to ``log_path``."""

    proc: subprocess.Popen
    log_path: Path
    stopped_in_s: float | None = None  # from the stop signal (or the wait) to the exit

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.splitlines()[-lines:])

    def wait_exit(self, timeout: float = EXIT_TIMEOUT_S, started: float | None = None) -> int:
        """Wait for the exit; its code. Fails with the end of the log after ``timeout`` s."""
        started = time.monotonic() if started is None else started
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the process did not exit within {timeout:g} s:\n{self.tail()}") from None
        self.stopped_in_s = time.monotonic() - started
        return code

    def close(self) -> None:
        """Make sure nothing is left running (a failed test): SIGKILL its process group if it
        has one of its own, else the process; then reap it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(self.proc.pid) == self.proc.pid:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                else:
                    self.proc.kill()
            self.proc.wait(timeout=EXIT_TIMEOUT_S)


def launch(
    args: list[str],
    log_path: Path,
    *,
    cwd: Path,
    env: Mapping[str, str],
    new_session: bool = False,
) -> Process:
    """Start ``args`` in ``cwd`` with exactly ``env``, stdout and stderr into ``log_path``; with
    ``new_session``, in a process group of its own (so :meth:`Process.close` kills its children)."""
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
    return Process(proc, log_path)
