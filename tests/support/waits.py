"""The one way a test waits for something another thread or process does: poll a condition until it
holds, with a deadline that is only reached when the test is about to fail.

It is not a sleep standing in for synchronisation: the condition is the fact the test needs (a row
is stored, ``/health`` says so, a request arrived), and the wait ends as soon as it holds. Where a
message or an event can be awaited directly (an actor's answer, ``threading.Event.wait``), do that.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

T = TypeVar("T")

#: Seconds before a wait gives up: generous, since it is only reached by a failing test.
TIMEOUT_S = 30.0
#: Seconds between two checks of the condition.
INTERVAL_S = 0.005


class Running(Protocol):
    """A subprocess a wait also watches: once it has exited, waiting longer is pointless."""

    @property
    def proc(self) -> subprocess.Popen: ...

    @property
    def log(self) -> str:
        """What it wrote so far."""
        ...


def wait_until(
    condition: Callable[[], T],
    what: str,
    timeout: float = TIMEOUT_S,
    *,
    alive: Running | None = None,
    ignoring: tuple[type[BaseException], ...] = (),
    interval: float | Callable[[], float] = INTERVAL_S,
) -> T:
    """Call ``condition`` until it returns something truthy, and return that.

    Fails (``AssertionError`` saying it was waiting for ``what``) after ``timeout`` seconds, or at
    once if the process ``alive`` exits meanwhile; the failure shows the end of its log. An
    exception of a type in ``ignoring`` counts as "not yet" (a server not listening yet); the last
    one is shown if time runs out. ``interval``: seconds between two checks, or a function giving
    them (a random pause, to sample a process at varied moments).
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = condition()
        except ignoring as error:
            last_error, value = error, None
        else:
            last_error = None
        if value:
            return value
        if alive is not None and alive.proc.poll() is not None:
            code = alive.proc.returncode
            raise AssertionError(f"the process exited ({code}) while waiting for {what}{_tail(alive)}")
        if time.monotonic() > deadline:
            error = f" (last: {last_error!r})" if last_error is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{error}{_tail(alive)}")
        time.sleep(interval() if callable(interval) else interval)


def _tail(alive: Running | None, lines: int = 40) -> str:
    if alive is None:
        return ""
    return ":\n" + "\n".join(alive.log.splitlines()[-lines:])
