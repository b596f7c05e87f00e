"""The e-mail channel: one SMTP session per alert (submission, RFC 6409).

``security``: ``"starttls"`` (the default, port 587) requires the server to offer STARTTLS and
refuses to send in clear text when it does not; ``"ssl"`` is implicit TLS (port 465,
``SMTP_SSL``); ``"none"`` is plain SMTP (a local relay). Certificates are verified
(``ssl.create_default_context()``, or the ``ssl_context`` given).

The message is a plain-text :class:`email.message.EmailMessage` with ``Subject``, ``Date``,
``Auto-Submitted: auto-generated`` (RFC 3834: no vacation replies) and a ``Message-ID`` made from the
delivery's random id (:attr:`~ubot.notify.channel.Message.key`), the same on every attempt, so a receiver that sees one twice can tell.

Outcomes: a 5xx reply (recipient refused, sender refused, data refused), a failed login, a server
without STARTTLS or AUTH, or a certificate that does not verify are final; a 4xx reply (greylisting,
``451``), timeouts, refused or dropped connections are retried. Details quote the server's reply
code and text, never the password.

``timeout_s`` bounds each read; ``deadline_s`` the whole session: its socket is watched by the
attempt's deadline (:mod:`ubot.notify.deadline`) from the connect on, so a server that drips its
replies is cut off and the delivery retried (unless the message was already accepted).
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from ubot.notify import deadline
from ubot.notify.channel import FAILED, RETRY, SENT, Message, Outcome
from ubot.notify.channels.http import cut_outcome, log_outcome, one_line, scrub

log = logging.getLogger(__name__)

SECURITY = ("starttls", "ssl", "none")


class EmailChannel:
    """Send alerts as e-mail through one SMTP server (``message.target`` is the address)."""

    name = "email"
    min_interval_s = 0.0

    def __init__(
        self,
        *,
        host: str,
        port: int = 587,
        sender: str,
        username: str | None = None,
        password: str | None = None,
        security: str = "starttls",
        timeout_s: float = 10.0,
        deadline_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in SECURITY:
            raise ValueError(f"email security must be one of {', '.join(SECURITY)}, not {security!r}")
        self.host = host
        self.port = port
        self.sender = sender
        self.username = username
        self._password = password
        self.security = security
        self.timeout_s = timeout_s
        self.deadline_s = deadline_s
        self._ssl_context = ssl_context

    def __repr__(self) -> str:
        return f"EmailChannel(host={self.host!r}, port={self.port}, security={self.security!r})"

    def destination(self, message: Message) -> str:
        """The recipient's domain (lower case), or the SMTP host for an address without one."""
        _, _, domain = message.target.strip().rpartition("@")
        return domain.lower() if "@" in message.target and domain else self.host

    def build(self, message: Message) -> EmailMessage:
        """The e-mail for one delivery."""
        email = EmailMessage()
        email["From"] = self.sender
        email["To"] = message.target.strip()
        email["Subject"] = " ".join(message.subject.split())
        email["Date"] = formatdate(usegmt=True)
        email["Message-ID"] = message_id(message.key or str(message.delivery_id), self.sender, self.host)
        email["Auto-Submitted"] = "auto-generated"
        email.set_content(message.text)
        return email

    def send(self, message: Message) -> Outcome:
        with deadline.attempt(self.deadline_s) as attempt:
            try:
                outcome = self._send(message)
            except Exception as exc:  # never raises
                outcome = classify(exc, self.timeout_s)
                if outcome.status == FAILED and outcome.detail.startswith("unexpected"):
                    log.exception("email delivery %s: unexpected error", message.delivery_id)
            if attempt.expired and outcome.status != SENT:  # accepted is accepted, even if QUIT was cut
                outcome = cut_outcome(f"the SMTP server {self.host}:{self.port}", attempt)
        outcome = Outcome(outcome.status, scrub(outcome.detail, [self._password]), outcome.retry_after_s)
        return log_outcome(log, self.name, self.destination(message), outcome)

    def _send(self, message: Message) -> Outcome:
        recipient = message.target.strip()
        if not _plausible_address(recipient):
            return Outcome(FAILED, "not an e-mail address")
        email = self.build(message)
        context = self._ssl_context or ssl.create_default_context()
        implicit = context if self.security == "ssl" else None
        with _Session(self.host, self.port, deadline.bound(self.timeout_s), implicit) as smtp:
            smtp.ehlo()
            if self.security == "starttls":
                if not smtp.has_extn("starttls"):
                    return Outcome(
                        FAILED,
                        f"the SMTP server {self.host}:{self.port} does not offer STARTTLS "
                        "(security=starttls; not sending in clear text)",
                    )
                smtp.starttls(context=context)
                smtp.ehlo()
            if self.username is not None:
                smtp.login(self.username, self._password or "")
            refused = smtp.send_message(email, from_addr=self.sender, to_addrs=[recipient])
            if refused:  # only with several recipients; kept for completeness
                return classify(smtplib.SMTPRecipientsRefused(refused), self.timeout_s)
        return Outcome(SENT, f"accepted by {self.host} as {email['Message-ID']}")


