"""The HTTP helpers the channels share: status classes, Retry-After, scrubbing."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from ubot.notify.channels.http import one_line, parse_retry_after, scrub, status_class

NOW = 1764000000.0


@pytest.mark.parametrize(
    ("http", "expected"),
    [(200, "sent"), (201, "sent"), (204, "sent"), (301, "failed"), (400, "failed"), (401, "failed"),
     (403, "failed"), (404, "failed"), (408, "retry"), (425, "retry"), (429, "retry"), (500, "retry"),
     (502, "retry"), (503, "retry"), (599, "retry")],
)  # fmt: skip
def test_status_class(http, expected):
    assert status_class(http) == expected


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("1.5", 1.5),
        ("-3", 0.0),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        (formatdate(NOW + 90, usegmt=True), 90.0),
        ("Mon, 24 Nov 2025 16:00:30 GMT", 30.0),
        (formatdate(NOW - 90, usegmt=True), 0.0),
        ("Mon, 24 Nov 2025 16:00:30 -0000", None),  # not an HTTP-date (no zone)
    ],
)
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, now=NOW) == seconds


def test_scrub():
    assert scrub("token abc in https://x/abc", ["abc", None, ""]) == "token *** in https://x/***"
    assert scrub("POST /bot123456:AA-b_c/sendMessage") == "POST /bot***/sendMessage"


def test_one_line():
    assert one_line("a\n  b\tc") == "a b c"
    assert one_line("x" * 300, 10) == "x" * 9 + "…"
