"""The per-IP rate limit on real servers: requests at once to many routes are each
counted, and forwarding headers never move the limit of `qrcontact serve`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.app import make_settings
from tests.support.live_server import LiveServer

SPOOFED = [
    {"X-Forwarded-For": "203.0.113.{i}"},
    {"X-Forwarded-For": "203.0.113.{i}, 127.0.0.1"},
    {"X-Real-IP": "203.0.113.{i}"},
    {"Forwarded": "for=203.0.113.{i}"},
    {"True-Client-IP": "203.0.113.{i}"},
]


def test_requests_at_once_to_many_routes_are_each_counted(tmp_path):
    # One client, both doors, 40 requests in flight: none slips through while another's count is written.
    requests = [("GET", "/v1/me"), ("GET", "/v1/cards"), ("GET", "/v1/api-keys"), ("GET", "/app/login"), ("POST", "/v1/auth/login")]
    server = LiveServer(make_settings(tmp_path, rate_limit_per_minute=10))

    def send(n: int) -> int:
        method, path = requests[n % len(requests)]
        with httpx.Client(base_url=server.url) as http:
            return http.request(method, path, json={} if method == "POST" else None).status_code

    try:
        with ThreadPoolExecutor(40) as pool:
            statuses = list(pool.map(send, range(80)))
    finally:
        server.stop()
    assert len(statuses) - statuses.count(429) == 10, statuses


@pytest.mark.parametrize("trusted", ["false", "true"])
def test_forwarding_headers_never_move_the_limit_of_the_real_service(service, trusted):
    # Against `qrcontact serve` itself: uvicorn trusts X-Forwarded-For from 127.0.0.1 by
    # default, so this fails if the proxy-header handling is ever switched back on.
    svc = service(REPLICA_URL="off", RATE_LIMIT_PER_MINUTE="5", TRUST_PROXY_HEADERS=trusted)
    statuses = []
    with httpx.Client(base_url=svc.url) as client:
        for i in range(len(SPOOFED) + 1):
            headers = {name: value.format(i=i) for name, value in SPOOFED[i % len(SPOOFED)].items()}
            statuses.append(client.get("/v1/me", headers=headers).status_code)
    assert statuses == [401] * 5 + [429]


