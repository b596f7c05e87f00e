"""The interface every market source implements, and the errors a source may raise.

A source answers one question per tick: "what does the market look like now?", in CoinMarketCap's
own wire shapes (:class:`~ubot.market.snapshot.RawMarket`). The Fetcher actor parses the answer, so
the simulated market, a replay and the real CMC client are interchangeable.
"""

from __future__ import annotations

from typing import Protocol

from ubot.market.snapshot import RawMarket


class SourceError(Exception):
    """This tick cannot be served (network fault, bad file...): skip it, say why, go on."""


class SourceExhausted(Exception):
    """The source has nothing more to give (a finished replay): stop ticking, keep serving."""


class FatalSourceError(Exception):
    """The source can never work as configured (bad API key...): stop and tell the user."""


class MarketSource(Protocol):
    #: Short name for logs and /health: "simulated", "replay", "cmc".
    name: str

    def fetch(self, at_ms: int) -> RawMarket:
        """Return the market for the tick scheduled at ``at_ms`` (epoch ms, UTC).

        Raises :class:`SourceError` to skip this tick, :class:`SourceExhausted` when done.
        """
        ...

    def close(self) -> None: ...


# A source may also offer ``status()`` returning an object with ``as_dict()`` (and a ``state`` of
# "ok" or "degraded" with a ``reason``): the Monitor then includes it in /health.
