"""A small threaded SMTP server on 127.0.0.1 (ephemeral port), enough of RFC 5321 for a submission
client: EHLO/HELO, STARTTLS (only when given a certificate), AUTH PLAIN and LOGIN (when given users),
MAIL FROM, RCPT TO, DATA (dot-unstuffed), RSET, NOOP, VRFY, QUIT.

Faults: :attr:`FakeSmtp.rcpt_replies` answers chosen recipients with another reply (``550 ...``
refused, ``451 ...`` greylisted), :attr:`FakeSmtp.data_reply` answers the end of DATA, ``greeting``
replaces the 220 banner (``421`` busy), ``hang`` holds the banner until :attr:`FakeSmtp.release` is
set (:meth:`FakeSmtp.stop` sets it), ``drip_s`` stalls without ever going silent: every reply (the
banner first) is sent one byte every ``drip_s`` seconds (until the fake stops). Accepted messages
are in :attr:`FakeSmtp.messages`.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, BinaryIO

from tests.fakes.serving import Serving

HOSTNAME = "fake.smtp.test"
_VERBS = frozenset({"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "VRFY"})


@dataclass(frozen=True)
class Received:
    """One accepted message."""

    helo: str
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    user: str | None

    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]


@dataclass
class FakeSmtp(Serving):
    users: dict[str, str] = field(default_factory=dict)  # AUTH is offered (and required) when set
    certificate: tuple[Path, Path] | None = None  # (cert.pem, key.pem): STARTTLS is offered
    implicit_tls: bool = False  # TLS from the first byte (SMTPS, port 465 style); needs certificate
    rcpt_replies: dict[str, str] = field(default_factory=dict)  # address -> "550 5.1.1 ..."
    data_reply: str | None = None  # instead of "250 2.0.0 Ok: queued"
    greeting: str = f"220 {HOSTNAME} ESMTP ready"
    hang: bool = False
    drip_s: float | None = None
    messages: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # verbs in order (EHLO, STARTTLS, AUTH...)
    release: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.tls_context: ssl.SSLContext | None = None
        if self.certificate is not None:
            self.tls_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.tls_context.load_cert_chain(*self.certificate)
        if self.implicit_tls and self.tls_context is None:
            raise ValueError("implicit_tls needs a certificate")
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    def start(self) -> FakeSmtp:
        self._server = _Server(("127.0.0.1", 0), _Session)
        self._server.fake = self
        self._port = int(self._server.server_address[1])
        self._serve(self._server)
        return self

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        """The port it listens on (still known after :meth:`stop`)."""
        assert self._port is not None, "start() the fake first"
        return self._port


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeSmtp

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that leave mid-session (timeouts, failed handshakes) are part of the tests."""


