"""Which addresses uBot may send a request to on a user's behalf (webhooks): one explicit deny list.

The same policy runs twice: when a webhook URL is saved (``users.validation.webhook_url``: a host
written as an address, or a ``localhost`` name) and when the webhook channel opens a connection
(``notify.channels.webhook``: every address the host resolves to). The list is written out here
rather than taken from :mod:`ipaddress`'s ``is_private``/``is_global``, whose tables change between
Python versions (3.11 calls most of 192.0.0.0/24 global).

Denied, IPv4: 0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12,
192.0.0.0/24, 192.0.2.0/24, 192.168.0.0/16, 198.18.0.0/15, 198.51.100.0/24, 203.0.113.0/24 and
everything from 224.0.0.0 up (224.0.0.0/4 multicast, 240.0.0.0/4 reserved, 255.255.255.255).

Denied, IPv6: ::/128, ::1/128, the deprecated IPv4-compatible ::/96 (``[::127.0.0.1]``),
::ffff:0:0:0/96 (IPv4-translated), 64:ff9b::/96 and 64:ff9b:1::/48 (NAT64: the gateway would reach
any IPv4 address, private ones included), 100::/64 (discard), 2001::/32 (Teredo), 2001:db8::/32
(documentation), fc00::/7 (unique local), fe80::/10 (link-local), fec0::/10 (site-local,
deprecated) and ff00::/8 (multicast). Two forms carry an IPv4 address that is checked instead:
::ffff:0:0/96 (IPv4-mapped: the connection is made over IPv4 to it) and 2002::/16 (6to4).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Rule:
    """``network`` is denied as ``what``; or, with ``embedded``, the IPv4 address it carries decides."""

    network: Network
    what: str
    embedded: Callable[[ipaddress.IPv6Address], ipaddress.IPv4Address] | None = None

    def reason(self) -> str:
        return f"{self.what} ({self.network})"


def _low32(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def _sixtofour(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)


def _rule(network: str, what: str, embedded: Callable | None = None) -> Rule:
    return Rule(ipaddress.ip_network(network), what, embedded)


#: First match wins (a more specific network comes before the one containing it).
IPV4_RULES: tuple[Rule, ...] = (
    _rule("0.0.0.0/8", 'a "this network" address'),
    _rule("10.0.0.0/8", "a private address"),
    _rule("100.64.0.0/10", "a shared address (carrier-grade NAT)"),
    _rule("127.0.0.0/8", "a loopback address"),
    _rule("169.254.0.0/16", "a link-local address"),
    _rule("172.16.0.0/12", "a private address"),
    _rule("192.0.0.0/24", "an IETF protocol assignment"),
    _rule("192.0.2.0/24", "a documentation address"),
    _rule("192.168.0.0/16", "a private address"),
    _rule("198.18.0.0/15", "a benchmarking address"),
    _rule("198.51.100.0/24", "a documentation address"),
    _rule("203.0.113.0/24", "a documentation address"),
    _rule("224.0.0.0/4", "a multicast address"),
    _rule("255.255.255.255/32", "the broadcast address"),
    _rule("240.0.0.0/4", "a reserved address"),
)

IPV6_RULES: tuple[Rule, ...] = (
    _rule("::/128", "the unspecified address"),
    _rule("::1/128", "a loopback address"),
    _rule("::ffff:0:0/96", "an IPv4-mapped address", _low32),
    _rule("::/96", "an IPv4-compatible address (deprecated)"),
    _rule("::ffff:0:0:0/96", "an IPv4-translated address"),
    _rule("64:ff9b::/96", "a NAT64 address"),
    _rule("64:ff9b:1::/48", "a local-use NAT64 address"),
    _rule("100::/64", "a discard-only address"),
    _rule("2001::/32", "a Teredo address"),
    _rule("2001:db8::/32", "a documentation address"),
    _rule("2002::/16", "a 6to4 address", _sixtofour),
    _rule("fc00::/7", "a unique local (private) address"),
    _rule("fe80::/10", "a link-local address"),
    _rule("fec0::/10", "a site-local address (deprecated)"),
    _rule("ff00::/8", "a multicast address"),
)

_LOOPBACK = (ipaddress.IPv4Network("127.0.0.0/8"), ipaddress.IPv6Network("::1/128"))


def address_of(text: str) -> Address | None:
    """``text`` as an IP address (an IPv6 zone ``%eth0`` dropped), or ``None`` if it is not one."""
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def rule_for(address: Address) -> Rule | None:
    """The first rule whose network holds ``address``, or ``None``."""
    rules = IPV4_RULES if address.version == 4 else IPV6_RULES
    return next((rule for rule in rules if address in rule.network), None)


def refusal(address: Address) -> str | None:
    """Why uBot may not send to ``address`` (``"a loopback address (127.0.0.0/8)"``), or ``None``."""
    rule = rule_for(address)
    if rule is None:
        return None
    if rule.embedded is not None and isinstance(address, ipaddress.IPv6Address):
        inner = rule.embedded(address)
        why = refusal(inner)
        return None if why is None else f"{rule.what} of {inner}, {why}"
    return rule.reason()


def is_local_name(host: str) -> bool:
    """``localhost`` and every ``*.localhost`` name: this machine (RFC 6761), whatever DNS says."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def host_refusal(host: str) -> str | None:
    """Why a URL's host, as written, may not be sent to, without resolving it: a ``localhost``
    name or a denied address. ``None`` for any other name: its addresses are checked on connect."""
    if is_local_name(host):
        return "a loopback name (localhost, *.localhost)"
    address = address_of(host)
    return None if address is None else refusal(address)


def is_loopback_host(host: str) -> bool:
    """``localhost``, ``*.localhost``, 127.0.0.0/8, ::1 or an IPv4-mapped 127.0.0.0/8 address: what
    ``allow_local_webhooks`` (development) admits."""
    if is_local_name(host):
        return True
    address = address_of(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address is not None and any(
        address.version == network.version and address in network for network in _LOOPBACK
    )
