"""What a person reads: the words of an alert on every channel, and how numbers and times are written.

One alert gets, once, when the Notifier receives it (and stored with it, so a resumed delivery says
the same):

- ``subject``: one line, the e-mail's subject: ``uBot: "BTC breakout" fired for BTC (Bitcoin)``;
- ``text``: the message itself, for e-mail, Telegram and WhatsApp, headline first::

      BTC (Bitcoin) is at 67,432.12 USD: your strategy "BTC breakout" fired on 1h.
      rsi(14) = 71.32, percent_change_24h = +3.18%
      Condition: price > 67000 and rsi(14) > 70
      Time: 2026-12-04 20:21:35 CET (Europe/Berlin)
      Chart: https://ubot.example.com/v1/coins/1/candles?timeframe=1h
      Simulated market: these prices are not real.

- ``short``: one SMS, GSM-7 whenever the user's own words allow, fitted to one segment by dropping
  the least useful parts first: ``uBot: BTC 67,432.12 USD, rsi(14) 71.32. "BTC breakout" 1h, 20:21 CET``.

A strategy with a message template (``ubot/notify/templates.py``) gets its template's words instead,
each placeholder written here (:func:`placeholder_text`, by the rules below), in ``text`` and in
``short`` (cut to :data:`SMS_SEGMENTS` segments); the subject stays uBot's, and what the server must
say (the simulated market, a replay) is added after the template's words. In a batch the template is
written once per coin, one entry of the list (:func:`batch_text`).

The price is said once per message (it is left out of the values, which repeat the condition's
fields); the log line (:func:`log_line`) is the operator's, on one line.

Numbers (:func:`number`), one rule by magnitude, never in scientific notation:

- 4 significant digits, never fewer than 2 decimals, at most :data:`MAX_DECIMALS`; trailing zeros
  past the second decimal dropped; thousands separated by commas: ``67,432.12``, ``1.235``,
  ``0.4568``, ``0.00002613`` (``2.61312e-05``), ``0.50``;
- a value that is not a price and is at least a million is shortened: ``1.23 B``, ``45.6 M``
  (volumes, market capitalisations, supplies);
- percentages (``percent_change_*``, ``volume_change_24h``, ``*_dominance``) get a sign and ``%``:
  ``-2.92%``; counts (``rank``, ``num_market_pairs``, ...) are whole numbers;
- a missing value is ``n/a``.

Times are the user's ``timezone`` (a zoneinfo name; UTC when it cannot be read), to the second,
with the zone's abbreviation: ``2026-12-04 20:21:35 CET``.
"""

from __future__ import annotations

import functools
import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ubot.logtext import printable
from ubot.market.snapshot import GLOBAL_INT_FIELDS, INT_FIELDS
from ubot.notify.channel import Message
from ubot.notify.channels.text import GSM_ELLIPSIS, sms_segments, truncate, utf16_len
from ubot.notify.messages import Alert
from ubot.notify.templates import Placeholder, formatted, parsed

#: Significant digits of a number, and the decimals shown at least and at most.
SIGNIFICANT = 4
MIN_DECIMALS = 2
MAX_DECIMALS = 12
_COMPACT = ((1e12, "T"), (1e9, "B"), (1e6, "M"))
_COUNTS = INT_FIELDS | GLOBAL_INT_FIELDS
#: The segments a templated SMS may take (the SMS channel's own limit, ``max_segments``, is 3 too).
SMS_SEGMENTS = 3


@dataclass(frozen=True)
class Style:
    """What the server adds to every alert: a link to the coin under ``public_url`` (``[http]
    public_url``, empty for none), and whether the market is simulated."""

    public_url: str = ""
    simulated: bool = False


# -- numbers and times ---------------------------------------------------------------------------


