"""HTTP resources of the market API. Each asks the actors through a :class:`Gateway`, nothing else."""

from __future__ import annotations

import falcon
import msgspec
import numpy as np

from ubot.http import shapes
from ubot.http.api import operation
from ubot.http.errors import HTTPFieldError
from ubot.http.gateway import Gateway
from ubot.market.candles import TIMEFRAMES
from ubot.rules.overlay import compile_overlay, overlay_series, warmup
from ubot.rules.validate import ConditionError
from ubot.timeutil import iso_from_ms

UNAVAILABLE = "no snapshot yet (with Retry-After), or uBot did not answer in time"
RANGE_RULE = "the start time is after the end time"
COIN_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1},
    "description": "a symbol (the best-ranked coin with it) or a numeric CoinMarketCap id",
}


def _not_ready() -> falcon.HTTPServiceUnavailable:
    return falcon.HTTPServiceUnavailable(
        title="No snapshot yet",
        description="uBot has not finished its first tick; try again in a moment",
        retry_after=5,
    )


class HealthResource:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @operation(
        "Pipeline health",
        {
            200: (
                "ticking (a gateway process: its bus and the roles' heartbeats)",
                (shapes.Health, shapes.GatewayHealth),
            ),
            503: (
                "no snapshot yet, no tick finished for 3 intervals, the source failed for good or the "
                "database file was lost (the health document, with its reason); a gateway's bus is "
                "unreachable or has no snapshot yet; or the Monitor did not answer (an error)",
                (shapes.Health, shapes.GatewayHealth, shapes.Error),
            ),
        },
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        code, doc = self.gateway.health()
        resp.status = code
        resp.media = doc
        resp.cache_control = ["no-store"]


class SnapshotResource:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @operation(
        "The latest snapshot",
        {
            200: ("the snapshot", shapes.Snapshot),
            304: ("not modified (If-None-Match matched)", None),
            503: UNAVAILABLE,
        },
        query=shapes.SnapshotQuery,
        headers={
            200: {
                "ETag": {"required": True, "schema": {"type": "string"}},
                "Cache-Control": {"schema": {"type": "string"}},
            },
            304: {"ETag": {"required": True, "schema": {"type": "string"}}},
        },
        parameters=(
            {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "an ETag of an earlier answer: 304 if it is still current",
            },
        ),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer = self.gateway.snapshot(_symbols(req.context.query.symbols))
        if answer is None:
            raise _not_ready()
        body, etag = answer
        resp.etag = etag
        resp.cache_control = ["no-cache"]
        if _matches(req.get_header("If-None-Match"), etag):
            resp.status = falcon.HTTP_304
            return
        resp.content_type = falcon.MEDIA_JSON
        resp.data = body


def _symbols(text: str | msgspec.UnsetType) -> tuple[str, ...] | None:
    """The keys of ``symbols=`` (upper-cased, empty items skipped): symbols, or ids in digits."""
    if text is msgspec.UNSET:
        return None
    return tuple(s.strip().upper() for s in text.split(",") if s.strip())


def _range(query: shapes.RangeQuery) -> tuple[int | None, int | None]:
    start, end = shapes.ms(query.start), shapes.ms(query.end)
    if start is not None and end is not None and start > end:
        raise HTTPFieldError(
            falcon.HTTP_422, "Invalid range", "start: the start time is after the end time", field="start"
        )
    return start, end


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


class _CoinResource:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def coin(self, key: str) -> tuple[int, str]:
        found = self.gateway.resolve(key) if _lookable(key) else None
        if found is None:
            raise falcon.HTTPNotFound(
                title="Unknown coin", description=f"no coin with symbol or id {key[:64]!r}"
            )
        return found


def _lookable(key: str) -> bool:
    """A symbol of at most 64 characters, or an id in ASCII digits that fits the database."""
    if not key or len(key) > 64:
        return False
    if key.isdigit():  # also true of "²" or "١", which int() rejects or reads as another id
        return key.isascii() and int(key) < 2**63
    return True


class CandlesResource(_CoinResource):
    @operation(
        "OHLC candles of one coin, ascending, the open one last",
        {200: ("the candles", shapes.Candles), 404: "no such coin", 422: RANGE_RULE, 503: UNAVAILABLE},
        query=shapes.CandlesQuery,
        parameters=(COIN_KEY,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        query = req.context.query
        timeframe = query.timeframe
        start, end = _range(query)
        coin_id, symbol = self.coin(key)
        rows = self.gateway.candles(coin_id, timeframe, start, end, query.limit)
        resp.media = {
            "id": coin_id,
            "symbol": symbol,
            "timeframe": timeframe,
            "candles": [
                {"open_time": iso_from_ms(t), "open": o, "high": h, "low": low, "close": c}
                for t, o, h, low, c in rows
            ],
        }


class OverlayResource(_CoinResource):
    @operation(
        "An overlay for the chart: an expression of the condition language (price and indicators) "
        "at every candle of one coin, the candles as GET /v1/coins/{key}/candles chooses them",
        {
            200: ("the overlay's values", shapes.Overlay),
            404: "no such coin",
            422: "the expression is not a number in the condition language (``column`` says where), "
            "or " + RANGE_RULE,
            503: UNAVAILABLE,
        },
        query=shapes.OverlayQuery,
        parameters=(COIN_KEY,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        query = req.context.query
        try:
            compiled = compile_overlay(query.expression)
        except ConditionError as exc:
            raise HTTPFieldError(
                falcon.HTTP_422, "Invalid overlay", exc.message, field="expression", column=exc.column
            ) from None
        start, end = _range(query)
        coin_id, symbol = self.coin(key)
        # Earlier candles too, so that the first candle shown has its value (and a recursive
        # indicator's start has faded); only the candles the same candles query gives are answered.
        extra = warmup(compiled)
        early = None if start is None else max(0, start - extra * TIMEFRAMES[query.timeframe])
        rows = self.gateway.candles(coin_id, query.timeframe, early, end, query.limit + extra)
        values = overlay_series(compiled, np.array([row[4] for row in rows], dtype=np.float64))
        shown = [i for i, row in enumerate(rows) if start is None or row[0] >= start][-query.limit :]
        resp.media = {
            "id": coin_id,
            "symbol": symbol,
            "timeframe": query.timeframe,
            "expression": query.expression,
            "points": [
                {
                    "open_time": iso_from_ms(rows[i][0]),
                    "value": None if np.isnan(values[i]) else float(values[i]),
                }
                for i in shown
            ],
        }


class QuotesResource(_CoinResource):
    @operation(
        "Raw quote history of one coin, ascending",
        {200: ("the quotes", shapes.Quotes), 404: "no such coin", 422: RANGE_RULE, 503: UNAVAILABLE},
        query=shapes.RangeQuery,
        parameters=(COIN_KEY,),
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        start, end = _range(req.context.query)
        coin_id, symbol = self.coin(key)
        rows = self.gateway.quotes(coin_id, start, end, req.context.query.limit)
        resp.media = {"id": coin_id, "symbol": symbol, "quotes": rows}


class GlobalResource:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @operation(
        "Raw global-metrics history, ascending",
        {200: ("the global metrics", shapes.GlobalHistory), 422: RANGE_RULE, 503: UNAVAILABLE},
        query=shapes.RangeQuery,
    )
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        start, end = _range(req.context.query)
        resp.media = {"global": self.gateway.global_metrics(start, end, req.context.query.limit)}
