"""The HTTP helpers the channels share: status classes, scrubbing (Retry-After: tests/test_retry_after.py)."""

from __future__ import annotations

import pytest

from ubot.notify.channels.http import one_line, scrub, status_class

NOW = 1764000000.0


@pytest.mark.parametrize(
    ("http", "expected"),
    [(200, "sent"), (201, "sent"), (204, "sent"), (301, "failed"), (400, "failed"), (401, "failed"),
     (403, "failed"), (404, "failed"), (408, "retry"), (425, "retry"), (429, "retry"), (500, "retry"),
     (502, "retry"), (503, "retry"), (599, "retry")],
)  # fmt: skip
def test_status_class(http, expected):
    assert status_class(http) == expected


def test_scrub():
    assert scrub("token abc in https://x/abc", ["abc", None, ""]) == "token *** in https://x/***"
    assert scrub("POST /bot123456:AA-b_c/sendMessage") == "POST /bot***/sendMessage"


def test_one_line():
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("x" * 300, 10) == "x" * 9 + "…"
