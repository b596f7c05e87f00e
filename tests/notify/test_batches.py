"""One message per strategy per tick, per destination (ubot/notify/batches.py), the hourly caps and
the pause of a strategy that fires too often (ubot/notify/caps.py): plain logic, time passed in."""

from __future__ import annotations

from dataclasses import replace

from ubot.notify.batches import batched, group
from ubot.notify.caps import HOUR_MS, Caps, FiringLimit
from ubot.notify.channels.text import sms_segments, utf16_len
from ubot.notify.messages import Alert, DeliveryTarget
from ubot.notify.words import Style, worded

AT = 1_764_876_095_000
STYLE = Style("https://ubot.example.com", simulated=True)
TARGETS = (
    DeliveryTarget("telegram", "42"),
    DeliveryTarget("sms", "+15551234567"),
    DeliveryTarget("email", "a@example.com"),
    DeliveryTarget("webhook", "https://hook.example.com/x"),
)


def coin(n: int, strategy_id: int = 1, **overrides) -> Alert:
    fields = {
        "strategy_id": strategy_id,
        "user_id": 3,
        "strategy_name": "flood",
        "coin_id": n,
        "symbol": f"C{n}",
        "name": f"Coin 🪙 {n}",  # outside the BMP: 2 UTF-16 units
        "price": 1000.0 / n,
        "timeframe": "1m",
        "fired_at_ms": AT,
        "bar_open_ms": AT - AT % 60_000,
        "condition": "price > 0",
        "values": {"price": 1000.0 / n},
        "subject": "",
        "text": "",
        "deliveries": TARGETS,
        "rank": n,
        "timezone": "Europe/Berlin",
    }
    fields.update(overrides)
    return worded(Alert(**fields), STYLE)


def no_caps() -> Caps:
    return Caps(None, None)


def never() -> FiringLimit:
    return FiringLimit(None, HOUR_MS)


def test_a_strategys_coins_become_one_delivery_per_channel_most_significant_first() -> None:
    flood = [coin(n) for n in range(1000, 0, -1)]  # least significant first, as a scan may give them
    other = coin(7, strategy_id=2, strategy_name="other")

    out = batched([*flood, other], STYLE, no_caps(), never(), AT).alerts

    assert len(out) == 1001
    lead, *rest = out[:1000]
    assert lead.symbol == "C1" and [a.symbol for a in rest[:2]] == ["C2", "C3"]
    assert all(a.deliveries == TARGETS for a in rest)  # not written: the lead's deliveries carry them
    assert [t.channel for t in lead.deliveries] == ["telegram", "sms", "email", "webhook"]
    telegram, sms, email, webhook = lead.deliveries
    assert utf16_len(telegram.text) <= 4096 and telegram.text.startswith(
        'Your strategy "flood" fired on 1m for 1,000'
    )
    assert "C1 (Coin 🪙 1) 1,000.00 USD" in telegram.text.splitlines()[1]
    assert "more coins" in telegram.text and "Simulated market" in telegram.text
    listed = sum(1 for line in telegram.text.splitlines() if "(Coin" in line)
    assert f"…and {1000 - listed:,} more coins" in telegram.text
    assert sms_segments(sms.text) == 1 and sms.text.startswith('uBot: "flood" 1m: C1 1,000.00, C2 500.00')
    assert "+" in sms.text and "more" in sms.text
    assert email.text.count("\n") > 1000 and "more coins" not in email.text  # every coin
    assert email.subject == 'uBot: "flood" fired for 1,000 coins: C1, C2, C3 and 997 more (simulated market)'
    assert webhook.text == ""  # the body lists the alerts
    assert out[1000].deliveries == other.deliveries  # a batch of one: its own words


def test_unranked_coins_come_last() -> None:
    batch = group([coin(1, rank=None, symbol="ZZZ"), coin(2, rank=5), coin(3, rank=None, symbol="AAA")])
    (alerts,) = batch
    assert [a.symbol for a in alerts] == ["C2", "AAA", "ZZZ"]


def test_over_an_hourly_cap_a_message_is_capped_and_the_next_one_says_how_many_were_not_sent() -> None:
    caps = Caps(per_user=100, per_destination=2)
    one = (DeliveryTarget("telegram", "42"),)
    messages = []
    for minute in range(4):
        alerts = [coin(n, deliveries=one, fired_at_ms=AT + minute) for n in (1, 2, 3)]
        (lead, *_) = batched(alerts, STYLE, caps, never(), AT + minute * 60_000).alerts
        messages.append(lead.deliveries[0])
    assert [m.capped for m in messages] == [False, False, True, True]
    # an hour after the first, room again: the 6 alerts of the two capped ticks are said
    (lead, *_) = batched([coin(9, deliveries=one)], STYLE, caps, never(), AT + HOUR_MS).alerts
    (message,) = lead.deliveries
    assert not message.capped and message.skipped == 6
    assert message.text.startswith("6 alerts not sent before this one: hourly message cap reached.\n")
    (lead, *_) = batched([coin(9, deliveries=one)], STYLE, caps, never(), AT + HOUR_MS + 1).alerts
    assert lead.deliveries[0].capped  # the second message of the new hour: the cap again


def test_the_per_user_cap_counts_every_destination_of_the_user() -> None:
    caps = Caps(per_user=3, per_destination=None)
    (lead, *_) = batched([coin(1)], STYLE, caps, never(), AT).alerts
    assert [t.capped for t in lead.deliveries] == [False, False, False, True]
    (lead, *_) = batched([coin(1, user_id=4)], STYLE, caps, never(), AT).alerts  # another user
    assert not any(t.capped for t in lead.deliveries[:3])


def test_a_strategy_firing_too_often_is_paused_and_its_message_says_so() -> None:
    limit = FiringLimit(max_alerts=5, window_ms=10 * 60_000)
    one = (DeliveryTarget("telegram", "42"),)
    first = batched([coin(n, deliveries=one) for n in (1, 2, 3)], STYLE, no_caps(), limit, AT)
    assert first.paused == ()
    second = batched([coin(n, deliveries=one) for n in (1, 2, 3)], STYLE, no_caps(), limit, AT + 60_000)
    ((strategy_id, reason),) = second.paused
    assert strategy_id == 1
    assert reason.startswith("paused by uBot: it raised 6 alerts within 10 minutes, more than the 5 allowed")
    assert (
        second.alerts[0]
        .deliveries[0]
        .text.endswith('uBot paused "flood": it fired too often. Enable it again when you want it back.')
    )
    # another strategy is counted apart; the window slides
    assert batched([coin(1, strategy_id=2)], STYLE, no_caps(), limit, AT + 60_000).paused == ()
    later = batched(
        [coin(n, deliveries=one) for n in (1, 2, 3, 4, 5)], STYLE, no_caps(), limit, AT + 12 * 60_000
    )
    assert later.paused == ()


def test_a_single_alert_keeps_its_own_words() -> None:
    alert = coin(1, deliveries=(DeliveryTarget("telegram", "42"),))
    (out,) = batched([alert], STYLE, no_caps(), never(), AT).alerts
    assert out.deliveries == (replace(alert.deliveries[0]),)
    assert out.deliveries[0].text == ""  # the alert's own text is sent
