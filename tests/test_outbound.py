"""The outbound address policy: the deny list, edge by edge; and the same refusals when a webhook URL
is saved (``users.validation``) and when the webhook channel connects (over the real resolver)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from tests.fakes.webhook import FakeWebhook
from ubot.notify.channel import Message
from ubot.notify.channels import WebhookChannel
from ubot.notify.channels import webhook as webhook_module
from ubot.outbound import IPV4_RULES, IPV6_RULES, host_refusal, refusal
from ubot.users import validation
from ubot.users.errors import ValidationError

THIS = 'a "this network" address (0.0.0.0/8)'
PRIVATE10 = "a private address (10.0.0.0/8)"
SHARED = "a shared address (carrier-grade NAT) (100.64.0.0/10)"
LOOPBACK4 = "a loopback address (127.0.0.0/8)"
LINK4 = "a link-local address (169.254.0.0/16)"
PRIVATE172 = "a private address (172.16.0.0/12)"
IETF = "an IETF protocol assignment (192.0.0.0/24)"
DOC192 = "a documentation address (192.0.2.0/24)"
PRIVATE192 = "a private address (192.168.0.0/16)"
BENCH = "a benchmarking address (198.18.0.0/15)"
DOC198 = "a documentation address (198.51.100.0/24)"
DOC203 = "a documentation address (203.0.113.0/24)"
MULTICAST4 = "a multicast address (224.0.0.0/4)"
RESERVED4 = "a reserved address (240.0.0.0/4)"
BROADCAST = "the broadcast address (255.255.255.255/32)"

UNSPECIFIED6 = "the unspecified address (::/128)"
LOOPBACK6 = "a loopback address (::1/128)"
COMPATIBLE = "an IPv4-compatible address (deprecated) (::/96)"
TRANSLATED = "an IPv4-translated address (::ffff:0:0:0/96)"
NAT64 = "a NAT64 address (64:ff9b::/96)"
NAT64_LOCAL = "a local-use NAT64 address (64:ff9b:1::/48)"
DISCARD = "a discard-only address (100::/64)"
TEREDO = "a Teredo address (2001::/32)"
DOC6 = "a documentation address (2001:db8::/32)"
UNIQUE_LOCAL = "a unique local (private) address (fc00::/7)"
LINK6 = "a link-local address (fe80::/10)"
SITE_LOCAL = "a site-local address (deprecated) (fec0::/10)"
MULTICAST6 = "a multicast address (ff00::/8)"


def mapped(v4: str, why: str) -> str:
    return f"an IPv4-mapped address of {v4}, {why}"


def sixtofour(v4: str, why: str) -> str:
    return f"a 6to4 address of {v4}, {why}"


# Every range: its first and last address, and the addresses just outside it.
TABLE = [
    ("0.0.0.0", THIS),
    ("0.255.255.255", THIS),
    ("1.0.0.0", None),
    ("9.255.255.255", None),
    ("10.0.0.0", PRIVATE10),
    ("10.255.255.255", PRIVATE10),
    ("11.0.0.0", None),
    ("100.63.255.255", None),
    ("100.64.0.0", SHARED),
    ("100.127.255.255", SHARED),
    ("100.128.0.0", None),
    ("126.255.255.255", None),
    ("127.0.0.0", LOOPBACK4),
    ("127.255.255.255", LOOPBACK4),
    ("128.0.0.0", None),
    ("169.253.255.255", None),
    ("169.254.0.0", LINK4),
    ("169.254.255.255", LINK4),
    ("169.255.0.0", None),
    ("172.15.255.255", None),
    ("172.16.0.0", PRIVATE172),
    ("172.31.255.255", PRIVATE172),
    ("172.32.0.0", None),
    ("191.255.255.255", None),
    ("192.0.0.0", IETF),
    ("192.0.0.8", IETF),  # Python 3.11 calls it global
    ("192.0.0.9", IETF),
    ("192.0.0.255", IETF),
    ("192.0.1.0", None),
    ("192.0.1.255", None),
    ("192.0.2.0", DOC192),
    ("192.0.2.255", DOC192),
    ("192.0.3.0", None),
    ("192.167.255.255", None),
    ("192.168.0.0", PRIVATE192),
    ("192.168.255.255", PRIVATE192),
    ("192.169.0.0", None),
    ("198.17.255.255", None),
    ("198.18.0.0", BENCH),
    ("198.19.255.255", BENCH),
    ("198.20.0.0", None),
    ("198.51.99.255", None),
    ("198.51.100.0", DOC198),
    ("198.51.100.255", DOC198),
    ("198.51.101.0", None),
    ("203.0.112.255", None),
    ("203.0.113.0", DOC203),
    ("203.0.113.255", DOC203),
    ("203.0.114.0", None),
    ("223.255.255.255", None),
    ("224.0.0.0", MULTICAST4),
    ("239.255.255.255", MULTICAST4),
    ("240.0.0.0", RESERVED4),
    ("255.255.255.254", RESERVED4),
    ("255.255.255.255", BROADCAST),
    ("8.8.8.8", None),
    ("93.184.216.34", None),
    # IPv6
    ("::", UNSPECIFIED6),
    ("::1", LOOPBACK6),
    ("::2", COMPATIBLE),
    ("::127.0.0.1", COMPATIBLE),
    ("::8.8.8.8", COMPATIBLE),  # the form is deprecated: whatever it embeds
    ("::ffff:ffff", COMPATIBLE),
    ("::1:0:0", None),
    ("::fffe:ffff:ffff", None),
    ("::ffff:0.0.0.0", mapped("0.0.0.0", THIS)),
    ("::ffff:127.0.0.1", mapped("127.0.0.1", LOOPBACK4)),
    ("::ffff:192.0.0.8", mapped("192.0.0.8", IETF)),
    ("::ffff:255.255.255.255", mapped("255.255.255.255", BROADCAST)),
    ("::ffff:8.8.8.8", None),  # reached over IPv4, at 8.8.8.8
    ("::1:0:0:0", None),
    ("::fffe:ffff:ffff:ffff", None),
    ("::ffff:0:0:0", TRANSLATED),
    ("::ffff:0:127.0.0.1", TRANSLATED),
    ("::ffff:0:ffff:ffff", TRANSLATED),
    ("::ffff:1:0:0", None),
    ("64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("64:ff9b::", NAT64),
    ("64:ff9b::7f00:1", NAT64),
    ("64:ff9b::808:808", NAT64),  # even of a public address: the gateway is on our network
    ("64:ff9b::ffff:ffff", NAT64),
    ("64:ff9b::1:0:0", None),
    ("64:ff9b:0:ffff:ffff:ffff:ffff:ffff", None),
    ("64:ff9b:1::", NAT64_LOCAL),
    ("64:ff9b:1::7f00:1", NAT64_LOCAL),
    ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", NAT64_LOCAL),
    ("64:ff9b:2::", None),
    ("ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("100::", DISCARD),
    ("100::ffff:ffff:ffff:ffff", DISCARD),
    ("100:0:0:1::", None),
    ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2001::", TEREDO),
    ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", TEREDO),
    ("2001:1::", None),
    ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2001:db8::", DOC6),
    ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", DOC6),
    ("2001:db9::", None),
    ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("2002::", sixtofour("0.0.0.0", THIS)),
    ("2002:7f00:1::", sixtofour("127.0.0.1", LOOPBACK4)),
    ("2002:c000:8::1", sixtofour("192.0.0.8", IETF)),
    ("2002:808:808::", None),  # 6to4 of 8.8.8.8
    ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", sixtofour("255.255.255.255", BROADCAST)),
    ("2003::", None),
    ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("fc00::", UNIQUE_LOCAL),
    ("fd00::1", UNIQUE_LOCAL),
    ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", UNIQUE_LOCAL),
    ("fe00::", None),
    ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None),
    ("fe80::", LINK6),
    ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", LINK6),
    ("fec0::", SITE_LOCAL),
    ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", SITE_LOCAL),
    ("ff00::", MULTICAST6),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", MULTICAST6),
    ("2606:4700:4700::1111", None),
    ("2a00:1450:4001:81c::200e", None),
]


@pytest.mark.parametrize(("address", "why"), TABLE)
def test_the_deny_list(address, why):
    assert refusal(ipaddress.ip_address(address)) == why


def test_the_table_covers_both_ends_of_every_rule():
    tested = {ipaddress.ip_address(address) for address, _ in TABLE}
    for rule in IPV4_RULES + IPV6_RULES:
        assert {rule.network[0], rule.network[-1]} <= tested, rule


# -- the same list at save time and at connect time -------------------------------------------------

#: The issue's examples first, then one address of every range.
REFUSED_HOSTS = [
    "[::127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[64:ff9b:1::7f00:1]",
    "[2002:7f00:1::]",
    "[::ffff:0:127.0.0.1]",
    "192.0.0.8",
    "0.0.0.0",
    "10.1.2.3",
    "100.64.0.1",
    "127.0.0.1",
    "169.254.169.254",
    "172.16.0.1",
    "192.0.2.1",
    "192.168.1.1",
    "198.18.0.1",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "[::]",
    "[::1]",
    "[::ffff:10.0.0.1]",
    "[100::1]",
    "[2001::1]",
    "[2001:db8::1]",
    "[fd00::1]",
    "[fe80::1]",
    "[fec0::1]",
    "[ff02::1]",
]


def reason_for(host: str) -> str:
    why = refusal(ipaddress.ip_address(host.strip("[]")))
    assert why is not None
    return why


def message(target: str) -> Message:
    return Message(
        delivery_id=7,
        alert_id=3,
        channel="webhook",
        target=target,
        subject="BTC: rsi_14 < 30",
        text="BTC 1h: rsi_14 28.4",
        payload={"alert_id": 3},
    )


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_refused_when_saved_with_the_field_and_the_reason(host):
    with pytest.raises(ValidationError) as caught:
        validation.webhook_url(f"https://{host}/hook")
    assert caught.value.field == "webhook_url"
    literal = host.strip("[]")
    assert caught.value.message == (
        f"must not point to localhost or a private network address: {literal} is {reason_for(host)}"
    )


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_refused_when_connecting_to_the_url(host):
    outcome = WebhookChannel(timeout_s=1.0).send(message(f"https://{host}:9/hook"))
    assert outcome.status == "failed"
    assert f": {reason_for(host)}; webhooks may only reach public addresses" in outcome.detail


@pytest.fixture
def resolves_to(monkeypatch):
    """``hooks.example.test`` resolves (through the real resolver) to the address the test sets."""
    real_resolve = socket.getaddrinfo
    answer: list[str] = []

    def resolve(host, port, *args, **kwargs):
        return real_resolve(answer[0] if host == "hooks.example.test" else host, port, *args, **kwargs)

    monkeypatch.setattr(webhook_module.socket, "getaddrinfo", resolve)
    return answer


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_refused_when_a_name_resolves_to_it(resolves_to, host):
    resolves_to.append(host.strip("[]"))
    outcome = WebhookChannel(timeout_s=1.0).send(message("https://hooks.example.test/hook"))
    assert outcome.status == "failed"
    address = ipaddress.ip_address(host.strip("[]"))
    assert f"refused to connect to hooks.example.test ({address}): {reason_for(host)}" in outcome.detail


def test_nothing_is_sent_to_a_refused_address():
    with FakeWebhook() as hook:
        outcome = WebhookChannel(timeout_s=1.0).send(message(hook.url()))
        assert outcome.status == "failed" and LOOPBACK4 in outcome.detail
        assert hook.requests == []


@pytest.mark.parametrize(
    ("host", "why"),
    [
        ("localhost", "a loopback name (localhost, *.localhost)"),
        ("API.localhost.", "a loopback name (localhost, *.localhost)"),
        ("fe80::1%eth0", LINK6),
        ("hooks.example.com", None),  # a name: its addresses are checked on connect
        ("8.8.8.8", None),
        ("localhost.example.com", None),
    ],
)
def test_host_refusal(host, why):
    assert host_refusal(host) == why


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("http://localhost:8000/h", True),
        ("http://127.0.0.1:8000/h", True),
        ("http://127.9.9.9/h", True),
        ("http://[::1]:8000/h", True),
        ("http://[::ffff:127.0.0.1]:8000/h", True),
        ("http://[::127.0.0.1]/h", False),  # IPv4-compatible: deprecated, not loopback
        ("http://[2002:7f00:1::]/h", False),  # 6to4 goes out through a relay
        ("http://[64:ff9b::7f00:1]/h", False),
        ("https://192.0.0.8/h", False),
        ("https://10.0.0.1/h", False),
        ("http://example.com/h", False),  # http only for loopback
    ],
)
def test_development_mode_admits_loopback_only(url, allowed):
    if allowed:
        assert validation.webhook_url(url, allow_local=True) == url
    else:
        with pytest.raises(ValidationError) as caught:
            validation.webhook_url(url, allow_local=True)
        assert caught.value.field == "webhook_url"
