"""HEAD answers wherever GET does, with the same status and headers and no body: on a real
uvicorn server (LiveServer) for the doors people and checkers use, and in process for
every GET route in the app's route table."""

from __future__ import annotations

import re

import httpx
import pytest

from app.static_files import static_url
from tests.support.app import PASSWORD, create_card, make_settings, register
from tests.support.live_server import LiveServer

# Headers that differ between any two requests, whatever the method.
VOLATILE = {"date", "x-request-id", "set-cookie", "ratelimit-remaining", "ratelimit-reset"}
# Answers whose body (so its length) changes from one request to the next; or only its
# gzipped length: a new random CSRF token on each login page compresses to a length of its own.
CHANGING = {"/metrics", "/v1/admin/diagnostics", "/app/login"}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    # An http:// base URL, so that the console's cookies are not Secure and httpx sends them back.
    server = LiveServer(make_settings(tmp_path_factory.mktemp("head"), public_base_url="http://127.0.0.1"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(live) -> dict:
    account = register(live.http)  # the first account: the admin
    account["card"] = create_card(live.http, account["headers"], slug="head-card")
    return account


@pytest.fixture(scope="module")
def console(live, admin) -> httpx.Client:
    """A client with a console session of the admin."""
    client = httpx.Client(base_url=live.url, timeout=10, follow_redirects=False)
    token = re.search(r'name="_csrf_token" value="([^"]+)"', client.get("/app/login").text).group(1)
    login = client.post("/app/login", data={"_csrf_token": token, "email": admin["user"]["email"], "password": PASSWORD})
    assert login.status_code == 303 and login.headers["location"] == "/app/cards", login.text
    yield client
    client.close()


# (what, path, who): who is None (nobody), "bearer" (the admin's token) or "session" (the console).
DOORS = [
    ("site root", "/", None),
    ("health", "/health", None),
    ("metrics", "/metrics", None),
    ("API: the account", "/v1/me", "bearer"),
    ("API: no credentials", "/v1/me", None),
    ("API: cards", "/v1/cards", "bearer"),
    ("API: a card", "/v1/cards/{card_id}", "bearer"),
    ("API: no such card", "/v1/cards/00000000-0000-0000-0000-000000000000", "bearer"),
    ("API: a QR code", "/v1/cards/{card_id}/qr?format=png&size=256", "bearer"),
    ("API: stats", "/v1/cards/{card_id}/stats", "bearer"),
    ("API: diagnostics", "/v1/admin/diagnostics", "bearer"),
    ("console: its door", "/app", None),
    ("console: login page", "/app/login", None),
    ("console: cards", "/app/cards", "session"),
    ("console: a card", "/app/cards/{card_id}", "session"),
    ("console: not logged in", "/app/cards", None),
    ("console: stylesheet", "{css}", None),
    ("card page", "/p/head-card", None),
    ("vCard", "/p/head-card.vcf", None),
    ("no such card page", "/p/nobody-here", None),
    ("scan redirect", "/c/head-card", None),
    ("public QR", "/q/head-card.png", None),
    ("verification page", "/verify-email?token=nothing", None),
    ("docs", "/schema", None),
    ("docs: the document", "/schema/openapi.json", None),
    ("docs: Swagger UI's styles", "/schema/assets/swagger-ui.css", None),
]


@pytest.mark.parametrize("what, path, who", DOORS, ids=[row[0] for row in DOORS])
def test_head_answers_like_get_over_http(live, admin, console, what, path, who):
    path = path.format(card_id=admin["card"]["cardId"], css=static_url("console.css"))

    def fetch(method: str) -> httpx.Response:
        if who == "session":
            return console.request(method, path)
        # Without a cookie jar: a cookie set by the GET would change the HEAD's answer.
        headers = admin["headers"] if who == "bearer" else {}
        return httpx.request(method, live.url + path, headers=headers, timeout=10)

    # Once before, so that /c and /q are answered by the scanner fast path both times
    # (its 302 has no content-type, Litestar's has one: docs/performance.md).
    fetch("GET")
    got, head = fetch("GET"), fetch("HEAD")
    assert head.status_code == got.status_code != 405, what
    assert head.content == b""
    assert set(head.headers) == set(got.headers), what
    for name in set(got.headers) - VOLATILE - ({"content-length"} if path in CHANGING else set()):
        assert head.headers[name] == got.headers[name], (what, name)
    if path not in CHANGING:  # the length of the bytes sent: gzipped ones for text of 1 KB and more
        assert head.headers["content-length"] == str(got.num_bytes_downloaded), what


def test_allow_lists_head_where_get_is(live):
    assert live.http.options("/health").headers["allow"] == "GET, HEAD, OPTIONS"
    refused = live.http.post("/health")
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD, OPTIONS"
    # A path without GET gets no HEAD.
    assert live.http.head("/v1/auth/login").status_code == 405


