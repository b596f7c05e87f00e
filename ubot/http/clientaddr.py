"""Who is asking: the client's address, honouring ``X-Forwarded-For`` only from trusted proxies.

:class:`ClientAddress` (middleware, ``process_request``) puts the address in
``req.context.client_addr``; the rate limits and the access log read it with :func:`client_address`.

Without ``[http] trusted_proxies`` the address is the TCP peer (``req.remote_addr``) and
``X-Forwarded-For`` is ignored: anyone can write that header. That is the default: no proxy is
trusted, not even one on this machine (any local process could then pick a new address for each
request and never meet a limit). With them, and only when the peer is
one of them, the header is read from right to left (each proxy appends the address it received the
request from) and the first address that is not a trusted proxy is the client. A malformed entry
stops the walk at the last proxy trusted so far, so a forged header can never pick an arbitrary
address beyond what the trusted proxies themselves wrote.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import falcon

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddress:
    nonblocking = True  # runs on the event loop (ubot/http/asgi.py)

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self.trusted: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(proxy, strict=False) for proxy in trusted_proxies
        )

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.client_addr = self.resolve(req.remote_addr, req.get_header("X-Forwarded-For"))

    def process_request_ws(self, req: falcon.Request, ws: object) -> None:
        """The same for a WebSocket (``GET /v1/ws``)."""
        self.process_request(req, None)  # type: ignore[arg-type]

    def resolve(self, peer: str, forwarded: str | None) -> str:
        if not forwarded or not self.trusted:
            return peer
        address = parse_ip(peer)
        if address is None:
            return peer
        for hop in reversed(forwarded.split(",")):
            if not self._is_trusted(address):
                break
            earlier = parse_ip(hop)
            if earlier is None:
                break
            address = earlier
        return str(address)

    def _is_trusted(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.trusted)


def client_address(req: falcon.Request) -> str:
    """The address :class:`ClientAddress` found, else the TCP peer."""
    return getattr(req.context, "client_addr", None) or req.remote_addr or "-"


def parse_ip(text: Any) -> IPAddress | None:
    """``1.2.3.4``, ``1.2.3.4:5678``, ``::1``, ``[::1]:80``; IPv4-mapped IPv6 becomes IPv4."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
