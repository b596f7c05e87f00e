"""build_channels: the webhook always, the providers only when their settings are there."""

from __future__ import annotations

import pytest

from ubot.config import ConfigError, load_settings
from ubot.notify.channels import EmailChannel, TelegramChannel, TwilioChannel, WebhookChannel
from ubot.notify.registry import REQUIRED_SETTINGS, build_channels, not_configured

TWILIO = {"UBOT_NOTIFY_TWILIO_ACCOUNT_SID": "AC123", "UBOT_NOTIFY_TWILIO_AUTH_TOKEN": "t0ken"}


def channels(**environ: str) -> dict:
    return build_channels(load_settings(None, environ=environ))


def test_by_default_only_the_webhook() -> None:
    built = channels()

    assert list(built) == ["webhook"]
    assert isinstance(built["webhook"], WebhookChannel)
    assert built["webhook"].allow_private_addresses is False
    assert built["webhook"].timeout_s == 10


def test_webhook_settings() -> None:
    built = channels(UBOT_NOTIFY_WEBHOOK_TIMEOUT="2.5", UBOT_NOTIFY_WEBHOOK_ALLOW_PRIVATE="true")

    assert built["webhook"].timeout_s == 2.5
    assert built["webhook"].allow_private_addresses is True


def test_telegram_with_a_bot_token() -> None:
    built = channels(
        UBOT_NOTIFY_TELEGRAM_BOT_TOKEN="123:abc", UBOT_NOTIFY_TELEGRAM_API_URL="http://127.0.0.1:9/"
    )

    assert isinstance(built["telegram"], TelegramChannel)
    assert built["telegram"].name == "telegram"
    assert built["telegram"].base_url == "http://127.0.0.1:9"
    assert "123:abc" not in repr(built["telegram"])


def test_twilio_makes_sms_and_whatsapp_for_each_sender_set() -> None:
    sms_only = channels(**TWILIO, UBOT_NOTIFY_TWILIO_SMS_FROM="+15550001111")
    both = channels(
        **TWILIO, UBOT_NOTIFY_TWILIO_SMS_FROM="+15550001111", UBOT_NOTIFY_TWILIO_WHATSAPP_FROM="+15550002222"
    )

    assert sorted(sms_only) == ["sms", "webhook"]
    assert sorted(both) == ["sms", "webhook", "whatsapp"]
    assert isinstance(both["sms"], TwilioChannel) and both["sms"].name == "sms"
    assert isinstance(both["whatsapp"], TwilioChannel) and both["whatsapp"].name == "whatsapp"


def test_email_with_an_smtp_host() -> None:
    built = channels(
        UBOT_NOTIFY_SMTP_HOST="smtp.example.com",
        UBOT_NOTIFY_SMTP_PORT="465",
        UBOT_NOTIFY_SMTP_SECURITY="ssl",
        UBOT_NOTIFY_SMTP_FROM="alerts@example.com",
    )

    assert isinstance(built["email"], EmailChannel)
    assert (built["email"].host, built["email"].port) == ("smtp.example.com", 465)
    assert built["email"].username is None  # no login without smtp_user


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({"UBOT_NOTIFY_TWILIO_ACCOUNT_SID": "AC1"}, "twilio_auth_token"),
        ({**TWILIO}, "twilio_sms_from"),
        ({"UBOT_NOTIFY_TWILIO_SMS_FROM": "+15550001111"}, "twilio_account_sid"),
        ({"UBOT_NOTIFY_SMTP_HOST": "smtp.example.com"}, "smtp_from"),
        ({"UBOT_NOTIFY_SMTP_PASSWORD": "pw"}, "smtp_user"),
        ({"UBOT_NOTIFY_BACKOFF_S": "60", "UBOT_NOTIFY_BACKOFF_MAX_S": "30"}, "backoff_max_s"),
    ],
)
def test_half_configured_providers_are_refused_at_start_up(environ: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        load_settings(None, environ=environ)
    assert "t0ken" not in str(info.value)


@pytest.mark.parametrize(
    ("variable", "raw"),
    [
        ("UBOT_NOTIFY_MAX_ATTEMPTS", "0"),
        ("UBOT_NOTIFY_BACKOFF_S", "-1"),
        ("UBOT_NOTIFY_SMTP_PORT", "70000"),
        ("UBOT_NOTIFY_SMTP_SECURITY", "tls"),
        ("UBOT_NOTIFY_TWILIO_SMS_FROM", "5550001111"),
        ("UBOT_NOTIFY_SMTP_FROM", "not an address"),
        ("UBOT_NOTIFY_TELEGRAM_API_URL", "api.telegram.org"),
    ],
)
def test_bad_values_name_the_option(variable: str, raw: str) -> None:
    name = variable.removeprefix("UBOT_NOTIFY_").lower()
    with pytest.raises(ConfigError, match=rf"\[notify\] {name}; expected"):
        load_settings(None, environ={variable: raw})


def test_notify_defaults() -> None:
    notify = load_settings(None, environ={}).notify

    assert (notify.max_attempts, notify.backoff_s, notify.backoff_max_s) == (8, 5, 900)
    assert notify.webhook_allow_private is False and notify.smtp_security == "starttls"


def test_secrets_are_hidden_in_describe() -> None:
    text = load_settings(
        None,
        environ={
            **TWILIO,
            "UBOT_NOTIFY_TWILIO_SMS_FROM": "+15550001111",
            "UBOT_NOTIFY_SMTP_USER": "u",
            "UBOT_NOTIFY_SMTP_PASSWORD": "pw0rd",
        },
    ).describe()

    assert "t0ken" not in text and "pw0rd" not in text
    assert "notify.twilio_auth_token=(set)" in text and "notify.telegram_bot_token=(unset)" in text


def test_every_channel_says_what_turns_it_on() -> None:
    for name in ("telegram", "sms", "whatsapp", "email"):
        assert not_configured(name).startswith(f"{name} is not configured on this server: set [notify] ")
    assert set(REQUIRED_SETTINGS) == {"webhook", "telegram", "sms", "whatsapp", "email"}
