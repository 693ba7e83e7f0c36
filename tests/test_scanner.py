"""The scanner fast path's own edges: what it catches, that it answers as the Litestar
handlers do, its metrics, errors and the per-client scanner rate limit.

The behaviour of the public pages themselves is specified by tests/test_public.py,
which runs against the fast path."""

from __future__ import annotations

import logging
import re
import sqlite3

import pytest
from litestar.testing import TestClient

from app.main import create_app
from app.scanner import fast_route
from app.scans import ScannerLimit, is_bot
from tests.conftest import PHONE_UA, create_card, flush_counters, make_settings, register

BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.parametrize(
    ("path", "method", "caught"),
    [
        ("/c/abc", "GET", "/c/"),
        ("/c/abc", "HEAD", "/c/"),
        ("/q/abc.png", "GET", "/q/"),
        ("/q/abc.svg", "HEAD", "/q/"),
        ("/q/abc.gif", "GET", "/q/"),  # answered 404 by the fast path, as by the handler
        ("/c/abc", "POST", None),
        ("/c/abc", "OPTIONS", None),
        ("/c/abc", "DELETE", None),
        ("/c", "GET", None),
        ("/c/", "GET", None),
        ("/q/", "GET", None),
        ("/c/abc/", "GET", None),
        ("/c/a/b", "GET", None),
        ("/c//abc", "GET", None),
        ("/cards", "GET", None),
        ("/cards/abc", "GET", None),
        ("/c-abc", "GET", None),
        ("/C/abc", "GET", None),
        ("/qr/abc.png", "GET", None),
        ("/p/abc", "GET", None),
        ("/v1/cards", "GET", None),
        ("/x/c/abc", "GET", None),
    ],
)
def test_fast_route_matches_exact_segments_only(path, method, caught):
    assert fast_route(path, method) == caught


@pytest.fixture
def card(client, user) -> dict:
    return create_card(client, user["headers"], slug="fast-card")


def scan_count(client, user, card) -> int:
    flush_counters(client)
    return client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json()["scanCount"]


def metric(client, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.parametrize("agent", [PHONE_UA, BOT_UA, ""])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", ["/c/fast-card", "/c/nope-nope", "/q/fast-card.png", "/q/fast-card.svg", "/q/fast-card.gif"])
def test_both_doors_answer_alike(client, card, path, method, agent):
    """The fast path (exact path) and the Litestar handler (trailing slash) give the same answer."""
    headers = {"User-Agent": agent}
    fast = client.request(method, path, headers=headers, follow_redirects=False)
    slow = client.request(method, path + "/", headers=headers, follow_redirects=False)
    assert fast.status_code == slow.status_code
    assert fast.content == slow.content
    for header in ("location", "cache-control", "content-length", "content-security-policy"):
        assert fast.headers.get(header) == slow.headers.get(header), header
    if fast.status_code != 302:  # Litestar labels even an empty redirect application/json
        assert fast.headers.get("content-type") == slow.headers.get("content-type")


def test_only_counted_requests_count_whichever_door(client, user, card):
    for path in ("/c/fast-card", "/c/fast-card/"):
        client.get(path, headers={"User-Agent": PHONE_UA}, follow_redirects=False)
        client.head(path, headers={"User-Agent": PHONE_UA}, follow_redirects=False)
        client.get(path, headers={"User-Agent": BOT_UA}, follow_redirects=False)
        client.get(path, headers={"User-Agent": ""}, follow_redirects=False)
        client.get(f"/q/{card['slug']}.png", headers={"User-Agent": PHONE_UA})
    assert scan_count(client, user, card) == 2


def test_head_of_an_image_has_its_headers_and_no_body(client, card):
    image = client.get("/q/fast-card.png")
    head = client.head("/q/fast-card.png")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "image/png"
    assert head.headers["content-length"] == str(len(image.content))


def test_head_of_a_missing_card_is_a_404_without_body(client):
    response = client.head("/c/nope-nope", follow_redirects=False)
    assert response.status_code == 404 and response.content == b""
    assert int(response.headers["content-length"]) > 0


@pytest.mark.parametrize("path", ["/cards", "/c", "/c/", "/c/a/b"])
def test_paths_it_does_not_catch_stay_litestars(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_other_methods_stay_litestars(client, card):
    response = client.post("/c/fast-card")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}


def test_counters_get_user_agent_and_referrer(client, card, monkeypatch):
    seen = []
    counters = client.app.state.counters
    monkeypatch.setattr(counters, "scan", lambda *args: seen.append(args[1:]))
    client.get("/c/fast-card", headers={"User-Agent": PHONE_UA, "Referer": "https://example.com/a"}, follow_redirects=False)
    assert seen == [(PHONE_UA, "https://example.com/a", None)]


def test_http_metrics_are_litestars_series_with_the_same_labels(client, card):
    labels = {"method": "GET", "path": "/c/{slug}", "status_code": "302", "app_name": "qrcontact"}
    before = metric(client, "http_requests_total", **labels)
    duration_before = metric(client, "http_request_duration_seconds_count", **labels)
    redirects_before = metric(client, "redirect_latency_seconds_count")
    client.get("/c/fast-card", follow_redirects=False)  # fast path
    client.get("/c/fast-card/", follow_redirects=False)  # Litestar
    assert metric(client, "http_requests_total", **labels) == before + 2
    assert metric(client, "http_request_duration_seconds_count", **labels) == duration_before + 2
    assert metric(client, "redirect_latency_seconds_count") == redirects_before + 2
    image = {"method": "HEAD", "path": "/q/{name}", "status_code": "200"}
    client.head("/q/fast-card.png")
    assert metric(client, "http_requests_total", **image) >= 1
    assert metric(client, "http_requests_in_progress", path="/c/{slug}") == 0


def test_an_unexpected_error_is_a_problem_document_logged_and_counted(client, settings, caplog):
    # A database that lost a table: looking up an unknown slug fails inside the fast path.
    with sqlite3.connect(settings.database_path) as conn:
        conn.execute("DROP TABLE retired_slugs")
    errors_before = metric(client, "errors_total", kind="unhandled")
    response = client.get("/c/no-such-card", follow_redirects=False)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"status": 500, "title": "Internal Server Error", "detail": "something went wrong"}
    assert metric(client, "errors_total", kind="unhandled") == errors_before + 1
    assert metric(client, "http_requests_total", path="/c/{slug}", status_code="500") == 1
    assert metric(client, "http_requests_error_total", path="/c/{slug}", status_code="500") == 1
    assert any("unhandled error" in record.message for record in caplog.records)


