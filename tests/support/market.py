"""A simulated market, as the pipeline's stages see it: parsed snapshots and the Fetcher's message."""

from __future__ import annotations

from ubot.market.simulated import SimulatedSource
from ubot.market.snapshot import Snapshot, parse_listings
from ubot.messages import Fetched
from ubot.schedule import Tick
from ubot.timeutil import parse_iso_ms

#: A midnight (UTC) to start a test's market at: every candle boundary is a multiple of it.
T0 = parse_iso_ms("2024-03-10T00:00:00.000Z")


def market(at_ms: int, limit: int = 5, seed: int = 1) -> Snapshot:
    """The simulated market at ``at_ms``, parsed (deterministic: same time and seed, same snapshot)."""
    raw = SimulatedSource(limit=limit, seed=seed).documents(at_ms)
    return parse_listings(raw.listings, "USD", raw.global_metrics)


def fetched(number: int, snap: Snapshot) -> Fetched:
    """What the Fetcher would pass on for tick ``number``."""
    tick = Tick(number, snap.timestamp_ms, snap.timestamp_ms)
    return Fetched(tick=tick, snapshot=snap, source="simulated", stages=(("fetch", 1.0),))
