"""The scanner fast path's parts in process: which paths it catches, request ids, the
per-client scanner rate limit, the bot check and the folded tallies; the fast path on a
real uvicorn server is tests/live/test_scanner.py.
"""

from __future__ import annotations

import asyncio
import re

import pytest

from app.public.answers import ScannerLimit, is_bot
from app.public.fast_path import fast_route
from tests.support.app import PHONE_UA, create_card, metric, register
from tests.support.scanner import limited_client, scan_count


@pytest.mark.parametrize(
    ("path", "method", "caught"),
    [
        (b"/c/abc", b"GET", b"/c/"),
        (b"/c/abc", b"HEAD", b"/c/"),
        (b"/q/abc.png", b"GET", b"/q/"),
        (b"/q/abc.svg", b"HEAD", b"/q/"),
        (b"/q/abc.gif", b"GET", b"/q/"),  # answered 404 by the fast path, as by the handler
        (b"/c/abc", b"POST", None),
        (b"/c/abc", b"OPTIONS", None),
        (b"/c/abc", b"DELETE", None),
        (b"/c", b"GET", None),
        (b"/c/", b"GET", None),
        (b"/q/", b"GET", None),
        (b"/c/abc/", b"GET", None),
        (b"/c/a/b", b"GET", None),
        (b"/c//abc", b"GET", None),
        (b"/c/ab%63", b"GET", None),  # uvicorn decodes it; Litestar answers
        (b"/cards", b"GET", None),
        (b"/cards/abc", b"GET", None),
        (b"/c-abc", b"GET", None),
        (b"/C/abc", b"GET", None),
        (b"/qr/abc.png", b"GET", None),
        (b"/p/abc", b"GET", b"/p/"),
        (b"/p/abc.vcf", b"HEAD", b"/p/"),
        (b"/p/abc/", b"GET", None),
        (b"/v1/cards", b"GET", None),
        (b"/x/c/abc", b"GET", None),
    ],
)
def test_fast_route_matches_exact_segments_only(path, method, caught):
    assert fast_route(path, method) == caught


def test_redirect_latency_covers_reading_the_card(client, monkeypatch):
    from app.public import card_cache

    read = card_cache.get_card_by_slug

    async def slow_read(conn, slug):
        await asyncio.sleep(0.15)
        return await read(conn, slug)

    create_card(client, register(client)["headers"], slug="slow-card")
    monkeypatch.setattr(card_cache, "get_card_by_slug", slow_read)
    count, fast = (metric(client, "redirect_latency_seconds_count"), metric(client, "redirect_latency_seconds_bucket", le="0.1"))
    assert client.get("/c/slow-card", follow_redirects=False).status_code == 302  # read from the database
    assert metric(client, "redirect_latency_seconds_count") == count + 1
    assert metric(client, "redirect_latency_seconds_bucket", le="0.1") == fast  # observed above 0.1 s


def test_a_request_id_is_echoed_only_when_it_is_safe_to_write_back():
    from app.public.fast_path import request_id_for

    assert request_id_for(b"trace-42.a:b_c") == b"trace-42.a:b_c"
    for unsafe in (b"abc\n", b"abc\r\nSet-Cookie: x=1", b"", b"a" * 129, "é".encode("latin-1")):
        assert re.fullmatch(rb"[0-9a-f]{32}", request_id_for(unsafe)), unsafe
    assert re.fullmatch(rb"[0-9a-f]{32}", request_id_for(None))


def test_scanner_limit_answers_429_with_retry_after_and_does_not_count(tmp_path):
    with limited_client(tmp_path) as client:
        user = register(client)
        card = create_card(client, user["headers"], slug="limited")
        # The metrics are the process's: other tests' refusals are counted there too.
        refused_before = metric(client, "redirects_total", outcome="rate_limited")
        # /c, /q and /p share one budget per client.
        assert client.get("/c/limited", headers={"User-Agent": PHONE_UA}, follow_redirects=False).status_code == 302
        assert client.get("/q/limited.png").status_code == 200
        assert client.get("/p/limited").status_code == 200
        for path in ("/c/limited", "/q/limited.png", "/p/limited", "/c/limited/"):
            response = client.get(path, headers={"User-Agent": PHONE_UA}, follow_redirects=False)
            assert response.status_code == 429, path
            assert 1 <= int(response.headers["retry-after"]) <= 60
            assert response.headers["content-type"] == "text/html; charset=utf-8"
            assert "Too many requests" in response.text
        assert metric(client, "redirects_total", outcome="rate_limited") - refused_before == 2
        # The API has its own limit, untouched by the scanner one.
        assert client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).status_code == 200
        assert scan_count(client, user, card) == 1


