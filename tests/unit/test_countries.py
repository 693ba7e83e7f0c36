"""Countries on any host (SPEC §11): the table iptocc ships, a MaxMind/DB-IP .mmdb when
GEOIP_DATABASE_PATH is set (written here by mmdb-writer), Cloudflare's CF-IPCountry only
from a trusted proxy, Fly's region last; shown in the stats whichever proxy is in front."""

from __future__ import annotations

import dataclasses

import pytest
from litestar import Request
from litestar.testing import TestClient
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from app.config import ConfigError, Settings
from app.public.answers import Visit
from app.public.countries import Countries
from tests.support.app import PHONE_UA, create_card, flush_counters, register


@pytest.fixture
def mmdb(tmp_path):
    """A small country database: 81.2.69.0/24 in GB, 2a02:ec80::/32 in ES, as MaxMind's GeoIP2-Country lays it out."""
    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
    writer.insert_network(IPSet(["81.2.69.0/24"]), {"country": {"iso_code": "GB"}})
    writer.insert_network(IPSet(["2a02:ec80::/32"]), {"registered_country": {"iso_code": "ES"}})
    path = tmp_path / "countries.mmdb"
    writer.to_db_file(str(path))
    return path


@pytest.mark.parametrize(
    "client, country",
    [
        ("8.8.8.8", "US"), ("1.0.16.1", "JP"), ("2001:4860:4860::/64", "US"),  # an IPv6 client as the limit counts it
        ("127.0.0.1", None), ("10.1.2.3", None), ("192.168.0.9", None), ("::1", None), ("fe80::1", None), ("unknown", None),
    ],
)
def test_the_shipped_table_knows_public_addresses_only(settings, client, country):
    assert Countries(settings).of(client, client, None, None) == country


def test_a_country_database_replaces_the_shipped_table(settings, mmdb):
    countries = Countries(dataclasses.replace(settings, geoip_database_path=mmdb))
    assert countries.of("81.2.69.160", None, None, None) == "GB"
    assert countries.of("2a02:ec80:1::/64", None, None, None) == "ES"  # registered_country when there is no country
    assert countries.of("8.8.8.8", None, None, None) is None  # not in this database


def test_cloudflares_country_only_from_a_trusted_proxy(settings):
    trusting = Countries(dataclasses.replace(settings, trusted_proxies=("10.0.0.0/8",)))
    assert trusting.of("8.8.8.8", "10.0.0.2", "DE", None) == "DE"
    assert trusting.of("8.8.8.8", "8.8.8.8", "DE", None) == "US"  # sent by the client itself: ignored
    assert trusting.of("8.8.8.8", "10.0.0.2", "XX", None) == "US"  # Cloudflare does not know: the table does
    assert trusting.of("8.8.8.8", "10.0.0.2", "T1", None) == "US"  # Tor is not a country
    assert Countries(settings).of("8.8.8.8", "10.0.0.2", "DE", None) == "US"  # no trusted proxies at all


def test_fly_region_is_the_last_resort(settings):
    fly = Countries(dataclasses.replace(settings, trust_proxy_headers=True))
    assert fly.of("10.0.0.5", "10.0.0.5", None, "fra") == "DE"
    assert fly.of("8.8.8.8", "10.0.0.5", None, "fra") == "US"  # the address is better than the region


def test_an_unreadable_country_database_stops_the_start(tmp_path):
    with pytest.raises(ConfigError, match="GEOIP_DATABASE_PATH"):
        Settings.from_env({"DATA_DIR": str(tmp_path), "GEOIP_DATABASE_PATH": str(tmp_path / "missing.mmdb")})


def test_behind_a_reverse_proxy_the_stats_show_the_visitors_country(settings, app_of):
    behind_nginx = dataclasses.replace(settings, trusted_proxies=("10.0.0.0/8",))
    with TestClient(app_of(behind_nginx), base_url="https://qr.example.test") as client:
        user = register(client)
        card = create_card(client, user["headers"])
        client.get(f"/p/{card['slug']}")  # the card in memory, so the fast path answers
        for forwarded_for, cloudflare in (("1.0.16.1", None), ("8.8.8.8", None), ("8.8.8.8", "DE")):
            headers = [(b"x-forwarded-for", forwarded_for.encode()), (b"user-agent", PHONE_UA.encode())]
            headers += [(b"cf-ipcountry", cloudflare.encode())] if cloudflare else []
            raw = client.app.state.fast_path.answer(b"GET", f"/c/{card['slug']}".encode(), headers, ("10.0.0.2", 40000), [])
            assert raw is not None and raw.startswith(b"HTTP/1.1 302")
        flush_counters(client)
        stats = client.get(f"/v1/cards/{card['cardId']}/stats", headers=user["headers"]).json()
        assert {row["name"]: row["scans"] for row in stats["countries"]} == {"JP": 1, "US": 1, "DE": 1}


def test_the_litestar_door_reads_the_same_country(settings):
    behind_nginx = dataclasses.replace(settings, trusted_proxies=("10.0.0.0/8",))
    nginx_countries = Countries(behind_nginx)

    def visit(*headers: tuple[bytes, bytes], countries: Countries | None = nginx_countries) -> Visit:
        scope = {
            "type": "http", "method": "GET", "path": "/c/x", "raw_path": b"/c/x", "query_string": b"", "root_path": "",
            "scheme": "https", "server": ("qr.example.test", 443), "client": ("10.0.0.2", 40000),
            "headers": [(b"x-forwarded-for", b"1.0.16.1"), *headers], "app": None, "state": {},
        }
        return Visit.of(Request(scope), behind_nginx, countries)

    assert (visit((b"cf-ipcountry", b"NZ")).client, visit((b"cf-ipcountry", b"NZ")).country) == ("1.0.16.1", "NZ")
    assert visit().country == "JP"
    assert visit(countries=None).country is None  # no Countries: the doors that need none