class _Session(socketserver.BaseRequestHandler):
    server: _Server

    def setup(self) -> None:
        self.fake = self.server.fake
        self.sock: Any = self.request
        self.reader: BinaryIO = self.sock.makefile("rb")
        self.tls = False
        self.helo = ""
        self.user: str | None = None
        self._reset()

    def finish(self) -> None:
        self.reader.close()
        if self.sock is not self.request:
            self.sock.close()

    def _reset(self) -> None:
        self.mail_from: str | None = None
        self.rcpt_tos: list[str] = []

    def _reply(self, code: int | str, *lines: str) -> None:
        if isinstance(code, str):  # a whole reply line, as configured: "550 5.1.1 ..."
            self._send(code.encode() + b"\r\n")
            return
        text = "".join(
            f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n" for i, line in enumerate(lines)
        )
        self._send(text.encode())

    def _send(self, data: bytes) -> None:
        if self.fake.drip_s is None:
            self.sock.sendall(data)
            return
        for i in range(len(data)):
            if self.fake.release.wait(self.fake.drip_s):
                return
            self.sock.sendall(data[i : i + 1])

    def _readline(self) -> str | None:
        line = self.reader.readline(4096)
        return line.decode("utf-8", "replace").rstrip("\r\n") if line else None

    def _start_tls(self) -> None:
        assert self.fake.tls_context is not None
        self.reader.close()
        self.sock = self.fake.tls_context.wrap_socket(self.sock, server_side=True)
        self.reader = self.sock.makefile("rb")
        self.tls = True

    def handle(self) -> None:
        fake = self.fake
        if fake.implicit_tls:
            self._start_tls()
        if fake.hang:
            fake.release.wait(10)
        self._reply(fake.greeting)
        if not fake.greeting.startswith("220"):
            return
        while (line := self._readline()) is not None:
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            with fake.lock:
                fake.commands.append(verb)
            if verb == "QUIT":
                self._reply(221, "2.0.0 Bye")
                return
            handler = getattr(self, f"_{verb.lower()}") if verb in _VERBS else None
            if handler is None:
                self._reply(502, "5.5.2 Error: command not recognized")
            else:
                handler(arg.strip())

    # -- commands ---------------------------------------------------------------------------------

    def _ehlo(self, arg: str) -> None:
        if not arg:
            self._reply(501, "5.5.4 Syntax: EHLO hostname")
            return
        self.helo = arg
        self._reset()
        lines = [f"{HOSTNAME} Hello {arg}", "PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES"]
        if self.fake.tls_context is not None and not self.tls:
            lines.append("STARTTLS")
        if self.fake.users:
            lines.append("AUTH PLAIN LOGIN")
        self._reply(250, *lines)

    def _helo(self, arg: str) -> None:
        self.helo = arg
        self._reset()
        self._reply(250, HOSTNAME)

    def _starttls(self, arg: str) -> None:
        if self.fake.tls_context is None or self.tls:
            self._reply(502, "5.5.1 Error: command not implemented")
            return
        self._reply(220, "2.0.0 Ready to start TLS")
        self._start_tls()
        self.helo, self.user = "", None  # RFC 3207: the client starts over
        self._reset()

    def _auth(self, arg: str) -> None:
        if not self.fake.users:
            self._reply(502, "5.5.1 Error: authentication not enabled")
            return
        if self.user is not None:
            self._reply(503, "5.5.1 Error: already authenticated")
            return
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        try:
            if mechanism == "PLAIN":
                response = initial or self._challenge("")
                if response is None:
                    return
                _, user, password = base64.b64decode(response, validate=True).decode().split("\0")
            elif mechanism == "LOGIN":
                encoded_user = initial or self._challenge("VXNlcm5hbWU6")  # "Username:"
                if encoded_user is None:
                    return
                encoded_password = self._challenge("UGFzc3dvcmQ6")  # "Password:"
                if encoded_password is None:
                    return
                user = base64.b64decode(encoded_user, validate=True).decode()
                password = base64.b64decode(encoded_password, validate=True).decode()
            else:
                self._reply(504, "5.5.4 Unrecognized authentication type")
                return
        except (binascii.Error, UnicodeDecodeError, ValueError):
            self._reply(501, "5.5.2 Cannot decode response")
            return
        if self.fake.users.get(user) == password:
            self.user = user
            self._reply(235, "2.7.0 Authentication successful")
        else:
            self._reply(535, "5.7.8 Error: authentication failed: authentication failure")

    def _challenge(self, text: str) -> str | None:
        self._reply(334, text)
        line = self._readline()
        if line is None or line == "*":
            self._reply(501, "5.7.0 Authentication aborted")
            return None
        return line

    def _mail(self, arg: str) -> None:
        if not self.helo:
            self._reply(503, "5.5.1 Error: send HELO/EHLO first")
        elif self.fake.users and self.user is None:
            self._reply(530, "5.7.0 Authentication required")
        elif self.mail_from is not None:
            self._reply(503, "5.5.1 Error: nested MAIL command")
        elif not arg.upper().startswith("FROM:"):
            self._reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
        else:
            self.mail_from = _address(arg[5:])
            self._reply(250, "2.1.0 Ok")

    def _rcpt(self, arg: str) -> None:
        if self.mail_from is None:
            self._reply(503, "5.5.1 Error: need MAIL command")
            return
        if not arg.upper().startswith("TO:"):
            self._reply(501, "5.5.4 Syntax: RCPT TO:<address>")
            return
        address = _address(arg[3:])
        special = self.fake.rcpt_replies.get(address.lower())
        if special is not None:
            self._reply(special)
            if not special.startswith("250"):
                return
        else:
            self._reply(250, "2.1.5 Ok")
        self.rcpt_tos.append(address)

    def _data(self, arg: str) -> None:
        if not self.rcpt_tos:
            self._reply(503, "5.5.1 Error: need RCPT command")
            return
        self._reply(354, "End data with <CR><LF>.<CR><LF>")
        lines: list[bytes] = []
        while True:
            line = self.reader.readline()
            if not line:
                return
            if line in (b".\r\n", b".\n"):
                break
            lines.append(line[1:] if line.startswith(b".") else line)
        fake = self.fake
        if fake.data_reply is not None and not fake.data_reply.startswith("250"):
            self._reply(fake.data_reply)
        else:
            assert self.mail_from is not None
            received = Received(
                self.helo, self.mail_from, tuple(self.rcpt_tos), b"".join(lines), self.tls, self.user
            )
            with fake.lock:
                fake.messages.append(received)
                number = len(fake.messages)
            self._reply(fake.data_reply or f"250 2.0.0 Ok: queued as Q{number:05d}")
        self._reset()

    def _rset(self, arg: str) -> None:
        self._reset()
        self._reply(250, "2.0.0 Ok")

    def _noop(self, arg: str) -> None:
        self._reply(250, "2.0.0 Ok")

    def _vrfy(self, arg: str) -> None:
        self._reply(252, "2.0.0 Cannot VRFY user")


def _address(text: str) -> str:
    """``<a@b> SIZE=123`` -> ``a@b``."""
    text = text.strip()
    if text.startswith("<"):
        return text[1 : text.find(">")] if ">" in text else text[1:]
    return text.split(" ")[0]
