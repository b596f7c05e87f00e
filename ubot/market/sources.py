"""Choosing the market source from the settings, and fitting CoinMarketCap's credits to the plan."""

from __future__ import annotations

import logging
import tempfile
from typing import TYPE_CHECKING

from ubot.clocks import Clock, SystemClock
from ubot.config import Settings, resolved_source
from ubot.market.replay import ReplaySource
from ubot.market.source import FatalSourceError, MarketSource

if TYPE_CHECKING:
    from ubot.market.recorder import Recorder

log = logging.getLogger(__name__)


def make_source(settings: Settings, clock: Clock | None = None, announce: bool = True) -> MarketSource:
    """The configured source. Raises :class:`FatalSourceError` when it cannot be used.

    ``announce``: log which source it is (off for run.py's start-up check, which builds the source
    once just to see that it can).
    """
    market = settings.market
    kind = resolved_source(settings)
    if kind == "simulated":
        from ubot.market.simulated import SimulatedSource

        if announce:
            log.warning(
                "market source: SIMULATED market (%d coins, seed %d): prices are not real; "
                "set UBOT_COINMARKETCAP_API_KEY for real data",
                market.limit,
                market.seed,
            )
        source = SimulatedSource(limit=market.limit, seed=market.seed, convert=market.convert)
        if not market.backfill_days:  # a backfill records through its own loop
            source.recorder = recorder_of(settings)
        return source
    if kind == "replay":
        source = ReplaySource(market.replay_dir)
        if announce:
            log.info("market source: replay of %d file(s) from %s", len(source.files), market.replay_dir)
        return source
    return _coinmarketcap(settings, clock or SystemClock(), announce)


def recorder_of(settings: Settings) -> Recorder | None:
    """The ``--record`` directory's recorder, or None. Raises :class:`FatalSourceError` when no file
    can be made there."""
    from ubot.market.recorder import Recorder

    directory = settings.market.record_dir
    if not directory:
        return None
    try:
        recorder = Recorder(directory)
        # An existing directory passes makedirs and listdir even when no file can be made in it.
        with tempfile.TemporaryFile(dir=recorder.directory):
            pass
    except OSError as exc:
        raise FatalSourceError(f"cannot record into {directory}: {exc.strerror or exc}") from None
    return recorder


def _coinmarketcap(settings: Settings, clock: Clock, announce: bool) -> MarketSource:
    from ubot.market.cmc_source import CmcSource
    from ubot.market.coinmarketcap import CmcClient, CmcFatalError

    cmc, market = settings.coinmarketcap, settings.market
    # A tick may spend half the interval on CoinMarketCap, retries included, so a retry never
    # makes the next tick late; no single attempt may wait longer than that either.
    budget_s = max(1.0, market.interval / 2)
    read_timeout = min(cmc.timeout, budget_s)
    try:
        client = CmcClient(
            cmc.api_key, cmc.base_url, timeout=(min(5.0, read_timeout), read_timeout), clock=clock
        )
    except CmcFatalError as exc:
        raise FatalSourceError(str(exc)) from None
    recorder = recorder_of(settings)
    if announce:
        log.info("market source: CoinMarketCap at %s, top %d coins", cmc.base_url, market.limit)
    return CmcSource(
        client,
        market.limit,
        market.convert,
        clock,
        budget_s=budget_s,
        recorder=recorder,
        monthly_credits=cmc.monthly_credits,
    )


def fit_to_plan(settings: Settings, source: MarketSource) -> None:
    """For CoinMarketCap: read the plan (free call; a refused key raises FatalSourceError), say
    what the configuration will use a month beside the allowance, and with ``fit_to_plan`` stretch
    ``settings.market.interval`` to the shortest interval that fits."""
    if source.name != "cmc":
        return
    from ubot.market.credits import plan_fit

    source.load_plan()  # type: ignore[attr-defined]
    allowance = source.monthly_allowance  # type: ignore[attr-defined]
    fit = plan_fit(settings.market.limit, settings.market.interval, allowance)
    if fit.fits:
        log.info(fit.describe())
        return
    log.warning(fit.describe())
    if settings.coinmarketcap.fit_to_plan and fit.shortest_s is not None:
        log.warning(
            "[coinmarketcap] fit_to_plan: interval stretched from %g s to %d s",
            settings.market.interval,
            fit.shortest_s,
        )
        settings.market.interval = fit.shortest_s
        source.budget_s = max(1.0, fit.shortest_s / 2)  # type: ignore[attr-defined]
