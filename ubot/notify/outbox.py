"""The outbox's decisions, plain logic without threads or a database: what to send for a written alert,
and what a channel's :class:`~ubot.notify.channel.Outcome` means for the delivery.

Retries back off exponentially: ``backoff_s`` after the first failed attempt, doubling each time,
never more than ``backoff_max_s`` (but at least the provider's own ``retry_after_s``), until
``max_attempts`` attempts have been made; the delivery then fails with the last detail.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal
from zoneinfo import ZoneInfoNotFoundError

from ubot.jsonsafe import json_values
from ubot.logtext import printable
from ubot.models.alerts import WrittenAlert
from ubot.notify.channel import FAILED, RETRY, SENT, Message, Outcome
from ubot.notify.messages import Alert
from ubot.notify.quiet import quiet_until
from ubot.notify.registry import not_configured
from ubot.timeutil import iso_from_ms

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    backoff_s: float = 5.0
    backoff_max_s: float = 900.0

    def delay_s(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1, 2, ...)."""
        return min(self.backoff_s * 2.0 ** (attempts - 1), self.backoff_max_s)


@dataclass(frozen=True)
class Job:
    """One delivery to make: its message, the attempts already made, and when it is due."""

    message: Message
    user_id: int
    attempts: int
    due_ms: int


@dataclass(frozen=True)
class Decision:
    """What to write after an attempt: ``sent`` (at ``at_ms``), ``retry`` (at ``next_attempt_ms``)
    or ``failed`` (``detail`` says why)."""

    status: Literal["sent", "retry", "failed"]
    attempts: int
    at_ms: int
    next_attempt_ms: int | None = None
    detail: str | None = None


def decide(job: Job, outcome: Outcome, now_ms: int, policy: RetryPolicy) -> Decision:
    """The delivery's next state after one more attempt ended with ``outcome`` at ``now_ms``."""
    attempts = job.attempts + 1
    detail = outcome.detail or outcome.status
    if outcome.status == SENT:
        return Decision(SENT, attempts, now_ms)
    if outcome.status == RETRY and attempts < policy.max_attempts:
        wait_s = max(policy.delay_s(attempts), outcome.retry_after_s or 0.0)
        return Decision(RETRY, attempts, now_ms, now_ms + math.ceil(wait_s * 1000), detail)
    return Decision(FAILED, attempts, now_ms, detail=detail)


def unconfigured(job: Job, now_ms: int) -> Decision:
    """A delivery on a channel this server does not have: failed at once, saying what to set."""
    return Decision(FAILED, job.attempts, now_ms, detail=not_configured(job.message.channel))


def jobs_of(written: WrittenAlert) -> list[Job]:
    """The deliveries of a written alert (a batch's first: its deliveries carry the whole batch),
    ready to hand to the senders."""
    if not written.deliveries:
        return []
    alerts = [alert_document(i, a) for i, a in written.batch]
    alert = written.alert
    return [
        Job(
            message=Message(
                delivery_id=d.id,
                alert_id=written.id,
                channel=d.channel,
                target=d.target,
                subject=alert.subject if d.subject is None else d.subject,
                text=alert.text if d.text is None else d.text,
                payload=batch_document(d.key, alert, alerts, d.skipped),
                key=d.key,
                short=alert.short if d.text is None else d.text,
            ),
            user_id=alert.user_id,
            attempts=d.attempts,
            due_ms=d.next_attempt_ms,
        )
        for d in written.deliveries
    ]


class DeliveryCancelled(Exception):
    """The delivery was cancelled (its strategy disabled or deleted) after it was queued."""


def signed(
    job: Job, secret_of: Callable[[int], str | None], unsent: Callable[[int], bool] | None = None
) -> Message:
    """The job's message as sent: a webhook's with its owner's secret as set now (``secret_of``, called
    in the sender thread just before the attempt: never stored with the delivery). ``unsent``: whether
    the delivery is still to send; when not (cancelled), :class:`DeliveryCancelled` is raised and
    nothing is sent."""
    if unsent is not None and not unsent(job.message.delivery_id):
        raise DeliveryCancelled(f"delivery {job.message.delivery_id} was cancelled")
    if job.message.channel != "webhook":
        return job.message
    return replace(job.message, secret=secret_of(job.user_id))


def batch_document(key: str, lead: Alert, alerts: list[dict[str, Any]], skipped: int = 0) -> dict[str, Any]:
    """The webhook body of one delivery (``ubot.http.shapes.WebhookBody``): the strategy's alerts of
    one tick, the most significant coin first. ``delivery_id`` is the delivery's public id, the same
    on every attempt; ``skipped``: alerts not sent to this webhook before (hourly caps)."""
    return {
        "delivery_id": key,
        "strategy_id": lead.strategy_id,
        "strategy_name": lead.strategy_name,
        "timeframe": lead.timeframe,
        "fired_at": iso_from_ms(lead.fired_at_ms),
        "skipped": skipped,
        "alerts": alerts,
    }


def alert_document(alert_id: int, alert: Alert) -> dict[str, Any]:
    """The alert as JSON (the webhook body and the stream event). Non-finite values become null."""
    return {
        "id": alert_id,
        "strategy_id": alert.strategy_id,
        "strategy_name": alert.strategy_name,
        "coin_id": alert.coin_id,
        "symbol": alert.symbol,
        "timeframe": alert.timeframe,
        "fired_at": iso_from_ms(alert.fired_at_ms),
        "fired_at_ms": alert.fired_at_ms,
        "bar_open_ms": alert.bar_open_ms,
        "condition": alert.condition,
        "values": json_values(alert.values),
        "subject": alert.subject,
        "text": alert.text,
    }


def hold_until(alert: Alert, now_ms: int) -> int | None:
    """When the recipient may be sent ``alert`` raised at ``now_ms``: the end of their quiet hours or
    of their mute (the Telegram bot's ``/mute``), whichever comes later, and past both (a mute that
    ends inside the quiet hours holds until they end too); ``None``: now. One rule for both: held,
    never dropped. Quiet hours that cannot be read (validated on input, so only a bug) hold nothing:
    better a message at night than none."""
    return hold_end(alert.quiet_hours, alert.timezone, alert.muted_until_ms, now_ms, alert.strategy_id)


def hold_end(
    quiet_hours: str | None,
    timezone: str,
    muted_until_ms: int | None,
    now_ms: int,
    strategy_id: int | None = None,
) -> int | None:
    """:func:`hold_until` of a recipient with these settings at ``now_ms``: also when deliveries
    already held are released (a mute ended early or shortened, quiet hours changed:
    ``UserManager.mute``), so that a release holds exactly what a new alert would."""
    until = now_ms
    for _ in range(3):  # a mute ending in quiet hours: their end; that is past the mute already
        later = max(until, muted_until_ms or 0, _quiet_end(quiet_hours, timezone, until, strategy_id) or 0)
        if later == until:
            break
        until = later
    return None if until <= now_ms else until


def _quiet_end(quiet_hours: str | None, timezone: str, at_ms: int, strategy_id: int | None) -> int | None:
    try:
        return quiet_until(quiet_hours, timezone, at_ms)
    except (ValueError, ZoneInfoNotFoundError) as error:
        whose = "settings" if strategy_id is None else f"alert of strategy {strategy_id}"
        log.warning("%s: quiet hours ignored: %s", whose, printable(error))
        return None