@pytest.mark.parametrize(("trusted", "separate"), [(True, True), (False, False)])
def test_scanner_limit_trusts_fly_client_ip_only_behind_the_proxy(tmp_path, trusted, separate):
    with limited_client(tmp_path, trust_proxy_headers=trusted) as client:
        for _i in range(3):
            client.get("/c/anything", headers={"Fly-Client-IP": "10.0.0.1"})
        other = client.get("/c/anything", headers={"Fly-Client-IP": "10.0.0.2"})
        assert other.status_code == (404 if separate else 429)
        # X-Forwarded-For never names the client.
        spoofed = client.get("/c/anything", headers={"Fly-Client-IP": "10.0.0.1", "X-Forwarded-For": "10.9.9.9"})
        assert spoofed.status_code == 429


def test_scanner_limit_refills_evenly_and_forgets_idle_clients():
    now = [1000.0]
    limit = ScannerLimit(per_minute=6, clock=lambda: now[0])  # a token every 10 s
    assert [limit.retry_after("a") for _ in range(6)] == [0] * 6
    assert limit.retry_after("a") == 10
    now[0] += 4
    assert limit.retry_after("a") == 6  # the refill since is kept
    assert limit.retry_after("b") == 0  # every client has its own bucket
    now[0] += 6
    assert limit.retry_after("a") == 0
    assert limit.retry_after("a") == 10
    now[0] += 61
    assert limit.retry_after("c") == 0  # a new client after a quiet minute prunes the full buckets
    assert len(limit) == 1
    assert [limit.retry_after("a") for _ in range(6)] == [0] * 6


@pytest.mark.parametrize(
    ("agent", "bot"),
    [
        (PHONE_UA, False),
        ("FACEBOOKEXTERNALHIT/1.1", True),
        ("Mozilla/5.0 (compatible; BingPreview/1.0b)", True),
        ("WhatsApp/2.23.20.0 A", True),
        ("", True),
        (None, True),
    ],
)
def test_bot_check_ignores_case(agent, bot):
    assert is_bot(agent) is bot
    assert is_bot(agent) is bot  # and the cached answer is the same


def test_folded_tallies_read_as_if_recorded_one_by_one():
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from app.ops import tally

    buckets = [0.001, 0.0025, 0.005, 0.01, 0.1, 1]
    values = [0.0, 0.0005, 0.001, 0.0011, 0.003, 0.005, 0.05, 0.5, 1.0, 7.5] * 3
    registry = CollectorRegistry()
    direct = Histogram("direct_seconds", "d", buckets=buckets, registry=registry)
    folded = Histogram("folded_seconds", "f", ["path"], buckets=buckets, registry=registry)
    requests = Counter("folded_requests", "r", ["path"], registry=registry)
    failures = Counter("folded_failures", "f", ["path"], registry=registry)
    timed = tally.Timed(folded.labels("/c/{slug}"), requests.labels("/c/{slug}"))
    counted = tally.Counted(failures.labels("/c/{slug}"))
    for value in values:
        direct.observe(value)
        timed.add(value)
        counted.n += 1
    tally.fold_all()
    counted.n += 2
    tally.fold_all()
    tally.fold_all()  # folding again adds nothing

    def samples(metric, prefix):
        (family,) = metric.collect()
        return [
            (s.name.removeprefix(prefix), s.labels.get("le"), s.value)
            for s in family.samples if not s.name.endswith("_created")
        ]

    assert samples(folded, "folded_seconds") == samples(direct, "direct_seconds")
    assert registry.get_sample_value("folded_requests_total", {"path": "/c/{slug}"}) == len(values)
    assert registry.get_sample_value("folded_failures_total", {"path": "/c/{slug}"}) == len(values) + 2


def test_event_seconds_are_the_utc_second():
    import random
    from datetime import UTC, datetime

    from app.public.counters import _second

    rng = random.Random(6)
    moments = [rng.uniform(1.7e9, 1.9e9) for _ in range(2_000)] + [1.8e9, 1.8e9 + 0.9999995]
    assert [_second(int(m)) for m in moments] == [
        datetime.fromtimestamp(int(m), UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for m in moments
    ]
