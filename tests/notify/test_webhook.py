"""The webhook channel against a local receiver: the exact request (headers, signature, raw body), how
every answer maps to an outcome, timeouts, and the private-address guard."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from email.utils import formatdate

import pytest

from tests.fakes.webhook import Drop, FakeWebhook, Hang, redirect, status
from tests.support.ports import refused_port
from ubot.notify.channels import WebhookChannel
from ubot.notify.channels import webhook as webhook_module
from ubot.notify.channels.webhook import TOLERANCE_S, encode_payload, sign, verify

NOW = 1764000000.75
SECRET = "whsec-5b7f1c0e9a"
KEY = "5f0c9a1e3b7d4c2a8e6f1b0d9c7a5e3f"  # the make_message fixture's


@pytest.fixture
def hook():
    with FakeWebhook() as fake:
        yield fake


@pytest.fixture
def channel() -> WebhookChannel:
    return WebhookChannel(timeout_s=2.0, allow_private_addresses=True, clock=lambda: NOW)


def test_posts_the_signed_payload(hook, channel, make_message):
    payload = {"symbol": "BTC", "alert_id": 3, "values": {"rsi_14": 28.4, "close": None}, "note": "fünf €"}
    message = make_message(target=hook.url("/alerts?team=ops"), payload=payload, secret=SECRET)

    outcome = channel.send(message)

    assert outcome.status == "sent", outcome
    assert (
        outcome.detail
        == f"the webhook http://127.0.0.1:{hook.base_url.rsplit(':', 1)[1]} answered HTTP 200 OK"
    )
    [request] = hook.requests
    assert (request.method, request.path, request.query) == ("POST", "/alerts", {"team": "ops"})
    expected = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")
    assert request.body == expected
    assert request.json() == payload
    assert request.header("Content-Type") == "application/json"
    assert request.header("Content-Length") == str(len(expected))
    assert request.header("User-Agent") == "uBot"
    assert request.header("X-Ubot-Delivery") == KEY
    assert request.header("X-Ubot-Timestamp") is None  # the time is in the signature, signed
    digest = hmac.new(SECRET.encode(), b"1764000000." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.header("X-Ubot-Signature"), f"t=1764000000,v1={digest}")


def test_no_signature_without_a_secret(hook, channel, make_message):
    assert channel.send(make_message(target=hook.url())).status == "sent"
    assert hook.requests[0].header("X-Ubot-Signature") is None


def test_body_is_canonical_and_non_finite_numbers_become_null():
    assert encode_payload({"b": 1, "a": [1.5, "é"]}) == '{"a":[1.5,"é"],"b":1}'.encode()
    assert encode_payload({"x": float("nan"), "y": {"z": float("inf")}}) == b'{"x":null,"y":{"z":null}}'
    assert sign("k", 17, b"{}") == "t=17,v1=" + hmac.new(b"k", b"17.{}", hashlib.sha256).hexdigest()


def test_the_signature_covers_the_time_so_a_replay_is_refused():
    body = b'{"id":1}'
    header = sign(SECRET, 1_764_000_000, body)
    assert verify(SECRET, header, body, now=1_764_000_000 + TOLERANCE_S)
    assert not verify(SECRET, header, body, now=1_764_000_000 + TOLERANCE_S + 1)  # replayed later
    assert not verify(SECRET, header, body, now=1_764_000_000 - TOLERANCE_S - 1)  # from the future
    assert not verify(SECRET, header, body + b" ", now=1_764_000_000)  # another body
    assert not verify("another-secret-0123", header, body, now=1_764_000_000)
    # The time cannot be moved forward without the secret: the signature no longer matches.
    moved = header.replace("t=1764000000", "t=1764000600")
    assert not verify(SECRET, moved, body, now=1_764_000_600)
    assert not verify(SECRET, "sha256=" + header.split("v1=")[1], body, now=1_764_000_000)
    assert not verify(SECRET, "", body, now=1_764_000_000)


def test_each_attempt_is_signed_at_its_own_time_with_the_same_delivery_id(hook, make_message):
    now = [1_764_000_000.0]
    channel = WebhookChannel(timeout_s=2.0, allow_private_addresses=True, clock=lambda: now[0])
    message = make_message(target=hook.url(), secret=SECRET)
    channel.send(message)
    now[0] += 600  # a retry ten minutes later: a fresh timestamp, the same id
    channel.send(message)
    first, second = hook.requests
    assert first.header("X-Ubot-Delivery") == second.header("X-Ubot-Delivery") == KEY
    assert first.header("X-Ubot-Signature").startswith("t=1764000000,v1=")
    assert second.header("X-Ubot-Signature").startswith("t=1764000600,v1=")
    assert verify(SECRET, second.header("X-Ubot-Signature"), second.body, now=now[0])


@pytest.mark.parametrize(
    ("reply", "expected", "retry_after", "said"),
    [
        (status(500, "boom"), "retry", None, "HTTP 500 Internal Server Error: boom"),
        (status(503, retry_after=7), "retry", 7.0, "HTTP 503 Service Unavailable"),
        (status(429, "slow down", retry_after="1.5"), "retry", 1.5, "HTTP 429 Too Many Requests: slow down"),
        (status(408), "retry", None, "HTTP 408 Request Timeout"),
        (status(400, "invalid signature"), "failed", None, "HTTP 400 Bad Request: invalid signature"),
        (status(404), "failed", None, "HTTP 404 Not Found"),
        (status(410, retry_after=5), "failed", None, "HTTP 410 Gone"),
    ],
)
def test_statuses(hook, channel, make_message, reply, expected, retry_after, said):
    hook.script(reply)
    outcome = channel.send(make_message(target=hook.url()))
    assert (outcome.status, outcome.retry_after_s) == (expected, retry_after)
    assert outcome.detail.endswith(f"answered {said}")


def test_retry_after_as_http_date(hook, channel, make_message):
    hook.script(status(503, retry_after=formatdate(NOW + 3600, usegmt=True)))
    outcome = channel.send(make_message(target=hook.url()))
    assert outcome.status == "retry"
    assert outcome.retry_after_s is not None and 3000 < outcome.retry_after_s <= 3600


def test_redirects_are_not_followed(hook, channel, make_message):
    hook.script(redirect("https://elsewhere.example/new-hook?token=abc"))
    outcome = channel.send(make_message(target=hook.url()))
    assert outcome.status == "failed"
    assert "answered a redirect to https://elsewhere.example/new-hook" in outcome.detail
    assert "token=abc" not in outcome.detail
    assert len(hook.requests) == 1


def test_a_receiver_that_does_not_answer_in_time_is_retried(hook, make_message):
    hook.script(Hang())
    channel = WebhookChannel(timeout_s=0.2, allow_private_addresses=True)
    outcome = channel.send(make_message(target=hook.url()))
    hook.release.set()
    assert outcome.status == "retry"
    assert outcome.detail.endswith("no answer within 0.2 s (timed out)")


def test_a_dropped_connection_is_retried(hook, channel, make_message):
    hook.script(Drop())
    outcome = channel.send(make_message(target=hook.url()))
    assert outcome.status == "retry"
    assert "closed without an answer" in outcome.detail


def test_connection_refused_is_retried(channel, make_message):
    with refused_port() as port:
        outcome = channel.send(make_message(target=f"http://127.0.0.1:{port}/hook"))
    assert outcome.status == "retry"
    assert outcome.detail == f"the webhook http://127.0.0.1:{port}: connection refused"


def test_secrets_never_appear_in_details(hook, make_message):
    secret_path = "/hooks/T000/B000/XXXXsecretpathXXXX?token=querysecret"
    hook.script(status(500, "nope"), Hang(), status(302))
    channel = WebhookChannel(timeout_s=0.2, allow_private_addresses=True)
    details = [
        channel.send(make_message(target=hook.url(secret_path), secret=SECRET)).detail for _ in range(3)
    ]
    hook.release.set()
    details.append(WebhookChannel().send(make_message(target=hook.url(secret_path), secret=SECRET)).detail)
    for detail in details:
        assert "secretpath" not in detail and "querysecret" not in detail and SECRET not in detail, detail
        assert "\n" not in detail


# -- private addresses ----------------------------------------------------------------------------


def test_loopback_is_refused_by_default(hook, make_message):
    outcome = WebhookChannel().send(make_message(target=hook.url()))
    assert outcome.status == "failed"
    assert "refused to connect to 127.0.0.1: a loopback address" in outcome.detail
    assert hook.requests == []


def test_loopback_is_allowed_when_configured(hook, make_message):
    outcome = WebhookChannel(allow_private_addresses=True).send(make_message(target=hook.url()))
    assert outcome.status == "sent"


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:9/",
        "http://[::1]:9/",
        "http://10.1.2.3/",
        "https://169.254.169.254/latest/meta-data/",
        "http://2130706433/",  # 127.0.0.1 as one decimal number
        "http://[::ffff:192.168.0.1]/",
        "http://0.0.0.0:9/",
    ],
)
def test_private_hosts_are_refused_without_connecting(make_message, url):
    outcome = WebhookChannel(timeout_s=1.0).send(make_message(target=url))
    assert outcome.status == "failed"
    assert "webhooks may only reach public addresses" in outcome.detail


def test_an_answer_with_any_private_address_is_refused_as_a_whole(monkeypatch, make_message):
    def resolve(host, port, *args, **kwargs):
        public = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))
        private = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))
        return [public, private]

    monkeypatch.setattr(webhook_module.socket, "getaddrinfo", resolve)
    outcome = WebhookChannel(timeout_s=1.0).send(make_message(target="https://hooks.example.com/x"))
    assert outcome.status == "failed"
    assert "hooks.example.com (10.0.0.7): a private address" in outcome.detail


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "not a url", "http://", "file:///etc/passwd", "http://exa mple.com/"]
)
def test_invalid_urls_fail_without_a_request(make_message, url):
    outcome = WebhookChannel().send(make_message(target=url))
    assert outcome.status == "failed"
    assert outcome.detail.startswith("invalid webhook URL")


def test_destination_is_the_url_so_receivers_on_one_host_do_not_wait_for_each_other(make_message):
    channel = WebhookChannel()
    a = channel.destination(make_message(target="https://discord.com/api/webhooks/1/a"))
    b = channel.destination(make_message(target="https://discord.com/api/webhooks/2/b"))
    assert a == "https://discord.com/api/webhooks/1/a" and a != b
    assert (channel.name, channel.min_interval_s) == ("webhook", 0)


# -- the guarded connection, end to end (loopback let through by the test) ------------------------


@pytest.fixture
def loopback_is_public(monkeypatch):
    """Treat loopback as public, and resolve the test's host names, counting the resolutions."""
    real_refusal, real_resolve = webhook_module.refusal, socket.getaddrinfo
    resolved: list[str] = []
    answers = {"hooks.example.test": ["127.0.0.1", "10.0.0.7"], "evil.example.test": ["127.0.0.1"]}

    def refusal_(address):
        return None if address.is_loopback else real_refusal(address)

    def resolve(host, port, *args, **kwargs):
        if host in answers:  # the first answer, then (a rebinding attacker) the next one
            resolved.append(host)
            ips = answers[host]
            host = ips.pop(0) if len(ips) > 1 else ips[0]
        return real_resolve(host, port, *args, **kwargs)

    monkeypatch.setattr(webhook_module, "refusal", refusal_)
    monkeypatch.setattr(webhook_module.socket, "getaddrinfo", resolve)
    return resolved