def number(value: float | None, *, compact: bool = False) -> str:
    """``value`` written by the rule above; ``compact``: a million or more as ``1.23 M``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if compact:
        for size, suffix in _COMPACT:
            if abs(value) >= size:
                return f"{_plain(value / size)} {suffix}"
    return _plain(value)


def _plain(value: float) -> str:
    if value == 0:
        return "0.00"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = min(MAX_DECIMALS, max(MIN_DECIMALS, SIGNIFICANT - 1 - magnitude))
    text = f"{value:,.{decimals}f}"
    if decimals > MIN_DECIMALS:  # 0.5000 -> 0.50, 1.2300 -> 1.23
        whole, _, fraction = text.partition(".")
        text = f"{whole}.{fraction.rstrip('0').ljust(MIN_DECIMALS, '0')}"
    if float(text.replace(",", "")) == 0:
        return "0.00"  # smaller than the last decimal shown (-0.00 too)
    return text


def value_text(name: str, value: float | None) -> str:
    """One value of the condition, as its kind is read: percentage, count, amount or plain number."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if is_percentage(name):
        return f"{value:+.2f}%"
    if name in _COUNTS:
        return f"{value:,.0f}"
    return number(value, compact=name != "price")


def is_percentage(name: str) -> bool:
    return name.startswith("percent_change_") or name == "volume_change_24h" or name.endswith("_dominance")


@functools.lru_cache(maxsize=256)  # a tick's alerts share their instant and mostly their zone
def local_time(at_ms: int, timezone: str, *, seconds: bool = True) -> str:
    """``2026-12-04 20:21:35 CET``: the instant in ``timezone`` (UTC when unknown), without
    milliseconds; ``seconds=False``: ``20:21 CET`` (for an SMS)."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    moment = datetime.fromtimestamp(at_ms // 1000, tz=UTC).astimezone(zone)
    abbreviation = moment.tzname() or timezone
    if not seconds:
        return f"{moment:%H:%M} {abbreviation}"
    return f"{moment:%Y-%m-%d %H:%M:%S} {abbreviation}"


def coin_link(public_url: str, coin_id: int, timeframe: str) -> str | None:
    """Where the coin is on this server: its candles of the strategy's timeframe."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/v1/coins/{coin_id}/candles?timeframe={timeframe}"


# -- the words of an alert -----------------------------------------------------------------------


def worded(alert: Alert, style: Style, *, with_short: bool = True) -> Alert:
    """``alert`` with its ``subject``, ``text`` and ``short`` written (``with_short=False``: not the
    SMS text, which only a batch of one alert uses: ``ubot/notify/batches.py`` writes it then)."""
    said = short(alert, style) if with_short else alert.short
    return replace(alert, subject=subject(alert, style), text=text(alert, style), short=said)


def subject(alert: Alert, style: Style) -> str:
    simulated = " (simulated market)" if style.simulated else ""
    return f'uBot: "{alert.strategy_name}" fired for {_coin(alert)}{simulated}'


def text(alert: Alert, style: Style) -> str:
    said = templated(alert, style)
    if said is not None:
        return "\n".join([said, *_notes(alert, style)])
    lines = [
        f"{_coin(alert)} is at {number(alert.price)} {alert.currency}: "
        f'your strategy "{alert.strategy_name}" fired on {alert.timeframe}.'
    ]
    values = _values(alert)
    if values:
        lines.append(", ".join(f"{name} = {shown}" for name, shown in values))
    lines.append(f"Condition: {alert.condition}")
    zone = "" if alert.timezone == "UTC" else f" ({alert.timezone})"
    lines.append(f"Time: {local_time(alert.fired_at_ms, alert.timezone)}{zone}")
    link = coin_link(style.public_url, alert.coin_id, alert.timeframe)
    if link:
        lines.append(f"Chart: {link}")
    return "\n".join([*lines, *_notes(alert, style)])


def _notes(alert: Alert, style: Style) -> list[str]:
    """What the server says under every message, whatever the words above: what the market is."""
    notes = ["Simulated market: these prices are not real."] if style.simulated else []
    if alert.replayed:
        notes.append("Replayed from recorded data: not the live market.")
    return notes


