"""The SMS and WhatsApp channels against a fake Twilio: the form request and basic auth, the segment
budget, and Twilio's error codes mapped to outcomes."""

from __future__ import annotations

import base64
from email.utils import formatdate

import pytest

from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio, Hang, Reply, error, too_many
from ubot.notify.channels import TwilioChannel
from ubot.notify.channels.text import sms_segments

TO = "+4915112345678"


@pytest.fixture
def api():
    with FakeTwilio() as fake:
        yield fake


def sms(api: FakeTwilio, **options) -> TwilioChannel:
    settings = {
        "name": "sms",
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": FROM,
        "base_url": api.base_url,
        "timeout_s": 2.0,
    }
    return TwilioChannel(**{**settings, **options})


def test_sends_an_sms(api, make_message):
    outcome = sms(api).send(make_message(channel="sms", target=TO))

    assert outcome.status == "sent"
    assert outcome.detail == f"Twilio message SM{1:032x} queued, 1 segment"
    [request] = api.requests
    assert (request.method, request.path) == ("POST", f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert (
        request.header("Authorization")
        == "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    )
    assert request.form() == {
        "To": TO,
        "From": FROM,
        "Body": "BTC: rsi_14 < 30\nBTC 1h: close 61,250.5 USD, rsi_14 28.4",
    }


def test_sends_a_whatsapp_message(api, make_message):
    channel = sms(api, name="whatsapp")
    message = make_message(channel="whatsapp", target=TO)
    outcome = channel.send(message)
    assert outcome.status == "sent"
    form = api.requests[0].form()
    assert (form["To"], form["From"]) == (f"whatsapp:{TO}", f"whatsapp:{FROM}")
    assert channel.destination(message) == TO
    assert channel.destination(make_message(target=f"whatsapp:{TO}")) == TO


def test_an_sms_is_the_short_text_and_a_whatsapp_message_the_text(api, make_message):
    short = 'uBot: BTC 61,250.50 USD, rsi_14 28.40. "oversold" 1h, 20:21 CET'
    sms(api).send(make_message(channel="sms", target=TO, short=short))
    sms(api, name="whatsapp").send(make_message(channel="whatsapp", target=TO, short=short))
    assert [r.form()["Body"] for r in api.requests] == [short, "BTC 1h: close 61,250.5 USD, rsi_14 28.4"]


@pytest.mark.parametrize(
    ("text", "max_segments"),
    [
        ("BTC crossed its 200-day average. " * 40, 3),  # GSM-7
        ("BTC {ext} [chars] cost two septets " * 40, 2),  # GSM-7 with the extension table
        ("Биткоин пересёк среднюю 📈 " * 30, 3),  # UCS-2
        ("x" * 5000, 1),
    ],
)
def test_long_texts_fit_the_segment_budget(api, make_message, text, max_segments):
    outcome = sms(api, max_segments=max_segments).send(make_message(target=TO, text=text))
    assert outcome.status == "sent"
    body = api.requests[0].form()["Body"]
    assert body.startswith("BTC: rsi_14 < 30\n") and len(body) < len(text)
    assert int(api.messages[0]["num_segments"]) <= max_segments  # the fake's own count
    assert sms_segments(body) == max_segments  # the budget is used, not wasted


def test_whatsapp_is_capped_at_1600_characters(api, make_message):
    outcome = sms(api, name="whatsapp").send(make_message(target=TO, text="🚀 up " * 1000))
    assert outcome.status == "sent"
    body = api.requests[0].form()["Body"]
    assert len(body) <= 1600 and body.endswith("…")


@pytest.mark.parametrize(
    ("target", "detail"),
    [
        ("12345", "Twilio: HTTP 400, error 21211: The 'To' number 12345 is not a valid phone number."),
        ("+4917000000000", "Twilio: HTTP 400, error 21610: Attempt to send to unsubscribed recipient"),
    ],
)
def test_refused_recipients_fail(api, make_message, target, detail):
    api.unsubscribed.add("+4917000000000")
    outcome = sms(api).send(make_message(target=target))
    assert (outcome.status, outcome.detail) == ("failed", detail)


def test_a_wrong_from_number_fails(api, make_message):
    outcome = sms(api, from_number="+15550000000").send(make_message(target=TO))
    assert outcome.status == "failed"
    assert "error 21606" in outcome.detail


def test_bad_credentials_fail_without_showing_the_token(api, make_message):
    outcome = sms(api, auth_token="0" * 32).send(make_message(target=TO))
    assert (outcome.status, outcome.detail) == ("failed", "Twilio: HTTP 401, error 20003: Authenticate")
    outcome = sms(api, account_sid="AC" + "f" * 32).send(make_message(target=TO))
    assert outcome.status == "failed"


@pytest.mark.parametrize(
    ("reply", "retry_after"),
    [
        (too_many(retry_after=3), 3.0),
        (too_many(), None),
        (error(20429, "Too Many Requests", 400), None),  # the code alone is enough
        (error(20500, "An internal server error has occurred", 500), None),
        (
            Reply(
                503, "<html>Service Unavailable</html>", {"Retry-After": "30", "Content-Type": "text/html"}
            ),
            30.0,
        ),
    ],
)
def test_rate_limits_and_server_errors_are_retried(api, make_message, reply, retry_after):
    api.script(reply)
    outcome = sms(api).send(make_message(target=TO))
    assert (outcome.status, outcome.retry_after_s) == ("retry", retry_after)
    assert AUTH_TOKEN not in outcome.detail


def test_a_retry_after_date_is_read_on_the_channels_clock(api, make_message):
    now = 1764000000.0
    api.script(too_many(retry_after=formatdate(now + 120, usegmt=True)))
    outcome = sms(api, clock=lambda: now).send(make_message(target=TO))
    assert (outcome.status, outcome.retry_after_s) == ("retry", 120.0)


def test_a_slow_api_is_retried(api, make_message):
    api.script(Hang())
    outcome = sms(api, timeout_s=0.2).send(make_message(target=TO))
    api.release.set()
    assert (outcome.status, outcome.detail) == ("retry", "Twilio: no answer within 0.2 s (timed out)")


def test_constructor_checks():
    with pytest.raises(ValueError, match="sms, whatsapp"):
        TwilioChannel(name="fax", account_sid="AC", auth_token="t", from_number=FROM)
    with pytest.raises(ValueError, match="max_segments"):
        TwilioChannel(name="sms", account_sid="AC", auth_token="t", from_number=FROM, max_segments=0)
    channel = TwilioChannel(name="sms", account_sid="AC1", auth_token="secret-token", from_number=FROM)
    assert (channel.name, channel.min_interval_s) == ("sms", 1.0)
    assert "secret-token" not in repr(channel)
