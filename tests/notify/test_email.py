"""The e-mail channel against a local SMTP server: the message as received, STARTTLS required or
refused, implicit TLS, AUTH, and every SMTP fault mapped to an outcome."""

from __future__ import annotations

import pytest

from tests.fakes.smtp import FakeSmtp
from tests.support.ports import refused_port
from ubot.notify.channels import EmailChannel

SENDER = "uBot alerts <alerts@ubot.example.org>"
TO = "ada@example.com"
PASSWORD = "s3cret-smtp-pass"


def channel_for(fake: FakeSmtp, **options) -> EmailChannel:
    settings = {"host": fake.host, "port": fake.port, "sender": SENDER, "security": "none", "timeout_s": 2.0}
    return EmailChannel(**{**settings, **options})


def test_sends_a_plain_text_email(make_message):
    with FakeSmtp() as smtp:
        message = make_message(
            channel="email", target=TO, subject="BTC: rsi_14 < 30 ✓", text="Zürich 1h\n€ 61.250"
        )
        outcome = channel_for(smtp).send(message)

    assert outcome.status == "sent", outcome
    assert (
        outcome.detail
        == "accepted by 127.0.0.1 as <ubot.delivery.5f0c9a1e3b7d4c2a8e6f1b0d9c7a5e3f@ubot.example.org>"
    )
    [received] = smtp.messages
    assert (received.mail_from, received.rcpt_tos, received.tls, received.user) == (
        "alerts@ubot.example.org",
        (TO,),
        False,
        None,
    )
    email = received.message()
    assert email["From"] == SENDER
    assert email["To"] == TO
    assert email["Subject"] == "BTC: rsi_14 < 30 ✓"
    assert email["Message-ID"] == "<ubot.delivery.5f0c9a1e3b7d4c2a8e6f1b0d9c7a5e3f@ubot.example.org>"
    assert email["Auto-Submitted"] == "auto-generated"
    assert email["Date"].datetime is not None
    assert email.get_content_type() == "text/plain"
    assert email.get_content().replace("\r\n", "\n") == "Zürich 1h\n€ 61.250\n"
    assert smtp.commands == ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"]


def test_a_subject_cannot_inject_headers(make_message):
    with FakeSmtp() as smtp:
        outcome = channel_for(smtp).send(make_message(target=TO, subject="BTC\r\nBcc: victim@example.com"))
    assert outcome.status == "sent"
    email = smtp.messages[0].message()
    assert email["Subject"] == "BTC Bcc: victim@example.com" and email["Bcc"] is None


def test_starttls_is_required(make_message):
    with FakeSmtp() as smtp:
        outcome = channel_for(smtp, security="starttls").send(make_message(target=TO))
        port = smtp.port
    assert outcome.status == "failed"
    assert outcome.detail == (
        f"the SMTP server 127.0.0.1:{port} does not offer STARTTLS (security=starttls; not sending in clear text)"
    )
    assert smtp.messages == [] and "MAIL" not in smtp.commands


def test_starttls_and_login(certificate, client_tls, make_message):
    with FakeSmtp(users={"alerts": PASSWORD}, certificate=certificate) as smtp:
        channel = channel_for(
            smtp, security="starttls", username="alerts", password=PASSWORD, ssl_context=client_tls
        )
        outcome = channel.send(make_message(target=TO))
    assert outcome.status == "sent", outcome
    assert (smtp.messages[0].tls, smtp.messages[0].user) == (True, "alerts")
    assert smtp.commands == ["EHLO", "STARTTLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA", "QUIT"]


def test_implicit_tls(certificate, client_tls, make_message):
    with FakeSmtp(certificate=certificate, implicit_tls=True) as smtp:
        outcome = channel_for(smtp, security="ssl", ssl_context=client_tls).send(make_message(target=TO))
    assert outcome.status == "sent", outcome
    assert smtp.messages[0].tls


def test_an_untrusted_certificate_fails(certificate, make_message):
    with FakeSmtp(certificate=certificate) as smtp:
        outcome = channel_for(smtp, security="starttls").send(make_message(target=TO))
    assert outcome.status == "failed"
    assert outcome.detail.startswith("the SMTP server's TLS certificate was rejected (")
    assert smtp.messages == []


