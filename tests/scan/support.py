"""Small market values for the Scanner's tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ubot.market.candles import CandleRows
from ubot.market.snapshot import NUMERIC_FIELDS, GlobalMetrics, Snapshot
from ubot.scan.spec import StrategySpec

MINUTE = 60_000
T0 = 1_700_000_040_000 - 1_700_000_040_000 % 86_400_000  # a UTC midnight


def snapshot(
    ts: int,
    coins: Sequence[tuple[int, str]],
    globals_: Mapping[str, float] | None = None,
    **columns: Sequence[float],
) -> Snapshot:
    """``coins``: (id, symbol) in rank order; ``columns``: field -> one value per coin (others NaN)."""
    n = len(coins)
    data = {name: np.full(n, np.nan) for name in NUMERIC_FIELDS}
    data["rank"] = np.arange(1, n + 1, dtype=np.float64)
    for name, values in columns.items():
        data[name] = np.array(values, dtype=np.float64)
    return Snapshot(
        timestamp_ms=ts,
        convert="USD",
        ids=np.array([c[0] for c in coins], dtype=np.int64),
        symbols=tuple(c[1] for c in coins),
        names=tuple(c[1].title() for c in coins),
        slugs=tuple(c[1].lower() for c in coins),
        quote_ts_ms=np.full(n, ts, dtype=np.int64),
        columns=data,
        global_metrics=GlobalMetrics(ts, dict(globals_ or {})),
    )


def candles(timeframe: str, rows: Sequence[tuple[int, int, float]]) -> CandleRows:
    """Candles from (coin id, open time, close)."""
    return CandleRows.from_rows(timeframe, [(c, t, p, p, p, p, t, t, 1) for c, t, p in rows])


def spec(id: int = 1, condition: str = "price > 10", **fields) -> StrategySpec:
    values = dict(
        id=id,
        user_id=fields.pop("user_id", 7),
        name=f"s{id}",
        condition=condition,
        timeframe="1m",
        symbols=None,
        top_n=100,
        frequency="once_per_crossing",
        cooldown_s=0,
        expires_at_ms=None,
    )
    values.update(fields)
    return StrategySpec(**values)
