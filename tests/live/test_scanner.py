"""The scanner fast path (app/public/fast_path.py) on a real uvicorn server over real sockets: what
it catches, that it answers as the Litestar handlers do, HTTP/1.1 on a shared connection,
its metrics, request ids and errors; then the per-client scanner rate limit (its parts in
process: tests/unit/test_scanner.py).

The behaviour of the public pages themselves is specified by tests/live/test_public.py, which
runs against the Litestar handlers; `test_both_doors_answer_alike` holds the two together.
"""

from __future__ import annotations

import logging
import re
import socket

import pytest

from app.ops.monitoring import RequestIdFilter
from tests.support.app import PHONE_UA, create_card, make_settings, register
from tests.support.live_server import LiveServer
from tests.support.scanner import exchange, scan_count

BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture
def user(live) -> dict:
    return register(live.http)


@pytest.fixture
def card(live, user) -> dict:
    card = create_card(live.http, user["headers"], slug="fast-card")
    # The first scan reads the card from the database (Litestar's handler) and caches it.
    assert live.http.get("/c/fast-card", headers={"User-Agent": BOT_UA}).status_code == 302
    assert live.http.get("/q/fast-card.png").status_code == 200
    return card


def closed_after(live, raw: bytes) -> bool:
    """Whether the server closes the connection after answering `raw`."""
    with socket.create_connection(live.address, timeout=5) as conn:
        conn.sendall(raw)
        try:
            while conn.recv(65536):
                pass
        except TimeoutError:
            return False
        return True


# --- what it answers, and that Litestar would have answered the same ----------------------


@pytest.mark.parametrize("agent", [PHONE_UA, BOT_UA, ""])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", [
    "/c/fast-card", "/c/nope-nope", "/q/fast-card.png", "/q/fast-card.svg", "/q/fast-card.gif",
    "/p/fast-card", "/p/fast-card.vcf", "/p/fast-card.txt", "/p/nope-nope",
])
def test_both_doors_answer_alike(live, card, path, method, agent):
    """The fast path (exact path, cached) and the Litestar handler (trailing slash) give the same answer."""
    headers = {"User-Agent": agent}
    slow = live.http.request(method, path + "/", headers=headers)  # also caches what the path needs
    answered = live.answered
    fast = live.http.request(method, path, headers=headers)
    assert live.answered == answered + 1
    assert fast.status_code == slow.status_code
    assert fast.content == slow.content
    for header in (
        "location", "cache-control", "content-length", "content-security-policy", "retry-after", "content-disposition",
        "x-content-type-options", "referrer-policy",
    ):
        assert fast.headers.get(header) == slow.headers.get(header), header
    if fast.status_code != 302:  # Litestar labels even an empty redirect application/json
        assert fast.headers.get("content-type") == slow.headers.get("content-type")
    assert fast.headers["date"]  # uvicorn's default headers come with it


def test_what_is_not_in_memory_goes_to_litestar_which_caches_it(live, user):
    create_card(live.http, user["headers"], slug="cold-card")  # its answer drew the PNG (cached)

    def fast(path: str) -> bool:
        answered = live.answered
        assert live.http.get(path).status_code in (200, 302)
        return live.answered == answered + 1

    def lookups(cache: str) -> tuple[float, float]:
        return live.metric("cache_hits_total", cache=cache), live.metric("cache_misses_total", cache=cache)

    slugs, images = lookups("slug"), lookups("qr")
    assert [fast("/c/cold-card"), fast("/c/cold-card")] == [False, True]  # the card was read, then cached
    assert fast("/q/cold-card.png")
    assert [fast("/q/cold-card.svg"), fast("/q/cold-card.svg")] == [False, True]  # drawn, then cached
    # A miss is counted once, not again by the door that then reads or draws it. (When the
    # card is cached but not its image, the card's hit is counted by both doors.)
    assert lookups("slug")[1] == slugs[1] + 1 and lookups("slug")[0] >= slugs[0] + 4
    assert lookups("qr") == (images[0] + 2, images[1] + 1)


def test_an_edited_card_is_answered_from_its_new_state(live, user, card):
    live.http.patch(f"/v1/cards/{card['cardId']}", json={"qrSize": 256}, headers=user["headers"]).raise_for_status()
    first = live.http.get("/q/fast-card.png")  # the card left the cache with the edit
    again = live.http.get("/q/fast-card.png")
    assert first.content == again.content and int(first.headers["content-length"]) == len(again.content)
    deleted = live.http.delete(f"/v1/cards/{card['cardId']}", headers=user["headers"])
    assert deleted.status_code == 204
    answered = live.answered
    assert [live.http.get("/c/fast-card").status_code for _ in range(2)] == [410, 410]
    assert live.answered == answered + 1