def templated(alert: Alert, style: Style) -> str | None:
    """The alert's template, written for it; ``None`` without one (or with one that no longer reads)."""
    template = parsed(alert.template) if alert.template else None
    if template is None:
        return None
    return template.render(functools.partial(placeholder_text, alert, style))


def placeholder_text(alert: Alert, style: Style, placeholder: Placeholder) -> str:
    """What one placeholder of a template says for ``alert`` (``ubot/notify/templates.py``)."""
    name = placeholder.name
    if name == "price":
        return formatted(alert.price, placeholder.spec) if placeholder.spec else number(alert.price)
    if name == "value":
        value = alert.values.get(placeholder.key)
        return formatted(value, placeholder.spec) if placeholder.spec else value_text(placeholder.key, value)
    if name == "time":
        return local_time(alert.fired_at_ms, alert.timezone)
    if name == "link":
        return coin_link(style.public_url, alert.coin_id, alert.timeframe) or ""
    words = {
        "symbol": alert.symbol,
        "name": alert.name or alert.symbol,
        "currency": alert.currency,
        "condition": alert.condition,
        "strategy": alert.strategy_name,
        "timeframe": alert.timeframe,
    }
    return words[name]


def short(alert: Alert, style: Style) -> str:
    """One SMS: the parts that do not fit one segment are dropped, least useful first (the values,
    then the time); what still does not fit is cut by the SMS channel (``max_segments``). A
    template's words are cut to :data:`SMS_SEGMENTS` segments, keeping the note of a simulated
    market."""
    said = templated(alert, style)
    if said is not None:
        tail = "\nSimulated market" if style.simulated else ""
        fitted = truncate(
            said, SMS_SEGMENTS, measure=lambda part: sms_segments(part + tail), ellipsis=GSM_ELLIPSIS
        )
        return fitted + tail
    head = f"uBot: {alert.symbol} {number(alert.price)} {alert.currency}"
    values = ", ".join(f"{name} {shown}" for name, shown in _values(alert)[:2])
    strategy = f'"{alert.strategy_name}" {alert.timeframe}'
    when = local_time(alert.fired_at_ms, alert.timezone, seconds=False)
    tail = ". Simulated market" if style.simulated else ""
    candidates = [
        f"{head}, {values}. {strategy}, {when}{tail}" if values else f"{head}. {strategy}, {when}{tail}",
        f"{head}. {strategy}, {when}{tail}",
        f"{head}. {strategy}{tail}",
    ]
    return next((c for c in candidates if sms_segments(c) <= 1), candidates[-1])


def log_line(alert_id: int, alert: Alert) -> str:
    """The alert's INFO line: who, which strategy, the coin, its price, the condition and its values
    (user and market text through ``logtext.printable``, so that no line break or control character
    gets into the log)."""
    values = ", ".join(f"{name}={value_text(name, value)}" for name, value in alert.values.items())
    price = f" at {number(alert.price)} {alert.currency}" if alert.price is not None else ""
    name, condition = printable(alert.strategy_name, also="'"), printable(alert.condition, also="'")
    return (
        f"alert {alert_id}: user {alert.user_id}, strategy '{name}' (#{alert.strategy_id}): "
        f"{printable(alert.symbol)}{price} on {alert.timeframe}: '{condition}' [{values}]"
    )


def _coin(alert: Alert) -> str:
    return f"{alert.symbol} ({alert.name})" if alert.name and alert.name != alert.symbol else alert.symbol


def _values(alert: Alert) -> list[tuple[str, str]]:
    """The condition's values as shown, the price left out when the headline says it."""
    return [
        (name, value_text(name, value))
        for name, value in alert.values.items()
        if not (name == "price" and alert.price is not None)
    ]


# -- one message for a strategy's tick -----------------------------------------------------------

