"""Who the client is when the service sits behind a reverse proxy (TRUSTED_PROXIES).

A proxy appends the address it received the request from to `X-Forwarded-For` (or adds
a `Forwarded: for=` element); everything to the left of that came from the client and
may be made up. So the headers are read only when the socket peer is a trusted proxy,
and then from the right: each entry that is itself a trusted proxy passed the request
on, and the first one that is not is the client. Fly's `Fly-Client-IP` is the platform's
own answer and stays behind TRUST_PROXY_HEADERS.

`X-Forwarded-For` wins when both are present: every common proxy sets it, and nginx
passes a client's `Forwarded` through untouched (the recipes in docs/operations.md remove it).
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence

from app.config import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# One `for=` value in a Forwarded element: a token or a quoted string (RFC 7239).
FORWARDED_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)', re.IGNORECASE)


def client_of(
    settings: Settings, peer: str | None, fly_client_ip: str | None = None,
    forwarded_for: Sequence[str] = (), forwarded: Sequence[str] = (),
) -> str | None:
    """The client's address as text, or None when there is no peer (a test transport)."""
    if settings.trust_proxy_headers and fly_client_ip:
        return fly_client_ip.strip()
    if peer is None or not settings.trusted_proxies:
        return peer
    hop = parse_address(peer)
    if hop is None or not is_trusted(settings, hop):
        return peer
    chain = _x_forwarded_for(forwarded_for) if any(forwarded_for) else _forwarded(forwarded)
    for entry in reversed(chain):
        address = parse_address(entry)
        if address is None:
            # Only the client writes garbage: the trusted hop that passed it on is the
            # nearest address anyone vouches for.
            break
        hop = address
        if not is_trusted(settings, address):
            break
    return str(hop)


def is_trusted(settings: Settings, address: Address) -> bool:
    return any(address in network for network in networks(settings.trusted_proxies))


@functools.lru_cache(maxsize=4)  # one setting per app
def networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr) for cidr in cidrs)


def parse_address(text: str) -> Address | None:
    """An IP address from a header entry: bare, `[v6]` or `[v6]:port`, `v4:port`; else None."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client seen through a dual-stack socket is still that IPv4 address.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _x_forwarded_for(lines: Sequence[str]) -> list[str]:
    # Several header lines are one list, in order (RFC 9110 §5.3).
    return [entry for line in lines for entry in line.split(",")]


def _forwarded(lines: Sequence[str]) -> list[str]:
    chain = []
    for line in lines:
        for element in _split_elements(line):
            match = FORWARDED_FOR.search(element)
            # An element without for= still is a hop; unknown to us, like garbage.
            chain.append(match.group(1).replace('\\"', '"') if match else "")
    return chain


def _split_elements(line: str) -> list[str]:
    """Forwarded elements are separated by commas outside quoted strings."""
    elements, current, quoted, escaped = [], [], False, False
    for char in line:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            elements.append("".join(current))
            current = []
            continue
        current.append(char)
    elements.append("".join(current))
    return elements
