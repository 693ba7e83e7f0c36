"""Where a visit comes from: its country (ISO 3166-1 alpha-2), on any host (SPEC §11).

In order:
1. `CF-IPCountry`, Cloudflare's own answer, only when the connection came from a proxy in
   `TRUSTED_PROXIES` (anyone else could send the header);
2. the client's address (the peer, or what a trusted proxy says it is: app/proxies.py)
   looked up in `GEOIP_DATABASE_PATH`, a MaxMind or DB-IP `.mmdb` file, when it is set;
   otherwise in the table the `iptocc` package ships (the five regional registries'
   allocations, refreshed with each release of the package: no key, no download at run
   time; a registry's country is where the block is registered, right for about 95 % of
   addresses);
3. on Fly.io, the country of the edge region that took the request (`Fly-Region`), when
   nothing above knew the address.
Loopback, private and other unrouted addresses have no country.
"""

from __future__ import annotations

import functools
import ipaddress
from pathlib import Path

import iptocc

from app.config import Settings
from app.proxies import is_trusted, parse_address
from app.public.counters import country_for

CLOUDFLARE_HEADER = "cf-ipcountry"
# Cloudflare's codes that name no country: unknown, and Tor.
NOT_COUNTRIES = frozenset({"XX", "T1"})


class Countries:
    """The country of a visit, from its client address and headers; see the module's docstring."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._database = _open(settings.geoip_database_path) if settings.geoip_database_path else None
        self.of_address = functools.lru_cache(maxsize=65_536)(self._look_up)

    def of(self, client: str, peer: str | None, cloudflare: str | None, fly_region: str | None) -> str | None:
        """`client` as the scanner limit counts it (an address, or an IPv6 /64); `peer` the connection's."""
        if cloudflare is not None and self._from_trusted_proxy(peer):
            code = cloudflare.strip().upper()
            if len(code) == 2 and code.isalpha() and code not in NOT_COUNTRIES:
                return code
        return self.of_address(client) or country_for(fly_region, self.settings)

    def _from_trusted_proxy(self, peer: str | None) -> bool:
        address = parse_address(peer) if peer and self.settings.trusted_proxies else None
        return address is not None and is_trusted(self.settings, address)

    def _look_up(self, client: str) -> str | None:
        address = client.partition("/")[0]  # an IPv6 /64's first address is in its block
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        if not ip.is_global:
            return None
        if self._database is not None:
            found = self._database.get(address)
            country = (found or {}).get("country") or (found or {}).get("registered_country") or {}
            return country.get("iso_code") if isinstance(country, dict) else None
        return iptocc.country_code(address)


def _open(path: Path):
    """The .mmdb file, memory-mapped (read once at start: a new file needs a restart)."""
    import maxminddb  # only for operators who set GEOIP_DATABASE_PATH

    return maxminddb.open_database(str(path), maxminddb.MODE_MMAP)
