"""The Telegram channel against a fake Bot API: the sendMessage request, every error mapped to an
outcome, flood control's retry_after, the 4,096-unit cut, and the token kept out of every text."""

from __future__ import annotations

import logging
from email.utils import formatdate

import pytest

from tests.fakes.base import Reply
from tests.fakes.telegram import TOKEN, Drop, FakeTelegram, Hang, error, flood
from tests.support.ports import refused_port
from ubot.notify.channels import TelegramChannel
from ubot.notify.channels.telegram import MAX_TEXT, message_text
from ubot.notify.channels.text import utf16_len


@pytest.fixture
def api():
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def channel(api) -> TelegramChannel:
    return TelegramChannel(bot_token=TOKEN, base_url=api.base_url, timeout_s=2.0)


def test_sends_one_message(api, channel, make_message):
    outcome = channel.send(make_message(channel="telegram", target="42"))

    assert outcome == type(outcome)("sent", "Telegram message 1")
    [request] = api.requests
    assert (request.method, request.path) == ("POST", f"/bot{TOKEN}/sendMessage")
    assert request.header("Content-Type") == "application/json"
    assert request.json() == {
        "chat_id": 42,
        "text": "BTC 1h: close 61,250.5 USD, rsi_14 28.4",  # the text: its first line is the headline
        "disable_web_page_preview": True,
    }
    assert api.sent[0]["chat"]["id"] == 42


def test_a_channel_username_is_sent_as_a_string(api, channel, make_message):
    api.chats.add("@ubot_alerts")
    assert channel.send(make_message(target="@ubot_alerts")).status == "sent"
    assert api.requests[0].json()["chat_id"] == "@ubot_alerts"


@pytest.mark.parametrize(
    ("setup", "target", "detail"),
    [
        ({}, "999", "Telegram: Bad Request: chat not found (error 400)"),
        ({"blocked": "42"}, "42", "Telegram: Forbidden: bot was blocked by the user (error 403)"),
        ({"token": "123456789:wrong"}, "42", "Telegram: Unauthorized (error 401)"),
    ],
)
def test_final_errors(api, make_message, setup, target, detail):
    if "blocked" in setup:
        api.blocked.add(setup["blocked"])
    channel = TelegramChannel(bot_token=setup.get("token", TOKEN), base_url=api.base_url)
    outcome = channel.send(make_message(target=target))
    assert (outcome.status, outcome.detail, outcome.retry_after_s) == ("failed", detail, None)


def test_unknown_method_is_404(api, make_message):
    channel = TelegramChannel(bot_token=TOKEN, base_url=api.base_url + "/nothing-here")
    outcome = channel.send(make_message(target="42"))
    assert (outcome.status, outcome.detail) == ("failed", "Telegram: Unauthorized (error 401)")


def test_flood_control_is_retried_after_the_given_wait(api, channel, make_message):
    api.script(flood(17))
    outcome = channel.send(make_message(target="42"))
    assert (outcome.status, outcome.retry_after_s) == ("retry", 17.0)
    assert outcome.detail == "Telegram: Too Many Requests: retry after 17"


def test_429_without_parameters_uses_the_header(api, channel, make_message):
    api.script(
        Reply(429, {"ok": False, "error_code": 429, "description": "Too Many Requests"}, {"Retry-After": "4"})
    )
    assert channel.send(make_message(target="42")).retry_after_s == 4.0


def test_a_retry_after_date_is_read_on_the_channels_clock(api, make_message):
    now = 1764000000.0
    channel = TelegramChannel(bot_token=TOKEN, base_url=api.base_url, timeout_s=2.0, clock=lambda: now)
    api.script(
        Reply(
            429,
            {"ok": False, "error_code": 429, "description": "Too Many Requests"},
            {"Retry-After": formatdate(now + 45, usegmt=True)},
        )
    )
    assert channel.send(make_message(target="42")).retry_after_s == 45.0


def test_group_migration_is_named(api, channel, make_message):
    api.script(
        error(400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=-100777)
    )
    outcome = channel.send(make_message(target="-12345"))
    assert outcome.status == "failed"
    assert "now the supergroup chat -100777" in outcome.detail


@pytest.mark.parametrize(
    "reply",
    [
        Reply(502, "<html><head><title>502 Bad Gateway</title></head></html>", {"Content-Type": "text/html"}),
        error(500, "Internal Server Error"),
        Reply(200, "not json"),
    ],
)
def test_server_faults_are_retried(api, channel, make_message, reply):
    api.script(reply)
    assert channel.send(make_message(target="42")).status == "retry"


def test_faults_keep_the_token_out_of_details_and_logs(api, make_message, caplog):
    caplog.set_level(logging.DEBUG)
    api.script(Hang(), Drop(), flood(3), error(400, "Bad Request: chat not found"))
    channel = TelegramChannel(bot_token=TOKEN, base_url=api.base_url, timeout_s=0.2)
    outcomes = [channel.send(make_message(target="42")) for _ in range(5)]
    api.release.set()
    with refused_port() as port:
        refused = TelegramChannel(bot_token=TOKEN, base_url=f"http://127.0.0.1:{port}")
        outcomes.append(refused.send(make_message(target="42")))

    assert [o.status for o in outcomes] == ["retry", "retry", "retry", "failed", "sent", "retry"]
    assert outcomes[0].detail == "Telegram: no answer within 0.2 s (timed out)"
    assert outcomes[-1].detail == "Telegram: connection refused"
    secret_part = TOKEN.split(":")[1]
    for outcome in outcomes:
        assert secret_part not in outcome.detail
    assert "sendMessage" in caplog.text  # urllib3's request lines are there, redacted
    assert secret_part not in caplog.text
    assert secret_part not in repr(channel)


def test_long_texts_are_cut_to_telegrams_limit(api, channel, make_message):
    text = "📈 BTC crossed " * 600  # emoji count 2 UTF-16 units
    outcome = channel.send(make_message(target="42", text=text))
    assert outcome.status == "sent"
    sent = api.requests[0].json()["text"]
    assert utf16_len(sent) <= MAX_TEXT < utf16_len(text)
    assert sent.endswith("…") and sent.startswith("📈 BTC crossed")


def test_message_text():
    assert message_text("Subject", "Body") == "Body"  # the subject is the e-mail's
    assert message_text("", "Body") == "Body"
    assert message_text("Subject ", "") == "Subject"
    assert utf16_len(message_text("S", "x" * 5000)) == MAX_TEXT


def test_the_fake_also_takes_form_bodies(api):
    import requests

    response = requests.post(
        f"{api.base_url}/bot{TOKEN}/sendMessage", data={"chat_id": "42", "text": "hi"}, timeout=5
    )
    assert response.json()["result"]["text"] == "hi"


def test_channel_attributes(make_message):
    channel = TelegramChannel(bot_token=TOKEN)
    assert (channel.name, channel.min_interval_s) == ("telegram", 1.0)
    assert channel.destination(make_message(target=" 42 ")) == "42"
