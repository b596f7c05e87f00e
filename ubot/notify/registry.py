"""The channels this server can deliver on, built from the ``[notify]`` settings.

The webhook is always on. Telegram, SMS, WhatsApp and e-mail are on only when their provider is
configured; a delivery to a channel that is off fails at once, with :func:`not_configured` saying
which setting would turn it on.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ubot.notify.channel import Channel

#: Seconds to wait for each read from a provider API (Telegram, Twilio, the SMTP server); the whole
#: attempt is bounded by ``[notify] attempt_deadline_s``.
PROVIDER_TIMEOUT_S = 10.0

#: channel -> what turns it on.
REQUIRED_SETTINGS = {
    "webhook": "nothing (it is always on)",
    "telegram": "[notify] telegram_bot_token",
    "sms": "[notify] twilio_account_sid, twilio_auth_token and twilio_sms_from",
    "whatsapp": "[notify] twilio_account_sid, twilio_auth_token and twilio_whatsapp_from",
    "email": "[notify] smtp_host and smtp_from",
}


def not_configured(channel: str) -> str:
    """The failure detail of a delivery to a channel this server does not have."""
    needed = REQUIRED_SETTINGS.get(channel)
    if needed is None:
        return f"unknown channel {channel!r}"
    return f"{channel} is not configured on this server: set {needed}"


def build_channels(settings: Any) -> dict[str, Channel]:
    """``{name: channel}`` for every channel ``settings.notify`` turns on."""
    from ubot.notify.channels import EmailChannel, TelegramChannel, TwilioChannel, WebhookChannel

    notify: SimpleNamespace = settings.notify
    bounds = {"deadline_s": notify.attempt_deadline_s}
    answers = {"max_answer_bytes": notify.answer_max_bytes}
    channels: dict[str, Channel] = {
        "webhook": WebhookChannel(
            timeout_s=notify.webhook_timeout,
            allow_private_addresses=notify.webhook_allow_private,
            **bounds,
            **answers,
        )
    }
    if notify.telegram_bot_token:
        channels["telegram"] = TelegramChannel(
            bot_token=notify.telegram_bot_token,
            base_url=notify.telegram_api_url,
            bot_username=notify.telegram_bot_username,
            timeout_s=PROVIDER_TIMEOUT_S,
            **bounds,
            **answers,
        )
    twilio = notify.twilio_account_sid and notify.twilio_auth_token
    for name, sender in (("sms", notify.twilio_sms_from), ("whatsapp", notify.twilio_whatsapp_from)):
        if twilio and sender:
            channels[name] = TwilioChannel(
                name=name,
                account_sid=notify.twilio_account_sid,
                auth_token=notify.twilio_auth_token,
                from_number=sender,
                base_url=notify.twilio_api_url,
                timeout_s=PROVIDER_TIMEOUT_S,
                **bounds,
                **answers,
            )
    if notify.smtp_host and notify.smtp_from:
        channels["email"] = EmailChannel(
            host=notify.smtp_host,
            port=notify.smtp_port,
            sender=notify.smtp_from,
            username=notify.smtp_user or None,
            password=notify.smtp_password or None,
            security=notify.smtp_security,
            timeout_s=PROVIDER_TIMEOUT_S,
            **bounds,
        )
    return channels
