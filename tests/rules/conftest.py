"""Shared helpers for the condition-language tests: an audit-hook recorder.

``sys.addaudithook`` sees every file open, import, exec, frame or code-object access the interpreter
performs. A hook cannot be removed, so one is installed for the session and only records while a
test asks it to.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

_recording: list[list[str]] = []


def _hook(event: str, args: tuple) -> None:
    if _recording:
        _recording[-1].append(event)


sys.addaudithook(_hook)

#: What evaluating a condition may legitimately trigger: asteval parses the compiled call tree.
ALLOWED_EVENTS = frozenset({"compile"})


@contextmanager
def audit_events() -> Iterator[list[str]]:
    """Record the audit events raised inside the block."""
    events: list[str] = []
    _recording.append(events)
    try:
        yield events
    finally:
        _recording.pop()


@pytest.fixture(scope="session")
def audited():
    """``with audited() as events: ...`` records audit events; see :data:`ALLOWED_EVENTS`."""
    return audit_events


@pytest.fixture(scope="session")
def allowed_events() -> frozenset[str]:
    return ALLOWED_EVENTS