def test_a_wrong_password_fails_without_showing_it(make_message):
    with FakeSmtp(users={"alerts": "the-right-one"}) as smtp:
        outcome = channel_for(smtp, username="alerts", password=PASSWORD).send(make_message(target=TO))
    assert outcome.status == "failed"
    assert (
        outcome.detail == "SMTP login failed: 535 5.7.8 Error: authentication failed: authentication failure"
    )
    assert PASSWORD not in outcome.detail


def test_login_against_a_server_without_auth_fails(make_message):
    with FakeSmtp() as smtp:
        outcome = channel_for(smtp, username="alerts", password=PASSWORD).send(make_message(target=TO))
    assert outcome.status == "failed"
    assert "does not support" in outcome.detail


def test_sending_without_login_where_it_is_required_fails(make_message):
    with FakeSmtp(users={"alerts": PASSWORD}) as smtp:
        outcome = channel_for(smtp).send(make_message(target=TO))
    assert (outcome.status, outcome.detail) == (
        "failed",
        "the sender was refused: 530 5.7.0 Authentication required",
    )


@pytest.mark.parametrize(
    ("options", "expected", "detail"),
    [
        (
            {"rcpt_replies": {TO: "550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown"}},
            "failed",
            "the recipient was refused: 550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown",
        ),
        (
            {"rcpt_replies": {TO: "451 4.7.1 <ada@example.com>: Recipient address rejected: Greylisted"}},
            "retry",
            "the recipient was refused: 451 4.7.1 <ada@example.com>: Recipient address rejected: Greylisted",
        ),
        (
            {"data_reply": "554 5.7.1 Message rejected as spam"},
            "failed",
            "the message was refused: 554 5.7.1 Message rejected as spam",
        ),
        (
            {"data_reply": "452 4.3.1 Insufficient system storage"},
            "retry",
            "the message was refused: 452 4.3.1 Insufficient system storage",
        ),
        (
            {"greeting": "421 4.3.2 Service not available, closing transmission channel"},
            "retry",
            "the SMTP server refused the connection: 421 4.3.2 Service not available, closing transmission channel",
        ),
        (
            {"greeting": "554 5.7.1 No SMTP service here"},
            "failed",
            "the SMTP server refused the connection: 554 5.7.1 No SMTP service here",
        ),
    ],
)
def test_smtp_replies(make_message, options, expected, detail):
    with FakeSmtp(**options) as smtp:
        outcome = channel_for(smtp).send(make_message(target=TO))
    assert (outcome.status, outcome.detail) == (expected, detail)
    assert smtp.messages == []


def test_a_server_that_does_not_greet_in_time_is_retried(make_message):
    with FakeSmtp(hang=True) as smtp:
        outcome = channel_for(smtp, timeout_s=0.2).send(make_message(target=TO))
        smtp.release.set()
    assert (outcome.status, outcome.detail) == (
        "retry",
        "no answer from the SMTP server within 0.2 s (timed out)",
    )


def test_connection_refused_is_retried(make_message):
    with refused_port() as port:
        channel = EmailChannel(host="127.0.0.1", port=port, sender=SENDER, security="none")
        outcome = channel.send(make_message(target=TO))
    assert (outcome.status, outcome.detail) == (
        "retry",
        "the SMTP server refused the connection (connection refused)",
    )


def test_an_invalid_address_fails_without_connecting(make_message):
    channel = EmailChannel(host="127.0.0.1", port=9, sender=SENDER, security="none")
    for target in ("not-an-address", "a@b.c, d@e.f", "ada@"):
        assert channel.send(make_message(target=target)) == type(channel.send(make_message(target="x")))(
            "failed", "not an e-mail address"
        )


def test_attributes_and_checks(make_message):
    channel = EmailChannel(host="smtp.example.org", sender=SENDER, password=PASSWORD)
    assert (channel.name, channel.min_interval_s, channel.port, channel.security) == (
        "email",
        0,
        587,
        "starttls",
    )
    assert channel.destination(make_message(target="Ada@Example.COM")) == "example.com"
    assert channel.destination(make_message(target="nobody")) == "smtp.example.org"
    assert PASSWORD not in repr(channel)
    with pytest.raises(ValueError, match="starttls, ssl, none"):
        EmailChannel(host="h", sender=SENDER, security="tls")
