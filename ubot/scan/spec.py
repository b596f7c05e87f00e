"""A strategy as the Scanner sees it: the user's strategy plus where its alerts go.

Built by the UserManager (which owns strategies and settings) and sent to the Scanner whenever either
changes, so the Scanner never reads the user tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from ubot.notify.messages import DeliveryTarget


@dataclass(frozen=True)
class StrategySpec:
    id: int
    user_id: int
    name: str
    condition: str
    timeframe: str
    symbols: tuple[str, ...] | None  # upper-case; None when top_n is set
    top_n: int | None
    frequency: str  # once_per_crossing | once | once_per_bar | once_per_bar_close
    cooldown_s: int
    expires_at_ms: int | None
    deliveries: tuple[DeliveryTarget, ...] = ()
    quiet_hours: str | None = None
    timezone: str = "UTC"
    currency: str = "USD"
    template: str = ""  # its message template (``ubot/notify/templates.py``); "": uBot's own words
    muted_until_ms: int | None = None  # the owner's ``/mute``: deliveries held until then

    @property
    def scope(self) -> tuple:
        """A hashable key for the coins this strategy looks at (strategies with equal scopes share work)."""
        return ("top", self.top_n) if self.symbols is None else ("symbols", self.symbols)

    @property
    def rules(self) -> tuple:
        """What the firing state depends on: when any of it changes, the state starts afresh."""
        return (self.condition, self.timeframe, self.scope, self.frequency)

    @property
    def on_bar_close(self) -> bool:
        return self.frequency == "once_per_bar_close"

    def expired(self, now_ms: int) -> bool:
        return self.expires_at_ms is not None and now_ms >= self.expires_at_ms


@dataclass(frozen=True)
class UserStrategies:
    """All enabled strategies of one user (replacing what the Scanner knew of that user)."""

    user_id: int
    specs: tuple[StrategySpec, ...]
