"""One message per strategy per tick, per destination: plain logic over one worker's alerts of one tick.

A strategy belongs to one Scanner worker, so its alerts of a tick arrive together, in one
``ScanOutcome``. :func:`batched` orders them (the most significant coin first:
:func:`~ubot.notify.words.significance`) and gives the first of each strategy (its batch's lead)
one delivery per channel, each with the batch's message fitted to that channel (the coins listed,
the rest counted) after the hourly caps and the pause rule (:mod:`ubot.notify.caps`); the other
alerts of the batch keep the targets they were raised with, but the store writes deliveries for the
lead only. The store writes the batch so
(``AlertStore.record``: ``alert.batch``), and every alert stays one row in the alert log and one
event on the stream.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ubot.notify.caps import Caps, FiringLimit
from ubot.notify.messages import Alert, DeliveryTarget
from ubot.notify.words import TEXT_LIMITS, Style, batch_short, batch_subject, batch_text, short, significance

#: ``pause(strategy_id, reason)``: disable a strategy that fired too often.
Pause = Callable[[int, str], None]


@dataclass(frozen=True)
class Batched:
    """The alerts as written (batched), and the strategies to pause with their reasons."""

    alerts: tuple[Alert, ...]
    paused: tuple[tuple[int, str], ...] = ()


def group(alerts: Sequence[Alert]) -> list[list[Alert]]:
    """The alerts by strategy (in the order the strategies first appear), each batch in order of
    significance."""
    batches: dict[int | None, list[Alert]] = {}
    for alert in alerts:
        batches.setdefault(alert.strategy_id, []).append(alert)
    return [sorted(batch, key=significance) for batch in batches.values()]


def batched(alerts: Sequence[Alert], style: Style, caps: Caps, limit: FiringLimit, now_ms: int) -> Batched:
    """The alerts of one tick, batched (see the module docstring)."""
    out: list[Alert] = []
    paused: list[tuple[int, str]] = []
    for batch in group(alerts):
        if len(batch) == 1 and not batch[0].short:
            batch[0] = replace(batch[0], short=short(batch[0], style))  # its own SMS (kept with it)
        lead = batch[0]
        reason = limit.fire(lead.strategy_id, len(batch), now_ms) if lead.strategy_id is not None else None
        note = ""
        if reason is not None and lead.strategy_id is not None:
            paused.append((lead.strategy_id, reason))
            note = f'uBot paused "{lead.strategy_name}": it fired too often. Enable it again when you want it back.'
        targets = tuple(_delivery(batch, target, style, caps, now_ms, note) for target in lead.deliveries)
        out.append(replace(lead, deliveries=targets))
        out.extend(batch[1:])  # their own deliveries are not written: the lead's carry the batch
    return Batched(tuple(out), tuple(paused))


def _delivery(
    batch: Sequence[Alert], target: DeliveryTarget, style: Style, caps: Caps, now_ms: int, note: str
) -> DeliveryTarget:
    if target.unverified:
        return target  # never sent (written failed): no cap counts it
    admission = caps.admit(batch[0].user_id, target.channel, target.target, len(batch), now_ms)
    if not admission.sent:
        return replace(target, capped=True)
    skipped = admission.skipped
    if target.channel == "webhook" or (len(batch) == 1 and not skipped and not note):
        return replace(target, skipped=skipped)  # the body lists the alerts; a single one keeps its text
    if target.channel == "sms":
        body = batch_short(batch, style, skipped=skipped, note=note)
    else:
        limit, measure = TEXT_LIMITS.get(target.channel, (None, len))
        body = batch_text(batch, style, limit=limit, measure=measure, skipped=skipped, note=note)
    return replace(target, subject=batch_subject(batch, style), text=body, skipped=skipped)