def test_only_counted_requests_count_whichever_door(live, user, card):
    before = scan_count(live.http, user, card)
    answered = live.answered
    for path in ("/c/fast-card", "/c/fast-card/", "/c/fast-card?utm_source=poster"):
        live.http.get(path, headers={"User-Agent": PHONE_UA})
        live.http.head(path, headers={"User-Agent": PHONE_UA})
        live.http.get(path, headers={"User-Agent": BOT_UA})
        live.http.get(path, headers={"User-Agent": ""})
        live.http.get("/q/fast-card.png", headers={"User-Agent": PHONE_UA})
    assert live.answered == answered + 11  # all but the four with a trailing slash
    assert scan_count(live.http, user, card) == before + 3


def test_counters_get_user_agent_and_referrer(live, card, monkeypatch):
    seen = []
    monkeypatch.setattr(live.app.state.counters, "scan", lambda *args: seen.append(args[1:]))
    headers = {"User-Agent": PHONE_UA, "Referer": "https://example.com/a", "Fly-Client-IP": "10.1.1.1"}
    live.http.get("/c/fast-card", headers=headers)
    assert seen == [(PHONE_UA, "https://example.com/a", None, "qr")]  # no country: proxy headers untrusted


def test_head_of_an_image_has_its_headers_and_no_body(live, card):
    image = live.http.get("/q/fast-card.png")
    head = live.http.head("/q/fast-card.png")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "image/png"
    assert head.headers["content-length"] == str(len(image.content))


@pytest.mark.parametrize("path", ["/cards", "/c", "/c/", "/c/a/b"])
def test_paths_it_does_not_catch_stay_litestars(live, path):
    response = live.http.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


def test_other_methods_stay_litestars(live, card):
    response = live.http.post("/c/fast-card")
    assert response.status_code == 405
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "OPTIONS"}


# --- HTTP/1.1 on one connection ----------------------------------------------------------


def test_pipelined_requests_are_answered_in_order_whichever_door(live, card):
    """A request behind one Litestar is still answering waits its turn (and is not answered early)."""
    requests = [
        b"GET /c/fast-card HTTP/1.1\r\nHost: x\r\nX-Request-ID: one\r\n\r\n",
        b"GET /c/fast-card/ HTTP/1.1\r\nHost: x\r\nX-Request-ID: two\r\n\r\n",
        b"HEAD /q/fast-card.png HTTP/1.1\r\nHost: x\r\nX-Request-ID: three\r\n\r\n",
        b"GET /p/fast-card HTTP/1.1\r\nHost: x\r\nX-Request-ID: four\r\n\r\n",
        b"GET /c/nope-nope?x=1 HTTP/1.1\r\nHost: x\r\nX-Request-ID: five\r\n\r\n",
    ]
    responses = exchange(live, requests)
    ids = [re.search(rb"(?im)^x-request-id: (\S+)", r).group(1) for r in responses]
    statuses = [r.split(b" ", 2)[1] for r in responses]
    assert ids == [b"one", b"two", b"three", b"four", b"five"]
    assert statuses == [b"302", b"302", b"200", b"200", b"404"]


def test_a_keep_alive_connection_carries_many_answers_and_bodies_are_skipped(live, card):
    answered = live.answered
    one = b"GET /c/fast-card HTTP/1.1\r\nHost: x\r\n\r\n"
    with_body = b"GET /c/fast-card HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    chunked = b"GET /c/fast-card HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    responses = exchange(live, [one] * 50 + [with_body, chunked, one])
    assert len(responses) == 53
    assert all(r.startswith(b"HTTP/1.1 302 Found\r\n") and b"\r\nlocation: /p/fast-card?src=qr\r\n" in r for r in responses)
    # The chunked one goes to Litestar (its body could yet turn out malformed: one answer per
    # request), and the one after it waits behind it, answered by Litestar too.
    assert live.answered == answered + 51