#: Channel -> (the longest text, how it is measured): Telegram counts UTF-16 code units, Twilio
#: characters; an e-mail lists every coin (a 1,000-coin batch is about 80 KB).
TEXT_LIMITS: dict[str, tuple[int, Callable[[str], int]]] = {
    "telegram": (4096, utf16_len),
    "whatsapp": (1600, len),
    "email": (200_000, len),
}


def significance(alert: Alert) -> tuple[bool, int, str]:
    """The order of a batch: the most significant coin first, by market cap rank (unranked coins
    last), then by symbol."""
    return (alert.rank is None, alert.rank or 0, alert.symbol)


def skipped_line(skipped: int) -> str:
    """What the next message says of the alerts an hourly cap kept back."""
    return f"{skipped:,} alert{'s' if skipped != 1 else ''} not sent before this one: hourly message cap reached."


def batch_subject(batch: Sequence[Alert], style: Style) -> str:
    """``uBot: "dip" fired for 12 coins: BTC, ETH, SOL and 9 more`` (one line)."""
    lead = batch[0]
    if len(batch) == 1:
        return lead.subject or subject(lead, style)
    named = ", ".join(a.symbol for a in batch[:3])
    more = f" and {len(batch) - 3:,} more" if len(batch) > 3 else ""
    simulated = " (simulated market)" if style.simulated else ""
    return f'uBot: "{lead.strategy_name}" fired for {len(batch):,} coins: {named}{more}{simulated}'


def batch_text(
    batch: Sequence[Alert],
    style: Style,
    *,
    limit: int | None = None,
    measure: Callable[[str], int] = len,
    skipped: int = 0,
    note: str = "",
) -> str:
    """The message of a batch: the coins in order (``significance``), one line each, as many as fit
    ``limit`` (in ``measure``), the rest counted; then the condition, the time, the link and what
    the market is. With a template: its words for each coin in place of the line (an entry of
    several lines when the template has several), then what the market is. ``skipped``: alerts an hourly cap kept back before (said first); ``note``: a last
    line (the strategy was paused)."""
    lead = batch[0]
    head = [skipped_line(skipped)] if skipped else []
    tail = [note] if note else []
    if len(batch) == 1:
        body = lead.text or text(lead, style)
        whole = "\n".join([*head, body, *tail])
        return whole if limit is None else truncate(whole, limit, measure=measure)
    head.append(f'Your strategy "{lead.strategy_name}" fired on {lead.timeframe} for {len(batch):,} coins:')
    zone = "" if lead.timezone == "UTC" else f" ({lead.timezone})"
    own = [templated(a, style) for a in batch]
    if any(said is None for said in own):  # uBot's words: one line per coin, the condition and the time
        lines = [coin_line(a, style) for a in batch]
        footer = [
            f"Condition: {lead.condition}",
            f"Time: {local_time(lead.fired_at_ms, lead.timezone)}{zone}",
        ]
    else:  # the template's words for each coin; entries of several lines apart by a blank line
        apart = any("\n" in said for said in own if said is not None)
        lines, footer = [f"{said}\n" if apart else said for said in own if said is not None], []
    footer.extend(_notes(lead, style))
    footer.extend(tail)
    shown = len(lines)
    if limit is not None:
        fixed = measure("\n".join([*head, *footer])) + 1
        room = limit - fixed - measure(f"…and {len(batch):,} more coins") - 1
        used, shown = 0, 0
        for line in lines:
            cost = measure(line) + 1
            if used + cost > room:
                break
            used, shown = used + cost, shown + 1
    listed = lines[:shown]
    if shown < len(batch):
        listed.append(f"…and {len(batch) - shown:,} more coins")
    whole = "\n".join([*head, *listed, *footer])
    return whole if limit is None else truncate(whole, limit, measure=measure)


