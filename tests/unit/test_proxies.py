"""TRUSTED_PROXIES: who the client is behind Caddy or nginx, and that nobody else can say."""

from __future__ import annotations

import pytest

from app.proxies import client_of
from tests.support.proxies import settings_with

# (case, peer, X-Forwarded-For lines, Forwarded lines, the client)
CASES = [
    ("peer outside: headers ignored", "198.51.100.7", ["1.2.3.4"], ["for=1.2.3.4"], "198.51.100.7"),
    ("peer inside, no headers", "10.0.0.2", [], [], "10.0.0.2"),
    ("one hop", "10.0.0.2", ["1.2.3.4"], [], "1.2.3.4"),
    ("spoofed left-most entries", "10.0.0.2", ["6.6.6.6, 7.7.7.7, 1.2.3.4"], [], "1.2.3.4"),
    ("two trusted hops", "10.0.0.2", ["6.6.6.6, 1.2.3.4, 10.1.1.1"], [], "1.2.3.4"),
    ("only proxies: the farthest", "10.0.0.2", ["10.3.3.3, 10.1.1.1"], [], "10.3.3.3"),
    ("lines are one list", "10.0.0.2", ["6.6.6.6", "1.2.3.4"], [], "1.2.3.4"),
    ("spaces and empty entries", "10.0.0.2", [" ,  1.2.3.4 , "], [], "10.0.0.2"),
    ("garbage on the left", "10.0.0.2", ["<script>, 1.2.3.4"], [], "1.2.3.4"),
    ("garbage on the right", "10.0.0.2", ["1.2.3.4, not-an-ip"], [], "10.0.0.2"),
    ("garbage behind a trusted hop", "10.0.0.2", ["1.2.3.4, junk, 10.1.1.1"], [], "10.1.1.1"),
    ("IPv4 with a port", "10.0.0.2", ["1.2.3.4:5678"], [], "1.2.3.4"),
    ("IPv6 client", "10.0.0.2", ["2001:db8:1::5"], [], "2001:db8:1::5"),
    ("IPv6 client in brackets with a port", "10.0.0.2", ["[2001:db8:1::5]:443"], [], "2001:db8:1::5"),
    ("IPv6 proxy", "2001:db8:ffff::1", ["1.2.3.4"], [], "1.2.3.4"),
    ("IPv4-mapped peer is its IPv4", "::ffff:10.0.0.2", ["1.2.3.4"], [], "1.2.3.4"),
    ("IPv4-mapped client", "10.0.0.2", ["::ffff:1.2.3.4"], [], "1.2.3.4"),
    ("Forwarded", "10.0.0.2", [], ["for=1.2.3.4"], "1.2.3.4"),
    ("Forwarded with quotes and a port", "10.0.0.2", [], ['for="1.2.3.4:8080";proto=https'], "1.2.3.4"),
    ("Forwarded IPv6", "10.0.0.2", [], ['For="[2001:db8:1::5]:4711"'], "2001:db8:1::5"),
    ("Forwarded chain, spoofed left", "10.0.0.2", [], ["for=6.6.6.6, for=1.2.3.4;by=10.0.0.2"], "1.2.3.4"),
    ("Forwarded over two lines", "10.0.0.2", [], ["for=6.6.6.6", "for=1.2.3.4"], "1.2.3.4"),
    ("Forwarded with other pairs first", "10.0.0.2", [], ["proto=https;by=10.0.0.2;for=1.2.3.4"], "1.2.3.4"),
    ("Forwarded quoted comma is one value", "10.0.0.2", [], ['for="1.2.3.4,5.6.7.8"'], "10.0.0.2"),
    ("Forwarded obfuscated", "10.0.0.2", [], ["for=_hidden"], "10.0.0.2"),
    ("Forwarded unknown on the left", "10.0.0.2", [], ["for=unknown, for=1.2.3.4"], "1.2.3.4"),
    ("Forwarded without for", "10.0.0.2", [], ["proto=https"], "10.0.0.2"),
    ("X-Forwarded-For wins over Forwarded", "10.0.0.2", ["1.2.3.4"], ["for=6.6.6.6"], "1.2.3.4"),
    ("an unparsable peer", "testclient", ["1.2.3.4"], [], "testclient"),
]


@pytest.mark.parametrize(("case", "peer", "forwarded_for", "forwarded", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_client_behind_trusted_proxies(tmp_path, case, peer, forwarded_for, forwarded, expected):
    assert client_of(settings_with(tmp_path), peer, None, forwarded_for, forwarded) == expected


def test_headers_are_ignored_without_trusted_proxies(tmp_path):
    settings = settings_with(tmp_path, proxies="")
    assert client_of(settings, "10.0.0.2", None, ["1.2.3.4"], ["for=1.2.3.4"]) == "10.0.0.2"


@pytest.mark.parametrize(("trust_fly", "expected"), [(True, "5.5.5.5"), (False, "1.2.3.4")])
def test_fly_client_ip_stays_behind_trust_proxy_headers(tmp_path, trust_fly, expected):
    settings = settings_with(tmp_path, trust_proxy_headers=trust_fly)
    assert client_of(settings, "10.0.0.2", "5.5.5.5", ["1.2.3.4"], []) == expected


