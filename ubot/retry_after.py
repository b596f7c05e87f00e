"""``Retry-After``: one reading of the header, for every HTTP client uBot runs (CoinMarketCap, the
notification channels).

RFC 9110 §10.2.3 allows two forms: delay-seconds (``120``) or an HTTP-date. All three HTTP-date
forms are read (``email.utils`` parses them): the preferred IMF-fixdate (``Sun, 06 Nov 1994
08:49:37 GMT``) and the obsolete RFC 850 (``Sunday, 06-Nov-94 08:49:37 GMT``) and asctime (``Sun
Nov  6 08:49:37 1994``) forms. Rules:

* an HTTP-date is in UTC (RFC 9110 §5.6.7): a date that carries no zone (asctime, ``-0000``) is read
  as UTC; a date with an explicit offset (``+0200``) is read with it;
* delay-seconds are decimal digits; a fraction (``1.5``, which some servers send) is accepted too;
  a sign, an exponent, ``inf`` or ``nan`` is not a delay: the header is unreadable;
* the result is never negative: a date in the past is 0 s (retry now);
* the result is at most :data:`MAX_DELAY_S` (31 days): CoinMarketCap's longest window is a calendar
  month; anything longer is a broken or hostile header, and still a finite wait;
* absent, blank or unreadable gives ``None``: the caller falls back to its own rule (backoff, the
  next minute, ...).
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC

#: The longest wait a ``Retry-After`` can ask for, in seconds (31 days).
MAX_DELAY_S = 31 * 86400.0

_DELAY = re.compile(r"\d+(\.\d+)?", re.ASCII)


def retry_after_s(value: str | None, now: float) -> float | None:
    """Seconds to wait from ``now`` (unix seconds) for the ``Retry-After`` header ``value``, within
    ``[0, MAX_DELAY_S]``; ``None`` when the header is absent, blank or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if _DELAY.fullmatch(value):
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), MAX_DELAY_S)
