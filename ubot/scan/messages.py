"""Messages of the Scanner: Container -> Scanner (the ``Candled`` tick, see ``ubot/messages.py``),
Scanner <-> workers, Scanner/workers <-> UserManager. Small frozen values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from msgspec import Meta

from ubot.scan.frame import MarketFrame
from ubot.scan.spec import StrategySpec, UserStrategies

# --- UserManager <-> Scanner ---------------------------------------------------------------------


@dataclass(frozen=True)
class WatchStrategies:
    """Scanner -> UserManager (ask) at start: "tell me every change from now on".
    -> ``tuple[UserStrategies, ...]``: every user's enabled strategies, answered in the same step that
    registers the watcher, so no change can fall between the two. ``stop``: the Scanner's
    process's :class:`~ubot.stopping.StopToken`; reading tens of thousands of strategies ends with
    :class:`~ubot.stopping.Stopped` once it is set."""

    scanner: Any  # pykka.ActorRef
    stop: Any = None  # StopToken | None


StrategiesChanged = UserStrategies  # UserManager -> Scanner (tell): a user's enabled strategies now


@dataclass(frozen=True)
class DisableStrategy:
    """Scanner -> UserManager (tell): a ``once`` strategy fired; Notifier -> UserManager: a strategy
    fired too often (``reason``: why it is paused, shown by the API)."""

    strategy_id: int
    reason: str | None = None


@dataclass(frozen=True)
class StrategyErrors:
    """Scanner -> UserManager (tell): runtime errors that changed (None: the error is gone)."""

    errors: Mapping[int, str | None]
    at_ms: int


@dataclass(frozen=True)
class ScanStored:
    """A scanner process's relay -> its Scanner (tell), for each ``TickReady`` on the bus: snapshot
    ``snapshot_id`` is stored and candled; scan this process's share of the strategies, as split over
    ``members`` (the live scanners the engine named in that tick: ``scan/assign.py``)."""

    number: int
    snapshot_id: int
    members: tuple[str, ...]


# --- Scanner <-> workers -------------------------------------------------------------------------


@dataclass(frozen=True)
class SetStrategies:
    """Scanner -> worker: for each user given, exactly these strategies (an empty tuple drops them).
    ``forget``: strategies whose firing state starts afresh (decided by the planner): the worker resets
    what it holds and tells the Notifier to delete the saved state (``ScanOutcome.forget``)."""

    users: Mapping[int, tuple[StrategySpec, ...]]
    forget: tuple[int, ...] = ()


@dataclass(frozen=True, eq=False)
class ScanTick:
    """Scanner -> each worker: scan ``frame``. A scanner process (``--role scanner``) names the
    snapshot (its outcome moves the scan marks: ``AlertStore.record``) and may scan part of the
    worker's strategies: ``only`` those (None: all of them), none of ``skip`` (``scan/assign.py``,
    :func:`~ubot.scan.assign.passes`)."""

    frame: MarketFrame
    snapshot_id: int = 0
    only: frozenset[int] | None = None
    skip: frozenset[int] = frozenset()


@dataclass(frozen=True)
class ScanDone:
    worker: int
    tick: int
    evaluated: int
    coins: int
    alerts: int
    errors: Mapping[int, str | None] = field(default_factory=dict)
    disable: tuple[int, ...] = ()
    ms: float = 0.0


@dataclass(frozen=True)
class ScanFinished:
    """Scanner -> Monitor: the scan of live tick ``tick`` is over (or it was skipped, or there was
    nothing to scan)."""

    tick: int


@dataclass(frozen=True)
class SeedsReady:
    """The seeding thread -> Scanner: a seed of new indicator series finished; merge it."""


@dataclass(frozen=True)
class WorkerDied:
    worker: int
    reason: str


@dataclass(frozen=True)
class CostlyStrategy:
    id: int
    cost: Annotated[int, Meta(ge=0, description="series-coins: coins x (1 + distinct indicator series)")]


@dataclass(frozen=True)
class ScannerStats:
    """Scanner -> Monitor after every scan; ``/health``'s ``scanner`` (declared for the OpenAPI
    document by this class). Scan times include folding the tick's candles into the indicator state
    and building the frame; a seed of new series runs beside the scans (``seeding``)."""

    workers: int
    strategies: int
    scans: int
    scans_skipped: Annotated[
        int,
        Meta(
            description="ticks not scanned on time: the previous scan was still running (a scanner "
            "process scans them after, oldest first)"
        ),
    ]
    worker_restarts: int
    alerts: int
    last_scan_ms: float | None
    scan_ms_p50: float | None
    scan_ms_p99: float | None
    last_evaluated: int
    last_coins: int
    #: strategies whose run-time error began (or changed) in the last scan
    last_errors: int = 0
    last_history_ms: Annotated[
        float | None, Meta(description="the last tick's candles folded into the indicator state, in ms")
    ] = None
    cost: Annotated[
        int, Meta(ge=0, description="the enabled strategies' costs added up, in series-coins")
    ] = 0
    costliest: Annotated[
        list[CostlyStrategy], Meta(description="the costliest strategies, costliest first")
    ] = field(default_factory=list)
    seeding: Annotated[
        int,
        Meta(
            ge=0,
            description="strategies not evaluated yet: their new indicator series are being seeded "
            "from the stored candles, off the scan path",
        ),
    ] = 0
    last_seed_s: Annotated[
        float | None,
        Meta(description="seconds from asking for the last seed of new series to its strategies going live"),
    ] = None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "costliest": [dict(item.__dict__) for item in self.costliest]}
