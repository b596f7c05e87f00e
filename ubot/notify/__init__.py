"""Alerts after they are raised: the outbox (alert + delivery rows written before anything is sent),
the Notifier that delivers them with retries, and the channels (webhook, Telegram, Twilio, SMTP)."""
