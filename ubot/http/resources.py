"""HTTP resources of the market API. Each asks the actors through a :class:`Gateway`, nothing else."""

from __future__ import annotations

import falcon

from ubot.http.gateway import Gateway
from ubot.http.params import limit_param, symbols_param, time_range, timeframe_param
from ubot.timeutil import iso_from_ms


def _not_ready() -> falcon.HTTPServiceUnavailable:
    return falcon.HTTPServiceUnavailable(
        title="No snapshot yet",
        description="uBot has not finished its first tick; try again in a moment",
        retry_after=5,
    )


class HealthResource:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        code, doc = self.gateway.health()
        resp.status = code
        resp.media = doc
        resp.cache_control = ["no-store"]


class SnapshotResource:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer = self.gateway.snapshot(symbols_param(req))
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
    def on_get(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        timeframe = timeframe_param(req)
        start, end = time_range(req)
        limit = limit_param(req)
        coin_id, symbol = self.coin(key)
        rows = self.gateway.candles(coin_id, timeframe, start, end, limit)
        resp.media = {
            "id": coin_id,
            "symbol": symbol,
            "timeframe": timeframe,
            "candles": [
                {"open_time": iso_from_ms(t), "open": o, "high": h, "low": low, "close": c}
                for t, o, h, low, c in rows
            ],
        }


class QuotesResource(_CoinResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response, key: str) -> None:
        start, end = time_range(req)
        limit = limit_param(req)
        coin_id, symbol = self.coin(key)
        rows = self.gateway.quotes(coin_id, start, end, limit)
        resp.media = {"id": coin_id, "symbol": symbol, "quotes": rows}


class GlobalResource:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        start, end = time_range(req)
        limit = limit_param(req)
        resp.media = {"global": self.gateway.global_metrics(start, end, limit)}
