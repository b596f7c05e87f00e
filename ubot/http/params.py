"""Query parameters shared by the resources, each checked with a message naming the parameter."""

from __future__ import annotations

import falcon

from ubot.market.candles import TIMEFRAMES
from ubot.timeutil import parse_iso_ms

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_ID = 2**62  # as the routes' int(max=...) converters: larger ids overflow the database
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z; larger numbers overflow the database
_TIME_HELP = "an ISO-8601 UTC time such as 2024-10-16T00:00:00Z, or epoch milliseconds"


def time_param(req: falcon.Request, name: str) -> int | None:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return None
    if raw.isascii() and raw.isdigit():
        if len(raw) > len(str(MAX_TIME_MS)) or int(raw) > MAX_TIME_MS:
            raise falcon.HTTPInvalidParam(f"Expected {_TIME_HELP}; this is after the year 9999.", name)
        return int(raw)
    try:
        return parse_iso_ms(raw)
    except ValueError:
        raise falcon.HTTPInvalidParam(f"Expected {_TIME_HELP}.", name) from None


def time_range(req: falcon.Request) -> tuple[int | None, int | None]:
    start, end = time_param(req, "start"), time_param(req, "end")
    if start is not None and end is not None and start > end:
        raise falcon.HTTPBadRequest(
            title="Invalid range", description="The start time is after the end time."
        )
    return start, end


def limit_param(req: falcon.Request, maximum: int = MAX_LIMIT, default: int = DEFAULT_LIMIT) -> int:
    value = req.get_param_as_int("limit", min_value=1, max_value=maximum)
    return default if value is None else value


def id_param(req: falcon.Request, name: str) -> int | None:
    """A positive database id (``?strategy=12``), or None when absent."""
    return req.get_param_as_int(name, min_value=1, max_value=MAX_ID)


def timeframe_param(req: falcon.Request) -> str:
    value = req.get_param("timeframe") or "1h"
    if value not in TIMEFRAMES:
        raise falcon.HTTPInvalidParam(f"Expected one of {', '.join(TIMEFRAMES)}.", "timeframe")
    return value


def symbols_param(req: falcon.Request) -> tuple[str, ...] | None:
    raw = req.get_param("symbols")
    if raw is None:
        return None
    symbols = tuple(s.strip().upper() for s in raw.split(",") if s.strip())
    if not symbols:
        raise falcon.HTTPInvalidParam("Expected a comma-separated list such as BTC,ETH.", "symbols")
    if len(symbols) > MAX_LIMIT:
        raise falcon.HTTPInvalidParam(f"Expected at most {MAX_LIMIT} symbols.", "symbols")
    if any(len(s) > 64 or not s.isprintable() for s in symbols):
        raise falcon.HTTPInvalidParam("A symbol is at most 64 printable characters.", "symbols")
    return symbols
