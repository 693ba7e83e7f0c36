"""TRUSTED_PROXIES on a real uvicorn server (LiveServer): each client behind the proxy has
its own limit, and a peer that is not trusted cannot name the client.
"""

from __future__ import annotations

import pytest

from tests.support.live_server import LiveServer
from tests.support.proxies import settings_with


@pytest.fixture
def proxied(tmp_path):
    """A live server (peer 127.0.0.1) that trusts 127.0.0.1 as its proxy; two requests a minute per client."""
    server = LiveServer(settings_with(
        tmp_path, proxies="127.0.0.1/32", rate_limit_per_minute=2, scanner_rate_limit_per_minute=2,
    ))
    yield server
    server.stop()


# /v1 is under the API limit; /p (Litestar) and /c (answered by the scanner fast path from
# its second request on, app/public/fast_path.py) under the scanner limit.
@pytest.mark.parametrize("path", ["/v1/me", "/p/no-such-card", "/c/no-such-card"])
def test_each_client_behind_the_proxy_has_its_own_limit(proxied, path):
    def status(chain: str) -> int:
        return proxied.http.get(path, headers={"X-Forwarded-For": chain}).status_code

    first = status("198.51.100.1")
    assert first in (401, 404)
    assert status("198.51.100.1") == first
    assert status("198.51.100.1") == 429
    # Another client through the same proxy is not limited by the first one...
    assert status("198.51.100.2") == first
    # ...and the first cannot escape by making up addresses on the left.
    assert status("203.0.113.9, 198.51.100.1") == 429
    assert status("10.0.0.1, 198.51.100.1") == 429


def test_forwarded_headers_are_ignored_from_an_untrusted_peer(tmp_path):
    server = LiveServer(settings_with(tmp_path, proxies="10.0.0.0/8", rate_limit_per_minute=2))
    try:
        statuses = [
            server.http.get("/v1/me", headers={"X-Forwarded-For": f"198.51.100.{i}"}).status_code for i in range(3)
        ]
        assert statuses == [401, 401, 429]  # all one client: the peer, 127.0.0.1
    finally:
        server.stop()