def test_the_connection_goes_to_the_address_that_was_checked(hook, loopback_is_public, make_message):
    channel = WebhookChannel(timeout_s=2.0)
    url = f"http://hooks.example.test:{hook.port}/hook"

    assert [channel.send(make_message(target=url)).status for _ in range(2)] == ["sent", "sent"]
    assert loopback_is_public == ["hooks.example.test"]  # resolved once, kept-alive connection reused
    assert hook.requests[0].header("Host") == f"hooks.example.test:{hook.port}"

    outcome = WebhookChannel(timeout_s=2.0).send(make_message(target=url))  # a new connection: checked again
    assert outcome.status == "failed"
    assert "hooks.example.test (10.0.0.7): a private address" in outcome.detail
    assert len(hook.requests) == 2


def test_https_through_the_guard_verifies_the_url_host(certificate, loopback_is_public, make_message):
    import requests

    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment overrides session.verify
    session.verify = str(certificate[0])
    channel = WebhookChannel(timeout_s=2.0, session=session)
    with FakeWebhook(certificate=certificate) as secure:
        sent = channel.send(make_message(target=f"https://127.0.0.1:{secure.port}/hook", secret=SECRET))
        mismatch = channel.send(make_message(target=f"https://evil.example.test:{secure.port}/hook"))
    assert sent.status == "sent", sent
    signature = secure.requests[0].header("X-Ubot-Signature")
    assert verify(SECRET, signature, secure.requests[0].body, now=float(signature[2:].split(",")[0]))
    assert mismatch.status == "failed"
    assert mismatch.detail.startswith(
        f"the webhook https://evil.example.test:{secure.port}: TLS certificate rejected"
    )
