"""The words of an alert: a one-line subject and a short plain-text body, the same on every channel."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from ubot.scan.spec import StrategySpec
from ubot.timeutil import iso_from_ms


def number(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.2f}"
    if abs(value) >= 1:
        return f"{value:.4g}" if abs(value) < 100 else f"{value:.2f}"
    return f"{value:.6g}"


def render(
    spec: StrategySpec, symbol: str, values: Mapping[str, float | None], price: float | None, at_ms: int
) -> tuple[str, str]:
    """(subject, text) of an alert of ``spec`` for ``symbol``."""
    subject = f"uBot: {spec.name}: {symbol}"
    shown = ", ".join(f"{key} = {number(value)}" for key, value in values.items())
    text = (
        f"{symbol}: {spec.condition} ({spec.timeframe})\n"
        f"{shown}\n"
        f"price {number(price)} {spec.currency} at {_iso(at_ms)}\n"
        f"strategy '{spec.name}' (#{spec.id})"
    )
    return subject, text


@functools.lru_cache(maxsize=64)
def _iso(at_ms: int) -> str:
    return iso_from_ms(at_ms)  # one instant per tick, shared by all of its alerts
