"""``POST /v1/conditions/dry-run`` and ``POST /v1/me/strategies/{id}/dry-run``: the alerts a strategy
would have raised over stored history (``scan/dryrun.py``), run by a DryRun actor through the
:class:`~ubot.http.gateway.Gateway`. The body is decoded into its shape (``users/shapes.py``); what a
schema cannot state (symbols or top_n, the bounds, a valid condition) is a 422 naming the field."""

from __future__ import annotations

from datetime import datetime

import falcon

from ubot.http.api import operation
from ubot.http.gateway import Gateway
from ubot.scan import dryrun
from ubot.scan.dryrun import DryRunResult, DryRunSpec
from ubot.timeutil import iso_from_ms
from ubot.users import shapes as s
from ubot.users.errors import ValidationError
from ubot.users.manager import UserManager as U

RULES = (
    "the condition is not valid (``column`` says where) or reads a field the candles do not keep "
    "(only price and indicators); symbols and top_n both given or neither; end not after start; a "
    f"range over {dryrun.MAX_DAYS} days; over {dryrun.MAX_COINS} coins; a symbol without stored history; "
    "no stored history in the range (the description says what history exists); a dry run of yours "
    f"already in progress (at most {dryrun.PER_USER} at once)"
)
BUSY = "every dry-run worker of the server is busy (or the run took over a minute), or accounts are off"
EXAMPLE = {
    "condition": "rsi(14) < 30 and price > sma(50)",
    "timeframe": "1h",
    "symbols": ["BTC", "ETH"],
    "frequency": "once_per_crossing",
    "cooldown_s": 3600,
    "start": "2024-10-01T00:00:00Z",
    "end": "2024-10-08T00:00:00Z",
}
ANSWERS = {200: ("the alerts it would have raised", s.DryRunAnswer), 422: RULES, 503: BUSY}


def _ms(value: datetime | int) -> int:
    return value if isinstance(value, int) else int(value.timestamp() * 1000)


def answer(result: DryRunResult) -> s.DryRunAnswer:
    return s.DryRunAnswer(
        firings=tuple(
            s.DryRunFiring(iso_from_ms(f.time_ms), f.coin_id, f.symbol, f.values) for f in result.firings
        ),
        coins=result.coins,
        candles=result.candles,
        from_=iso_from_ms(result.from_ms),
        to=iso_from_ms(result.to_ms),
        truncated=result.truncated,
    )


def spec_of(rules: s.DryRun | s.StrategyView, start: datetime | int, end: datetime | int) -> DryRunSpec:
    if (rules.symbols is None) == (rules.top_n is None):
        raise ValidationError("symbols", "give either symbols or top_n")
    return DryRunSpec(
        condition=rules.condition,
        timeframe=rules.timeframe,
        frequency=rules.frequency,
        cooldown_s=rules.cooldown_s,
        start_ms=_ms(start),
        end_ms=_ms(end),
        symbols=None if rules.symbols is None else tuple(x.upper() for x in rules.symbols),
        top_n=rules.top_n,
    )


class ConditionDryRunResource:
    auth_required = True

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @operation(
        "Dry-run a strategy's rules over stored history, without saving anything",
        ANSWERS,
        body=s.DryRun,
        example=EXAMPLE,
        description="Exactly the alerts the live scanner would have raised over [start, end): evaluated "
        "at every stored 1m candle (one tick a minute), indicators seeded from the candles before start.",
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body: s.DryRun = req.context.body
        spec = spec_of(body, body.start, body.end)
        resp.media = answer(self.gateway.dry_run(req.context.user_id, spec))


class StrategyDryRunResource:
    auth_required = True

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    @operation(
        "Dry-run one of your strategies over stored history",
        {**ANSWERS, 404: "no such strategy of yours"},
        body=s.DryRunRange,
        example={"start": "2024-10-01T00:00:00Z", "end": "2024-10-08T00:00:00Z"},
        description="As POST /v1/conditions/dry-run with the strategy's condition, timeframe, scope, "
        "frequency and cooldown.",
    )
    def on_post(self, req: falcon.Request, resp: falcon.Response, strategy_id: int) -> None:
        body: s.DryRunRange = req.context.body
        strategy = self.gateway.ask_users(U.get_strategy, req.context.user_id, strategy_id)
        spec = spec_of(strategy, body.start, body.end)
        resp.media = answer(self.gateway.dry_run(req.context.user_id, spec))
