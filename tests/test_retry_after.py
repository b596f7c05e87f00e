"""The one reading of ``Retry-After``: both RFC 9110 forms, the obsolete date forms, the clamps."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from ubot.retry_after import MAX_DELAY_S, retry_after_s

NOW = 1764000000.0  # Mon, 24 Nov 2025 16:00:00 GMT


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        # absent, blank, unreadable: None (the caller's own rule applies)
        (None, None),
        ("", None),
        ("   ", None),
        ("soon", None),
        ("inf", None),
        ("nan", None),
        ("-3", None),
        ("+5", None),
        ("1e3", None),
        ("0x10", None),
        ("1.", None),
        ("Mon, 31 Feb 2025 16:00:00 GMT", None),  # no such day
        ("Mon, 24 Nov 99999 16:00:00 GMT", None),  # year out of range
        # delay-seconds
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("1.5", 1.5),
        (str(int(MAX_DELAY_S)), MAX_DELAY_S),
        (str(int(MAX_DELAY_S) + 1), MAX_DELAY_S),  # clamped
        ("9" * 400, MAX_DELAY_S),  # a float too large to hold: clamped, not infinite
        # IMF-fixdate, the preferred form
        (formatdate(NOW + 90, usegmt=True), 90.0),
        ("Mon, 24 Nov 2025 16:00:30 GMT", 30.0),
        ("Mon, 24 Nov 2025 16:00:00 GMT", 0.0),
        (formatdate(NOW - 90, usegmt=True), 0.0),  # in the past: retry now, never negative
        ("Mon, 24 Nov 2025 15:00:00 GMT", 0.0),
        ("Fri, 01 Jan 2100 00:00:00 GMT", MAX_DELAY_S),  # far future: clamped
        # obsolete forms (RFC 850, asctime)
        ("Monday, 24-Nov-25 16:00:30 GMT", 30.0),
        ("Mon Nov 24 16:00:30 2025", 30.0),  # asctime carries no zone: UTC
        ("Mon Nov 24 15:59:30 2025", 0.0),
        # no zone, or an explicit offset
        ("Mon, 24 Nov 2025 16:00:30 -0000", 30.0),  # "-0000": no zone, read as UTC
        ("Mon, 24 Nov 2025 16:00:30", 30.0),
        ("Mon, 24 Nov 2025 15:59:30 -0000", 0.0),  # past and zone-less: still never negative
        ("Mon, 24 Nov 2025 18:00:30 +0200", 30.0),  # an explicit offset is honoured
        ("Mon, 24 Nov 2025 16:00:30 UTC", 30.0),
    ],
)
def test_retry_after_s(value, seconds):
    assert retry_after_s(value, NOW) == seconds
