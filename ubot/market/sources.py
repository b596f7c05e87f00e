"""Choosing the market source from the settings."""

from __future__ import annotations

import logging

from ubot.config import Settings, resolved_source
from ubot.market.replay import ReplaySource
from ubot.market.source import FatalSourceError, MarketSource

log = logging.getLogger(__name__)


def make_source(settings: Settings) -> MarketSource:
    """The configured source. Raises :class:`FatalSourceError` when it cannot be used."""
    market = settings.market
    kind = resolved_source(settings)
    if kind == "simulated":
        from ubot.market.simulated import SimulatedSource

        log.warning(
            "market source: SIMULATED market (%d coins, seed %d): prices are not real; "
            "set UBOT_COINMARKETCAP_API_KEY for real data",
            market.limit,
            market.seed,
        )
        return SimulatedSource(limit=market.limit, seed=market.seed, convert=market.convert)
    if kind == "replay":
        source = ReplaySource(market.replay_dir)
        log.info("market source: replay of %d file(s) from %s", len(source.files), market.replay_dir)
        return source
    raise FatalSourceError(
        "the CoinMarketCap source (--source cmc) is not available in this version yet; "
        "use --source simulated or --source replay"
    )
