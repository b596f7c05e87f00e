"""Messages of the alert path: Scanner workers -> Notifier (``tell``), and the queries the gateway and
the Scanner ``ask`` the Notifier, which owns the alert tables. Small frozen values; times are epoch ms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class DeliveryTarget:
    """Where one channel of an alert goes, frozen when the alert is raised (a webhook's secret is not:
    it is read from the user's settings when the delivery is sent)."""

    channel: str
    target: str
    #: The batch's message on this channel (``ubot/notify/batches.py``); empty: the alert's own.
    subject: str = ""
    text: str = ""
    #: Alerts not sent to this destination before this message (hourly caps), said in ``text``.
    skipped: int = 0
    #: Over an hourly cap: written ``capped``, never sent (the next message says so).
    capped: bool = False
    #: Its owner has not verified this destination: written ``failed`` (:data:`NOT_VERIFIED`), never sent.
    unverified: bool = False


#: The detail of a delivery not sent because its destination is not verified.
NOT_VERIFIED = "not sent: this destination is not verified (POST /v1/me/destinations/{channel}/verify)"


@dataclass(frozen=True)
class Alert:
    """A strategy's condition came true for a coin (raised by a Scanner worker, not yet written).

    Read back from the database (to resume its deliveries), ``strategy_id`` is ``None`` once the
    strategy is deleted (the alert itself is kept), and ``deliveries`` is empty.
    """

    strategy_id: int | None
    user_id: int
    strategy_name: str
    coin_id: int
    symbol: str
    timeframe: str
    fired_at_ms: int  # the snapshot's timestamp
    bar_open_ms: int  # open time of the strategy's candle the alert belongs to
    condition: str
    values: Mapping[str, float | None]  # each field and indicator the condition uses, for this coin
    subject: str
    text: str
    deliveries: tuple[DeliveryTarget, ...]  # empty: the alert log only (database + log line + stream)
    quiet_hours: str | None = None  # "22:00-07:00" in `timezone`: delivery is held, not dropped
    timezone: str = "UTC"
    #: Until when its owner muted their alerts (``/mute``, epoch ms): delivery is held like quiet hours.
    muted_until_ms: int | None = None
    replayed: bool = False  # raised by a replay of recorded data (delivered only with --deliver)
    name: str = ""  # the coin's name ("Shiba Inu"), from the snapshot
    price: float | None = None  # the coin's price in this snapshot, in ``currency``
    currency: str = "USD"
    short: str = ""  # the SMS text (written by the Notifier with subject and text)
    rank: int | None = None  # the coin's market cap rank in this snapshot (the most significant first)
    template: str = ""  # the strategy's message template (``ubot/notify/templates.py``); "": uBot's words


@dataclass(frozen=True)
class AlertState:
    """Firing state of one (strategy, coin): is the condition currently true (for once_per_crossing),
    when did it last fire, and in which bar. Written with the alerts, read back after a restart."""

    strategy_id: int
    coin_id: int
    active: bool
    last_fired_ms: int | None = None
    last_bar_ms: int | None = None


@dataclass(frozen=True)
class ScanOutcome:
    """One worker's result for one tick: alerts and state changes, to be written in one transaction.
    ``forget``: strategies whose saved firing state is deleted first (their rules changed, or they
    left the scan: see ``ScanPlanner.set_user``), so that a restart does not revive it."""

    worker: int
    tick: int
    snapshot_ms: int
    alerts: tuple[Alert, ...] = ()
    states: tuple[AlertState, ...] = ()
    forget: tuple[int, ...] = ()
    #: ``--role scanner``: the snapshot scanned and every strategy this worker scanned in it (with
    #: alerts or not): their scan marks move to it, and the outcome of a strategy whose mark is there
    #: already (another scanner wrote it) is not written (``AlertStore.record``).
    snapshot_id: int = 0
    scanned: tuple[int, ...] = ()


@dataclass(frozen=True)
class Scanned:
    """Scanner -> Notifier (tell), after every worker told its ScanOutcome of this snapshot: the
    scan watermark moves to it (written after those outcomes)."""

    snapshot_id: int


@dataclass(frozen=True)
class Released:
    """UserManager -> Notifier (tell): these held deliveries were moved to ``due_ms`` in the outbox
    (``models/alerts.py: release_held``; a mute ended early, quiet hours changed): a Notifier that
    has them queued (not claiming from the outbox) sends them then instead."""

    delivery_ids: tuple[int, ...]
    due_ms: int


@dataclass(frozen=True)
class TellReleases:
    """-> UserManager (tell) at start: tell ``notifier`` (a pykka ActorRef) of every :class:`Released`."""

    notifier: object


# --- queries (ask) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GetAlertState:
    """-> ``tuple[AlertState, ...]`` for these strategies (answered after every earlier write)."""

    strategy_ids: tuple[int, ...]


@dataclass(frozen=True)
class GetAlerts:
    """-> ``tuple[AlertView, ...]``, newest first."""

    user_id: int
    since_ms: int | None = None
    strategy_id: int | None = None
    limit: int = 50
    before: int | None = None  # an alert's id: only the alerts listed after it (the next page)
    coin_id: int | None = None  # only the alerts about this coin


@dataclass(frozen=True)
class DeliveryView:
    channel: str
    status: str  # "pending" | "held" | "sent" | "failed" | "capped" | "cancelled"
    attempts: int
    detail: str | None
    sent_at_ms: int | None


@dataclass(frozen=True)
class AlertView:
    id: int
    strategy_id: int | None  # None: the strategy was deleted since (its alerts are kept)
    strategy_name: str
    coin_id: int
    symbol: str
    timeframe: str
    fired_at_ms: int
    values: Mapping[str, float | None]
    text: str
    deliveries: tuple[DeliveryView, ...]
    condition: str = ""
    bar_open_ms: int | None = None
    replayed: bool = False  # raised by a replay of recorded data, not by the live market


@dataclass(frozen=True)
class GetScanWatermark:
    """-> the id of the last snapshot whose scan is written (``int``), or None on a new database."""


@dataclass(frozen=True)
class GetScanMarks:
    """-> per strategy of ``strategy_ids`` that has one, the id of the last snapshot whose scan of it
    is written (``dict[int, int]``; ``--role scanner``), after every write queued before."""

    strategy_ids: tuple[int, ...]
