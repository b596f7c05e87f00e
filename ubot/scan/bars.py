"""Bar arithmetic of the scan: which bar closed between two snapshots, and a stored snapshot's prices
as open candles. Plain functions of timestamps (epoch ms, UTC)."""

from __future__ import annotations

import numpy as np

from ubot.market.candles import TIMEFRAMES, CandleRows, bucket_start
from ubot.market.snapshot import Snapshot


def closed_bars(previous_ms: int | None, timestamp_ms: int) -> dict[str, int]:
    """The timeframes whose bar closed between the previous snapshot (taken at ``previous_ms``; None:
    there is none) and this one, each with the open time of the bar just before this snapshot's.

    Several bars of one timeframe may have closed in between (a skipped tick, a gap): the latest
    counts, the one whose closed candles the history ends with."""
    if previous_ms is None:
        return {}
    return {
        tf: int(bucket_start(timestamp_ms, tf)) - length
        for tf, length in TIMEFRAMES.items()
        if bucket_start(previous_ms, tf) < bucket_start(timestamp_ms, tf)
    }


def open_candles_of(snapshot: Snapshot) -> dict[str, CandleRows]:
    """Each coin's open candle as of ``snapshot``, enough for the history (its close: the price)."""
    n = len(snapshot)
    zeros = np.zeros(n, dtype=np.int64)
    price = snapshot.column("price")
    return {
        tf: CandleRows(
            tf,
            snapshot.ids,
            np.full(n, bucket_start(snapshot.timestamp_ms, tf)),
            price,
            price,
            price,
            price,
            zeros,
            zeros,
            zeros,
        )
        for tf in TIMEFRAMES
    }
