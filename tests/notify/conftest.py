"""Fixtures of the channel tests: a message factory and, when openssl is installed, a self-signed
certificate for 127.0.0.1 (the SMTP fake's STARTTLS and implicit TLS)."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ubot.notify.channel import Message


@pytest.fixture
def make_message() -> Callable[..., Message]:
    def make(**overrides: Any) -> Message:
        fields: dict[str, Any] = {
            "delivery_id": 7,
            "alert_id": 3,
            "channel": "webhook",
            "target": "",
            "subject": "BTC: rsi_14 < 30",
            "text": "BTC 1h: close 61,250.5 USD, rsi_14 28.4",
            "payload": {"alert_id": 3, "symbol": "BTC", "values": {"rsi_14": 28.4}},
            "secret": None,
            "key": "5f0c9a1e3b7d4c2a8e6f1b0d9c7a5e3f",
        }
        fields.update(overrides)
        return Message(**fields)

    return make


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for CN/SAN 127.0.0.1, made by the openssl command (skip without it)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate for the TLS tests")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = [
        openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, timeout=30, check=False)
    if result.returncode != 0:
        pytest.skip(f"openssl could not make a certificate: {result.stderr.decode(errors='replace')[:200]}")
    return cert, key


@pytest.fixture
def client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    """A client context that trusts the test certificate (and verifies host names)."""
    return ssl.create_default_context(cafile=str(certificate[0]))
