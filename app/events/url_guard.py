"""The SSRF guard for webhook URLs (SPEC §9): where a webhook may send, checked when it is
saved and again before every delivery.

Only `http` and `https`, no user info. The host is resolved (getaddrinfo, in a thread: it
blocks) and every address it resolves to must be a public one: loopback, private (10/8,
172.16/12, 192.168/16, fc00::/7, 100.64/10 and the rest that are not global), link-local
(169.254/16 with the cloud metadata address, fe80::/10), multicast, reserved and
unspecified addresses are refused, IPv4-mapped IPv6 forms (`::ffff:127.0.0.1`) judged as
the IPv4 address they carry. `WEBHOOK_ALLOW_PRIVATE=true` lets loopback and private
addresses through (a CRM on the team's own network); link-local, multicast, reserved and
unspecified ones stay refused even then, the metadata address among them.

Against DNS rebinding the sender connects to the address checked here (`Target.address`),
sending the original host in `Host` and as the TLS server name (app/events/http_post.py),
so no second lookup can land somewhere else. Redirects are never followed (a 3xx is a
failed attempt).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from app.errors import Invalid

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL = 2048


@dataclass(frozen=True, slots=True)
class Target:
    """A checked URL: its scheme, host and port, and the address to connect to."""

    url: str
    scheme: str
    host: str
    port: int
    address: IPAddress

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def path(self) -> str:
        """What the request asks for: the URL's path and query."""
        parts = urlsplit(self.url)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why a delivery may not go to `address` (None: it may)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address (the cloud metadata service lives there)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_loopback:
        return None if allow_private else "a loopback address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return None if allow_private else "a private address"
    return None


def split(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of a webhook URL. Raises Invalid (field `url`)."""
    if len(url) > MAX_URL:
        raise _invalid(f"is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _invalid("is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise _invalid("must start with http:// or https://")
    if not parts.hostname:
        raise _invalid("has no host")
    if parts.username is not None or parts.password is not None:
        raise _invalid("must not carry a user name or password")
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in url):
        raise _invalid("must not contain spaces or control characters")
    if not url.isascii():
        raise _invalid("must be ASCII: write an international name as punycode (xn--…) and percent-encode the path")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to (itself when it is an address), looked up off the loop."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    # loop.getaddrinfo runs the blocking lookup in the default executor.
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def check(url: str, allow_private: bool) -> Target:
    """The URL's target, checked. Raises Invalid (field `url`) for a bad URL, a host that does
    not resolve, or one that resolves to any address the guard refuses."""
    scheme, host, port = split(url)
    try:
        addresses = await resolve(host, port)
    except (OSError, UnicodeError):
        raise _invalid(f"its host {host!r} does not resolve") from None
    if not addresses:
        raise _invalid(f"its host {host!r} does not resolve")
    for address in addresses:
        if reason := refusal(address, allow_private):
            raise _invalid(f"resolves to {address}, {reason}; webhooks go to public addresses only")
    return Target(url=url, scheme=scheme, host=host, port=port, address=addresses[0])


def _invalid(message: str) -> Invalid:
    return Invalid(f"url {message}", [{"field": "url", "message": message, "source": "body"}])
