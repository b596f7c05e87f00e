"""What the Scanner is told about a user's strategies: each enabled strategy with where its alerts go.

The UserManager owns strategies and settings; the Scanner gets these values instead of reading them,
and gets them again whenever either changes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ubot.models.tables import Strategy
from ubot.notify.messages import DeliveryTarget
from ubot.rules import language
from ubot.scan.spec import StrategySpec
from ubot.users.validation import CHANNEL_TARGETS


def spec_of(
    row: Strategy,
    settings: Mapping[str, Any],
    verified: Collection[str] = (),
    muted_until_ms: int | None = None,
) -> StrategySpec:
    """``verified``: the channels whose target in ``settings`` its owner verified; a delivery to any
    other is written ``failed`` and never sent (``ubot/users/destinations.py``). ``muted_until_ms``:
    the owner's mute (the Telegram bot's ``/mute``)."""
    deliveries = []
    for channel in row.channels:
        target = settings.get(CHANNEL_TARGETS[channel])
        if target:  # saving settings refuses to clear a target in use, so this is always set
            # a webhook's secret: read when sent
            deliveries.append(DeliveryTarget(channel, str(target), unverified=channel not in verified))
    return StrategySpec(
        id=row.id,
        user_id=row.user_id,
        name=row.name,
        condition=language.normalize(row.condition),  # one saved before normalising, too
        timeframe=row.timeframe,
        symbols=None if row.symbols is None else tuple(s.upper() for s in row.symbols),
        top_n=row.top_n,
        frequency=row.frequency,
        cooldown_s=row.cooldown_s,
        expires_at_ms=row.expires_at,
        deliveries=tuple(deliveries),
        quiet_hours=settings.get("quiet_hours"),
        timezone=settings.get("timezone") or "UTC",
        currency=settings.get("quote_currency") or "USD",
        template=row.template or "",
        muted_until_ms=muted_until_ms,
    )
