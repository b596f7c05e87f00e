"""Messages between actors: small frozen values. One place, so a reader finds every hop here.

Pipeline (``tell``): Clock -Tick-> Fetcher -Fetched-> Store -Stored-> OHLC -Candled-> Container
-TickDone-> Monitor -TickFinished-> Clock. Any stage that ends a tick early tells the Monitor
``TickDone`` with ``outcome="skipped"`` and the reason. Queries (``ask``, from the gateway) are the
``Get*`` messages at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any

from ubot.market.candles import CandleRows
from ubot.market.snapshot import Snapshot
from ubot.schedule import Tick

if TYPE_CHECKING:
    from ubot.scan.dryrun import DryRunSpec

Stages = tuple[tuple[str, float], ...]  # (stage name, milliseconds), in pipeline order


@dataclass(frozen=True)
class Fetched:
    tick: Tick
    snapshot: Snapshot
    source: str
    stages: Stages = ()
    position: tuple[int, int] | None = None  # replay progress

    def timed(self, stage: str, ms: float) -> Any:
        """A copy with ``(stage, ms)`` appended to :attr:`stages`."""
        return replace(self, stages=self.stages + ((stage, ms),))

    @classmethod
    def extend(cls, base: Fetched, **extra: Any) -> Any:
        """Build the next stage's message from ``base`` plus the fields this stage adds."""
        return cls(**{f.name: getattr(base, f.name) for f in fields(base)}, **extra)


@dataclass(frozen=True)
class Stored(Fetched):
    snapshot_id: int = 0


@dataclass(frozen=True)
class Candled(Stored):
    #: Open candle of every coin, per timeframe, after this snapshot.
    open_candles: Mapping[str, CandleRows] = field(default_factory=dict)
    #: Candles that closed with this snapshot, per timeframe (the Scanner's indicator history).
    closed_candles: Mapping[str, CandleRows] = field(default_factory=dict)


@dataclass(frozen=True)
class TickDone:
    tick: Tick
    stages: Stages
    outcome: str = "ok"  # "ok" | "skipped"
    reason: str = ""
    coins: int = 0
    snapshot_ms: int | None = None
    position: tuple[int, int] | None = None


@dataclass(frozen=True)
class SourceExhausted:
    tick: Tick


@dataclass(frozen=True)
class SourceFailed:
    """The source can never work again as configured (e.g. the API key was revoked)."""

    tick: Tick
    reason: str


@dataclass(frozen=True)
class TickFinished:
    number: int


@dataclass(frozen=True)
class StopTicking:
    reason: str


@dataclass(frozen=True)
class WatchTicks:
    """Sent by the Clock to the Monitor at start: "tell me when each tick is finished"."""

    clock: Any  # pykka.ActorRef


# --- queries (ask) -------------------------------------------------------------------------


@dataclass(frozen=True)
class GetSnapshot:
    symbols: tuple[str, ...] | None = None  # upper-case; None = every coin


@dataclass(frozen=True)
class ResolveCoin:
    key: str  # a symbol (case-insensitive) or a numeric CMC id


@dataclass(frozen=True)
class GetOpenCandle:
    coin_id: int
    timeframe: str


@dataclass(frozen=True)
class GetCandles:
    coin_id: int
    timeframe: str
    start_ms: int | None
    end_ms: int | None
    limit: int


@dataclass(frozen=True)
class GetQuotes:
    coin_id: int
    start_ms: int | None
    end_ms: int | None
    limit: int


@dataclass(frozen=True)
class GetGlobal:
    start_ms: int | None
    end_ms: int | None
    limit: int


@dataclass(frozen=True)
class StageFault:
    """A stage -> the Monitor: work of its beside the ticks fails (``problem``), or works again
    (``""``). The ticks go on; ``/health`` says ``degraded`` and why until it clears (the OHLC
    stage's batched write of the closed candles, kept for the next attempt)."""

    stage: str
    problem: str


@dataclass(frozen=True)
class GetHealth:
    pass


@dataclass(frozen=True)
class GetClockStats:
    pass


@dataclass(frozen=True)
class RunDryRun:
    """Gateway -> a DryRun actor: the alerts ``spec`` would have raised (``scan/dryrun.py``)."""

    spec: DryRunSpec
