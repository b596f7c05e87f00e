"""The outbox's decisions, without threads or a database: backoff schedule, retry/fail/sent, messages
built from written alerts, quiet-hours holds, the alert's log line and JSON document."""

from __future__ import annotations

import json
import logging
import math

import pytest

from ubot.models.alerts import DeliveryRow, WrittenAlert
from ubot.notify.channel import FAILED, RETRY, SENT, Message, Outcome
from ubot.notify.messages import Alert, DeliveryTarget
from ubot.notify.outbox import (
    Decision,
    Job,
    RetryPolicy,
    alert_document,
    batch_document,
    decide,
    hold_until,
    jobs_of,
    signed,
    unconfigured,
)
from ubot.timeutil import parse_iso_ms

NOW = 1_700_000_000_000


def make_alert(**overrides) -> Alert:
    fields = {
        "strategy_id": 4,
        "user_id": 9,
        "strategy_name": "oversold",
        "coin_id": 1,
        "symbol": "BTC",
        "timeframe": "1h",
        "fired_at_ms": NOW,
        "bar_open_ms": NOW - 600_000,
        "condition": "rsi(14) < 30",
        "values": {"rsi(14)": 28.4, "close": 61250.5},
        "subject": "BTC: rsi(14) < 30",
        "text": "BTC 1h: rsi(14) 28.4",
        "deliveries": (DeliveryTarget("webhook", "https://example.com/hook"),),
    }
    fields.update(overrides)
    return Alert(**fields)


def job(attempts: int = 0, channel: str = "telegram") -> Job:
    message = Message(1, 2, channel, "42", "s", "t", {})
    return Job(message, user_id=9, attempts=attempts, due_ms=NOW)


# -- backoff ----------------------------------------------------------------------------------------


def test_backoff_doubles_from_backoff_s() -> None:
    policy = RetryPolicy(max_attempts=8, backoff_s=5, backoff_max_s=900)

    assert [policy.delay_s(n) for n in range(1, 8)] == [5, 10, 20, 40, 80, 160, 320]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(max_attempts=10, backoff_s=5, backoff_max_s=60)

    assert [policy.delay_s(n) for n in range(1, 8)] == [5, 10, 20, 40, 60, 60, 60]


def test_a_delivery_that_keeps_failing_is_retried_on_schedule_then_fails_with_the_last_detail() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_s=5, backoff_max_s=30)
    current, now, waits = job(), NOW, []

    while True:
        decision = decide(current, Outcome(RETRY, f"HTTP 503 ({current.attempts + 1})"), now, policy)
        if decision.status != RETRY:
            break
        waits.append((decision.next_attempt_ms - now) / 1000)
        now = decision.next_attempt_ms
        current = Job(current.message, current.user_id, decision.attempts, now)

    assert waits == [5, 10, 20, 30]
    assert decision == Decision(FAILED, 5, now, detail="HTTP 503 (5)")


# -- decisions --------------------------------------------------------------------------------------


def test_sent_counts_the_attempt() -> None:
    assert decide(job(attempts=2), Outcome(SENT), NOW, RetryPolicy()) == Decision(SENT, 3, NOW)


def test_a_retry_waits_the_backoff() -> None:
    decision = decide(job(attempts=1), Outcome(RETRY, "timed out"), NOW, RetryPolicy(8, 5, 900))

    assert decision == Decision(RETRY, 2, NOW, NOW + 10_000, "timed out")


def test_the_providers_retry_after_wins_when_longer() -> None:
    policy = RetryPolicy(8, 5, 900)

    longer = decide(job(), Outcome(RETRY, "HTTP 429", retry_after_s=42.5), NOW, policy)
    shorter = decide(job(), Outcome(RETRY, "HTTP 429", retry_after_s=1), NOW, policy)

    assert longer.next_attempt_ms == NOW + 42_500
    assert shorter.next_attempt_ms == NOW + 5_000


def test_failed_is_final_at_once() -> None:
    decision = decide(job(), Outcome(FAILED, "HTTP 403: bot blocked by the user"), NOW, RetryPolicy())

    assert decision == Decision(FAILED, 1, NOW, detail="HTTP 403: bot blocked by the user")


def test_a_single_attempt_policy_never_retries() -> None:
    assert decide(job(), Outcome(RETRY, "timeout"), NOW, RetryPolicy(max_attempts=1)).status == FAILED


def test_an_unconfigured_channel_fails_naming_the_setting() -> None:
    decision = unconfigured(job(channel="telegram"), NOW)

    assert decision.status == FAILED and decision.attempts == 0
    assert decision.detail == "telegram is not configured on this server: set [notify] telegram_bot_token"
    assert "twilio_sms_from" in unconfigured(job(channel="sms"), NOW).detail
    assert "smtp_host" in unconfigured(job(channel="email"), NOW).detail
    assert unconfigured(job(channel="pigeon"), NOW).detail == "unknown channel 'pigeon'"