def coin_line(alert: Alert, style: Style) -> str:
    """``BTC (Bitcoin) 67,432.12 USD, rsi(14) = 71.32 https://…/v1/coins/1/candles?timeframe=1h``"""
    values = ", ".join(f"{name} = {shown}" for name, shown in _values(alert))
    link = coin_link(style.public_url, alert.coin_id, alert.timeframe)
    return (
        f"{_coin(alert)} {number(alert.price)} {alert.currency}"
        + (f", {values}" if values else "")
        + (f" {link}" if link else "")
    )


def batch_short(batch: Sequence[Alert], style: Style, *, skipped: int = 0, note: str = "") -> str:
    """One SMS for the batch: ``uBot: "dip" 1h: BTC 67,432.12, ETH 3,100.00 +10 more, 20:21 CET``,
    as many coins as one segment holds (the rest counted); with a template, its words for each coin
    on one line, separated by ``;``."""
    lead = batch[0]
    before = f"({skipped:,} not sent) " if skipped else ""
    after = f" {note}" if note else ""
    if len(batch) == 1:
        return f"{before}{lead.short or short(lead, style)}{after}"
    when = local_time(lead.fired_at_ms, lead.timezone, seconds=False)
    tail = ". Simulated market" if style.simulated else ""

    own = [templated(a, style) for a in batch]
    if any(said is None for said in own):
        entries, joint = [f"{a.symbol} {number(a.price)}" for a in batch], ", "
    else:  # each coin's template words, on one line
        entries, joint = [" ".join(said.split()) for said in own if said is not None], "; "

    def candidate(n: int) -> str:
        coins = joint.join(entries[:n])
        more = f" +{len(batch) - n:,} more" if n < len(batch) else ""
        return f'{before}uBot: "{lead.strategy_name}" {lead.timeframe}: {coins}{more}, {when}{tail}{after}'

    best = candidate(1)
    for n in range(2, min(len(batch), 20) + 1):
        option = candidate(n)
        if sms_segments(option) > 1:
            break
        best = option
    return best


def test_message(where: Any, now_ms: int) -> Message:
    """A test message to ``where`` (a ``TestTarget``: channel, target, webhook secret, time zone),
    sent at ``now_ms``."""
    said = (
        f"This is a test message from uBot, sent {local_time(now_ms, where.timezone)}: "
        f"your {where.channel} alerts will arrive here."
    )
    key = secrets.token_hex(16)
    return Message(
        delivery_id=0,
        alert_id=0,
        channel=where.channel,
        target=where.target,
        subject="uBot: test message",
        text=said,
        payload={"delivery_id": key, "test": True, "text": said},
        secret=where.secret,
        key=key,
        short=f"uBot: test message. Your {where.channel} alerts will arrive here.",
    )


def verification_message(what: Any, now_ms: int, link: str | None = None) -> Message:
    """The one message that goes to a destination before it is verified (a ``Verification``:
    channel, target, code, webhook secret, time zone): its code (and ``link``, which confirms too:
    an e-mail's, when ``[http] public_url`` is set), or for a webhook a signed request whose body
    says ``"event": "verification"`` (answered 2xx, the webhook is verified)."""
    key = secrets.token_hex(16)
    if what.code:
        said = f"Your uBot verification code is {what.code}. It works for 15 minutes. "
        if link:
            said += f"Or confirm by opening this link (it works once, for 15 minutes too):\n{link}\n\n"
        said += "If you did not ask for it, ignore this message: nothing more will be sent here."
    else:
        said = f"uBot verification of this webhook, sent {local_time(now_ms, what.timezone)}: answer 2xx to accept alerts here."
    return Message(
        delivery_id=0,
        alert_id=0,
        channel=what.channel,
        target=what.target,
        subject="uBot: verification code" if what.code else "uBot: webhook verification",
        text=said,
        payload={"event": "verification", "delivery_id": key, "verification": True, "text": said},
        secret=what.secret,
        key=key,
        short=f"uBot code: {what.code}" if what.code else said,
    )