class _Session(smtplib.SMTP):
    """An SMTP session whose socket is watched by the attempt's deadline (smtplib, like any socket
    client, only times out each read), with implicit TLS when given a context (``SMTP_SSL``'s)."""

    def __init__(self, host: str, port: int, timeout: float, implicit_tls: ssl.SSLContext | None) -> None:
        self._implicit_tls = implicit_tls
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = socket.create_connection((host, port), deadline.bound(timeout), self.source_address)
        deadline.watch(sock)  # before the TLS handshake: a server can stall that too
        if self._implicit_tls is not None:
            return self._implicit_tls.wrap_socket(sock, server_hostname=host)
        return sock


def message_id(key: str, sender: str, host: str) -> str:
    """``<ubot.delivery.KEY@domain>`` (the delivery's id), the domain of the sender (or the SMTP host)."""
    _, address = parseaddr(sender)
    domain = address.rpartition("@")[2] or host
    return f"<ubot.delivery.{key}@{domain}>"


def classify(exc: BaseException, timeout_s: float) -> Outcome:
    """The outcome of an SMTP session that raised ``exc``."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = list(exc.recipients.values())
        code, text = replies[0] if replies else (550, b"")
        temporary = all(400 <= reply[0] < 500 for reply in replies) if replies else False
        detail = f"the recipient was refused: {_reply(code, text)}"
        return Outcome(RETRY if temporary else FAILED, detail)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return Outcome(FAILED, f"SMTP login failed: {_reply(exc.smtp_code, exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _by_code(exc, "the sender was refused")
    if isinstance(exc, smtplib.SMTPDataError):
        return _by_code(exc, "the message was refused")
    if isinstance(exc, smtplib.SMTPConnectError):
        return _by_code(exc, "the SMTP server refused the connection")
    if isinstance(exc, smtplib.SMTPResponseException):
        return _by_code(exc, "the SMTP server answered")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return Outcome(FAILED, f"the SMTP server does not support that: {one_line(str(exc))}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if isinstance(exc.__context__, TimeoutError):  # smtplib turns a read timeout into this
            return Outcome(RETRY, f"no answer from the SMTP server within {timeout_s:g} s (timed out)")
        return Outcome(RETRY, "the SMTP server closed the connection")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or "verification failed"
        return Outcome(FAILED, f"the SMTP server's TLS certificate was rejected ({reason})")
    if isinstance(exc, ssl.SSLError):
        return Outcome(RETRY, f"TLS error with the SMTP server ({exc.reason or type(exc).__name__})")
    if isinstance(exc, TimeoutError | socket.timeout):
        return Outcome(RETRY, f"no answer from the SMTP server within {timeout_s:g} s (timed out)")
    if isinstance(exc, socket.gaierror):
        return Outcome(RETRY, "could not resolve the SMTP server's host name")
    if isinstance(exc, ConnectionRefusedError):
        return Outcome(RETRY, "the SMTP server refused the connection (connection refused)")
    if isinstance(exc, OSError):
        return Outcome(RETRY, f"SMTP connection failed ({exc.strerror or type(exc).__name__})")
    if isinstance(exc, smtplib.SMTPException):
        return Outcome(RETRY, f"SMTP error ({one_line(str(exc))})")
    return Outcome(FAILED, f"unexpected error ({type(exc).__name__})")


def _by_code(exc: smtplib.SMTPResponseException, what: str) -> Outcome:
    temporary = 400 <= exc.smtp_code < 500
    return Outcome(RETRY if temporary else FAILED, f"{what}: {_reply(exc.smtp_code, exc.smtp_error)}")


def _reply(code: int, text: bytes | str) -> str:
    said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return one_line(f"{code} {said}".strip())


def _plausible_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain) and not any(char.isspace() or char in "<>," for char in address)