@pytest.mark.parametrize(
    "request_line",
    [
        b"GET /c/fast-card HTTP/1.0\r\n\r\n",
        b"GET /c/fast-card HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ],
)
def test_a_closing_connection_is_left_to_uvicorn_and_closed(live, card, request_line):
    answered = live.answered
    assert closed_after(live, request_line)
    assert live.answered == answered


def test_a_malformed_request_after_an_answer_is_a_400_and_closes(live, card):
    raw = [b"GET /c/fast-card HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /c/fast-card HTTP/1.1\r\nBad Header\r\n\r\n"]
    responses = exchange(live, raw)
    assert [r.split(b" ", 2)[1] for r in responses] == [b"302", b"400"]


def test_the_server_stops_with_idle_keep_alive_connections_open(tmp_path):
    server = LiveServer(make_settings(tmp_path))
    user = register(server.http)
    create_card(server.http, user["headers"], slug="stop-card")
    server.http.get("/c/stop-card")
    with socket.create_connection(server.address, timeout=5) as conn:
        conn.sendall(b"GET /c/stop-card HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 302")
        server.stop()  # joins the server thread: uvicorn closed the idle connection
        assert conn.recv(65536) == b""


# --- metrics, request ids, errors ----------------------------------------------------------


def test_http_metrics_are_litestars_series_with_the_same_labels(live, card):
    labels = {"method": "GET", "path": "/c/{slug}", "status_code": "302", "app_name": "qrcontact"}
    before = live.metric("http_requests_total", **labels)
    duration_before = live.metric("http_request_duration_seconds_count", **labels)
    redirects_before = live.metric("redirect_latency_seconds_count")
    answered = live.answered
    live.http.get("/c/fast-card")  # fast path
    live.http.get("/c/fast-card/")  # Litestar
    assert live.answered == answered + 1
    assert live.metric("http_requests_total", **labels) == before + 2
    assert live.metric("http_request_duration_seconds_count", **labels) == duration_before + 2
    assert live.metric("redirect_latency_seconds_count") == redirects_before + 2
    image = {"method": "HEAD", "path": "/q/{name}", "status_code": "200"}
    images_before = live.metric("http_requests_total", **image)
    live.http.head("/q/fast-card.png")
    assert live.metric("http_requests_total", **image) == images_before + 1
    assert live.metric("http_requests_in_progress", path="/c/{slug}") == 0


@pytest.mark.parametrize("given", [None, "trace-42", "has spaces"])
def test_fast_path_answers_carry_a_request_id(live, card, given, caplog):
    caplog.handler.addFilter(RequestIdFilter())  # as app.cli.configure_logging does
    headers = {"X-Request-ID": given} if given else {}
    answered = live.answered
    with caplog.at_level(logging.DEBUG, logger="app.access"):
        first = live.http.get("/c/fast-card", headers=headers)
        second = live.http.head("/q/fast-card.png", headers=headers)
    assert live.answered == answered + 2
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    if given == "trace-42":
        assert ids == [given, given]
    else:
        assert ids[0] != ids[1] and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    lines = [r for r in caplog.records if r.name == "app.access"]
    assert [(r.levelno, r.fields["path"], r.fields["status"], r.request_id) for r in lines] == [
        (logging.DEBUG, "/c/{slug}", 302, ids[0]), (logging.DEBUG, "/q/{name}", 200, ids[1]),
    ]


def test_an_unexpected_error_is_a_problem_document_logged_and_counted(live, card, monkeypatch, caplog):
    def broken(*args):
        raise RuntimeError("the limiter broke")

    caplog.handler.addFilter(RequestIdFilter())  # as app.cli.configure_logging does
    monkeypatch.setattr(live.app.state.public.limit, "retry_after", broken)
    errors_before = live.metric("errors_total", kind="unhandled")
    failures_before = live.metric("http_requests_total", path="/c/{slug}", status_code="500")
    failed_before = live.metric("http_requests_error_total", path="/c/{slug}", status_code="500")
    answered = live.answered
    for method in ("GET", "HEAD"):
        response = live.http.request(method, "/c/fast-card", headers={"User-Agent": PHONE_UA, "X-Request-ID": "oops-1"})
        assert response.status_code == 500
        assert response.headers["content-type"] == "application/problem+json"
    assert response.content == b""  # the HEAD
    response = live.http.get("/c/fast-card", headers={"User-Agent": PHONE_UA})
    assert response.json() == {"status": 500, "title": "Internal Server Error", "detail": "something went wrong"}
    assert live.answered == answered + 3
    assert live.metric("errors_total", kind="unhandled") == errors_before + 3
    assert live.metric("http_requests_total", path="/c/{slug}", status_code="500") == failures_before + 3
    assert live.metric("http_requests_error_total", path="/c/{slug}", status_code="500") == failed_before + 3
    logged = [r for r in caplog.records if "unhandled error" in r.message]
    assert [r.request_id for r in logged][:1] == ["oops-1"]


# --- the scanner rate limit ------------------------------------------------------------


def test_the_fast_path_shares_the_scanner_limit(tmp_path):
    server = LiveServer(make_settings(tmp_path, scanner_rate_limit_per_minute=4))
    try:
        user = register(server.http)
        card = create_card(server.http, user["headers"], slug="limited")  # its PNG is drawn and cached
        assert server.http.get("/c/limited", headers={"User-Agent": BOT_UA}).status_code == 302  # read, cached
        answered = server.answered
        assert server.http.get("/q/limited.png").status_code == 200
        statuses = [server.http.get("/c/limited", headers={"User-Agent": PHONE_UA}).status_code for _ in range(3)]
        assert statuses == [302, 302, 429]
        limited = server.http.get("/q/limited.png")
        assert server.answered == answered + 5
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.headers["content-type"] == "text/html; charset=utf-8" and "Too many requests" in limited.text
        assert scan_count(server.http, user, card) == 2
    finally:
        server.stop()


