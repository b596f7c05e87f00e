"""Timestamps as integer milliseconds since the Unix epoch (UTC), and their ISO-8601 form.

Everything inside uBot carries time as ``int`` milliseconds: exact, cheap to compare, and the same in
SQLite and PostgreSQL. ISO-8601 strings exist only at the edges (CoinMarketCap's JSON, our HTTP API).
"""

from __future__ import annotations

from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_iso_ms(text: str) -> int:
    """``"2024-10-16T00:21:56.668Z"`` -> epoch milliseconds. Naive times are taken as UTC.

    Raises ``ValueError`` on anything that is not an ISO-8601 date-time.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO-8601 string, got {type(text).__name__}")
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def iso_from_ms(ms: int) -> str:
    """Epoch milliseconds -> ``"2024-10-16T00:21:56.668Z"`` (CoinMarketCap's own format)."""
    seconds, millis = divmod(int(ms), 1000)
    value = datetime.fromtimestamp(seconds, tz=UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"