# --- the scanner rate limit ------------------------------------------------------------


def limited_client(tmp_path, **overrides) -> TestClient:
    return TestClient(create_app(make_settings(tmp_path, scanner_rate_limit_per_minute=3, **overrides)))


def test_scanner_limit_answers_429_with_retry_after_and_does_not_count(tmp_path):
    with limited_client(tmp_path) as client:
        user = register(client)
        card = create_card(client, user["headers"], slug="limited")
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
        assert metric(client, "redirects_total", outcome="rate_limited") == 2
        # The API has its own limit, untouched by the scanner one.
        assert client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).status_code == 200
        assert scan_count(client, user, card) == 1


@pytest.mark.parametrize(("trusted", "separate"), [(True, True), (False, False)])
def test_scanner_limit_trusts_fly_client_ip_only_behind_the_proxy(tmp_path, trusted, separate):
    with limited_client(tmp_path, trust_proxy_headers=trusted) as client:
        for i in range(3):
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


def test_route_table_names_the_fast_path():
    from app import main

    doc = main.__doc__
    assert re.search(r"/c/\{slug\}.*scans", doc) and "scanner.ScannerApp" in doc


def test_folded_tallies_read_as_if_recorded_one_by_one():
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    from app import tally

    buckets = [0.001, 0.0025, 0.005, 0.01, 0.1, 1]
    values = [0.0, 0.0005, 0.001, 0.0011, 0.003, 0.005, 0.05, 0.5, 1.0, 7.5] * 3
    registry = CollectorRegistry()
    direct = Histogram("direct_seconds", "d", buckets=buckets, registry=registry)
    folded = Histogram("folded_seconds", "f", ["path"], buckets=buckets, registry=registry)
    count = Counter("folded_requests", "c", ["path"], registry=registry)
    running = Gauge("folded_running", "r", ["path"], registry=registry)
    timed, counted = tally.Timed(folded.labels("/c/{slug}")), tally.Counted(count.labels("/c/{slug}"))
    in_progress = tally.Running(running.labels("/c/{slug}"))
    for value in values:
        direct.observe(value)
        timed.add(value)
        counted.n += 1
    in_progress.n += 3
    tally.fold_all()
    in_progress.n -= 1
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
    assert registry.get_sample_value("folded_running", {"path": "/c/{slug}"}) == 2


@pytest.mark.parametrize("given", [None, "trace-42", "has spaces"])
def test_fast_path_answers_carry_a_request_id(client, card, given, caplog):
    headers = {"X-Request-ID": given} if given else {}
    with caplog.at_level(logging.DEBUG, logger="app.access"):
        first = client.get("/c/fast-card", headers=headers, follow_redirects=False)
        second = client.head("/q/fast-card.png", headers=headers)
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    if given == "trace-42":
        assert ids == [given, given]
    else:
        assert ids[0] != ids[1] and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    lines = [r for r in caplog.records if r.name == "app.access"]
    assert [(r.levelno, r.fields["path"], r.fields["status"]) for r in lines] == [
        (logging.DEBUG, "/c/{slug}", 302), (logging.DEBUG, "/q/{name}", 200),
    ]


def test_event_seconds_are_the_utc_second():
    import random
    from datetime import UTC, datetime

    from app.scans import _second

    rng = random.Random(6)
    moments = [rng.uniform(1.7e9, 1.9e9) for _ in range(2_000)] + [1.8e9, 1.8e9 + 0.9999995]
    assert [_second(int(m)) for m in moments] == [
        datetime.fromtimestamp(int(m), UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for m in moments
    ]