# -- messages of a written alert -------------------------------------------------------------------


def test_jobs_of_a_written_alert() -> None:
    alert = make_alert()
    rows = (
        DeliveryRow(11, 5, "webhook", "https://example.com/hook", "pending", 0, NOW, key="ab" * 16),
        DeliveryRow(12, 5, "telegram", "42", "held", 2, NOW + 3_600_000),
    )

    jobs = jobs_of(WrittenAlert(5, alert, rows))

    assert [(j.message.delivery_id, j.attempts, j.due_ms, j.user_id) for j in jobs] == [
        (11, 0, NOW, 9),
        (12, 2, NOW + 3_600_000, 9),
    ]
    first = jobs[0].message
    assert (first.alert_id, first.channel, first.target, first.key, first.secret) == (
        5,
        "webhook",
        rows[0].target,
        "ab" * 16,
        None,  # read from the settings when sent: signed() below
    )
    assert (first.subject, first.text) == (alert.subject, alert.text)
    assert first.payload == batch_document("ab" * 16, alert, [alert_document(5, alert)])
    assert first.payload["delivery_id"] == first.key and first.payload["fired_at"].endswith("Z")
    assert jobs[1].message.secret is None
    asked: list[int] = []

    def secret_of(user_id: int) -> str:
        asked.append(user_id)
        return "k3y"

    assert signed(jobs[0], secret_of).secret == "k3y" and asked == [9]
    assert signed(jobs[1], secret_of) is jobs[1].message and asked == [9]  # only a webhook is signed


def test_the_alert_document_is_json_with_its_id() -> None:
    alert = make_alert(values={"rsi(14)": 28.4, "volume_24h": None, "change": math.nan})

    document = alert_document(5, alert)

    assert json.loads(json.dumps(document, allow_nan=False)) == document
    assert document["id"] == 5
    assert document["values"] == {"rsi(14)": 28.4, "volume_24h": None, "change": None}
    assert document["fired_at"] == "2023-11-14T22:13:20.000Z"
    assert document["fired_at_ms"] == NOW
    assert document["strategy_name"] == "oversold" and document["condition"] == "rsi(14) < 30"


# -- quiet hours -----------------------------------------------------------------------------------


def test_hold_until_the_end_of_the_quiet_hours() -> None:
    alert = make_alert(quiet_hours="22:00-07:00", timezone="Europe/Paris")
    night = parse_iso_ms("2024-01-15T23:00:00Z")  # midnight in Paris

    assert hold_until(alert, night) == parse_iso_ms("2024-01-16T06:00:00Z")
    assert hold_until(alert, parse_iso_ms("2024-01-15T12:00:00Z")) is None
    assert hold_until(make_alert(), night) is None


def test_a_mute_holds_like_quiet_hours_and_past_them_when_it_ends_inside() -> None:
    """The Telegram bot's /mute: one rule with quiet hours, held until both have ended."""
    noon = parse_iso_ms("2024-01-15T12:00:00Z")
    muted = make_alert(muted_until_ms=noon + 3_600_000)
    assert hold_until(muted, noon) == noon + 3_600_000
    assert hold_until(muted, noon + 3_600_000) is None  # over
    # muted until 23:00 UTC (midnight in Paris), inside the quiet hours: held until they end
    both = make_alert(
        quiet_hours="22:00-07:00",
        timezone="Europe/Paris",
        muted_until_ms=parse_iso_ms("2024-01-15T23:00:00Z"),
    )
    assert hold_until(both, noon) == parse_iso_ms("2024-01-16T06:00:00Z")
    # quiet hours that end inside the mute: held until the mute ends
    late = make_alert(
        quiet_hours="22:00-07:00",
        timezone="Europe/Paris",
        muted_until_ms=parse_iso_ms("2024-01-16T09:00:00Z"),
    )
    assert hold_until(late, parse_iso_ms("2024-01-15T23:00:00Z")) == parse_iso_ms("2024-01-16T09:00:00Z")


@pytest.mark.parametrize(("spec", "zone"), [("late", "UTC"), ("22:00-07:00", "Nowhere/Town")])
def test_unreadable_quiet_hours_hold_nothing(caplog, spec: str, zone: str) -> None:
    with caplog.at_level(logging.WARNING):
        assert hold_until(make_alert(quiet_hours=spec, timezone=zone), NOW) is None
    assert "quiet hours ignored" in caplog.text
