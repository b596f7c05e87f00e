"""The delivery channels, each one small class behind :class:`ubot.notify.channel.Channel`:
webhook (signed JSON POST), Telegram (Bot API), SMS and WhatsApp (Twilio), e-mail (SMTP)."""

from ubot.notify.channels.email import EmailChannel
from ubot.notify.channels.telegram import TelegramChannel
from ubot.notify.channels.twilio import TwilioChannel
from ubot.notify.channels.webhook import WebhookChannel

__all__ = ["EmailChannel", "TelegramChannel", "TwilioChannel", "WebhookChannel"]
