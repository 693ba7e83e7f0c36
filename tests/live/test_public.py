"""Public pages: the counted redirect, the card page, the vCard download and public QR images.

Every test runs twice: through Litestar in-process, and on a real uvicorn server, where
exact GET/HEAD requests for /c/{slug} and /q/{name} whose card (and image) is cached are
answered by the scanner fast path in the HTTP protocol (app/scanner.py) instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading

import pytest
import vobject
from litestar.testing import TestClient

from app.cards import Card
from app.scans import NOT_CACHED
from tests.support.app import BOT_AGENTS, PHONE_UA, create_card, flush_counters
from tests.support.live_server import LiveClient, LiveServer
from tests.support.qr import decode_png


@pytest.fixture(params=["litestar", "http server"])
def client(request, app, settings):
    if request.param == "litestar":
        with TestClient(app, base_url="https://qr.example.test") as client:
            yield client
        return
    server = LiveServer(settings)
    # Following redirects as a TestClient does; every scanner request answered by the fast path.
    with LiveClient(server, cached=True, follow_redirects=True) as client:
        yield client
    server.stop()


def counts(client, user, card) -> tuple[int, int]:
    flush_counters(client)
    body = client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json()
    return body["scanCount"], body["viewCount"]


def test_scan_redirects_to_the_card_page_and_counts(client, user):
    card = create_card(client, user["headers"], slug="scan-me")
    for _ in range(3):
        response = client.get("/c/scan-me", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
        assert response.status_code == 302
        assert response.headers["location"] == "/p/scan-me"
    assert counts(client, user, card) == (3, 0)


def test_counts_survive_in_the_database_after_a_flush(client, user, settings):
    from app.sqlite import sqlite3

    card = create_card(client, user["headers"], slug="flushed")
    client.get("/c/flushed", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    client.get("/p/flushed", headers={"User-Agent": PHONE_UA})
    flush_counters(client)
    row = sqlite3.connect(settings.database_path).execute(
        "SELECT scan_count, view_count FROM cards WHERE card_id = ?", (card["cardId"],)
    ).fetchone()
    assert row == (1, 1)


@pytest.mark.parametrize("agent", BOT_AGENTS)
def test_bots_and_previews_are_redirected_but_not_counted(client, user, agent):
    card = create_card(client, user["headers"], slug="bot-check")
    response = client.get("/c/bot-check", headers={"User-Agent": agent}, follow_redirects=False)
    assert response.status_code == 302
    client.get("/p/bot-check", headers={"User-Agent": agent})
    assert counts(client, user, card) == (0, 0)


def test_head_is_answered_but_not_counted(client, user):
    card = create_card(client, user["headers"], slug="head-check")
    response = client.head("/c/head-check", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    assert response.status_code == 302 and response.headers["location"] == "/p/head-check"
    assert client.head("/p/head-check", headers={"User-Agent": PHONE_UA}).status_code == 200
    assert counts(client, user, card) == (0, 0)


def test_card_page_counts_a_view_escapes_everything_and_sends_a_csp(client, user):
    card = create_card(
        client, user["headers"], slug="page-check", fullName="<script>alert('x')</script>",
        organization="\"><img src=x onerror=alert(1)>", title="A & B", phone="+1 555 0100",
        website="https://example.com/?a=\"onmouseover=alert(1)",
    )
    response = client.get("/p/page-check", headers={"User-Agent": PHONE_UA})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    html = response.text
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert 'href="https://example.com/?a=&#34;onmouseover=alert(1)"' in html
    assert 'href="tel:+15550100"' in html
    assert 'href="mailto:jane@example.com"' in html
    assert 'href="/p/page-check.vcf"' in html and "Save contact" in html
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    import base64
    import hashlib

    assert base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() in csp
    assert counts(client, user, card) == (0, 1)


def test_card_page_has_a_favicon_and_open_graph_tags_for_link_previews(client, user):
    create_card(client, user["headers"], slug="og-check", fullName="Ana \"Q\" Li", organization="Acme", title="CTO")
    html = client.get("/p/og-check", headers={"User-Agent": PHONE_UA}).text
    base = client.app.state.settings.public_base_url
    tags = dict(re.findall(r'<meta property="(og:[a-z:]+)" content="([^"]*)">', html))
    assert tags["og:title"] == "Ana &#34;Q&#34; Li" and tags["og:description"] == "CTO, Acme"
    assert tags["og:url"] == f"{base}/p/og-check" and tags["og:image"] == f"{base}/q/og-check.png"
    assert client.get(tags["og:image"].removeprefix(base)).headers["content-type"] == "image/png"
    favicon = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', html).group(1)
    icon = client.get(favicon)
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml") and b"<svg" in icon.content
    assert "immutable" in icon.headers["cache-control"]


def test_vcard_download(client, user):
    create_card(client, user["headers"], slug="vcf-check", fullName="Jane Q. Public", organization="Acme, Inc.")
    response = client.get("/p/vcf-check.vcf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/vcard; charset=utf-8"
    assert response.headers["content-disposition"] == 'attachment; filename="vcf-check.vcf"'
    parsed = vobject.readOne(response.text)
    assert parsed.fn.value == "Jane Q. Public" and parsed.org.value == ["Acme, Inc."]


def test_public_qr_images(client, user):
    card = create_card(client, user["headers"], slug="qr-public", qrSize=300)
    png = client.get("/q/qr-public.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    text, image = decode_png(png.content)
    assert text == card["shortUrl"] and image.size == (300, 300)
    svg = client.get("/q/qr-public.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")


@pytest.mark.parametrize(
    "path", ["/c/nope-nope", "/p/nope-nope", "/p/nope-nope.vcf", "/q/nope-nope.png", "/c/UPPER", "/q/qr-x.gif", "/p/x.html"]
)
def test_unknown_slugs_are_404_pages(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/html")
    assert "No such card" in response.text


def test_deleted_cards_are_410(client, user):
    card = create_card(client, user["headers"], slug="deleted-one")
    client.get("/c/deleted-one", follow_redirects=False)  # cached while it lived
    client.delete(f"/v1/cards/{card['cardId']}", headers=user["headers"])
    for path in ("/c/deleted-one", "/p/deleted-one", "/q/deleted-one.png"):
        assert client.get(path, follow_redirects=False).status_code == 410


def test_edits_show_on_the_public_page_at_once(client, user):
    card = create_card(client, user["headers"], slug="edit-me", title="Before")
    assert "Before" in client.get("/p/edit-me").text
    client.patch(f"/v1/cards/{card['cardId']}", json={"title": "After"}, headers=user["headers"])
    assert "After" in client.get("/p/edit-me").text


class HeldReads:
    """The app's database, except that a read, once its queries are done, holds its caller
    until released: a card lookup then has read its row and not yet cached it."""

    def __init__(self, db) -> None:
        self._db = db
        self.done = threading.Event()
        self.released = threading.Event()

    @contextlib.asynccontextmanager
    async def read(self):
        async with self._db.read() as conn:
            yield conn
        self.done.set()
        await asyncio.to_thread(self.released.wait, 30)


@pytest.mark.parametrize("write", ["delete", "edit"])
def test_a_write_during_a_lookup_is_never_served_from_the_cache(client, user, write):
    """SPEC §4: a lookup that read the card before a delete or edit committed must not cache
    the old row afterwards (it would be served for good by the page, vCard, QR and redirect)."""
    card = create_card(client, user["headers"], slug="racing-card", title="Before")
    cards = client.app.state.public.cards
    held = HeldReads(cards._db)
    cards._db = held

    async def start_lookup():
        return asyncio.ensure_future(cards.get("racing-card"))

    async def finish(lookup):
        return await lookup

    lookup = client.blocking_portal.call(start_lookup)
    assert held.done.wait(30), "the lookup did not read"
    cards._db = held._db  # the write and everything after it read as usual
    if write == "delete":
        assert client.delete(f"/v1/cards/{card['cardId']}", headers=user["headers"]).status_code == 204
    else:
        response = client.patch(f"/v1/cards/{card['cardId']}", json={"title": "After"}, headers=user["headers"])
        assert response.status_code == 200
    held.released.set()
    old = client.blocking_portal.call(finish, lookup)
    assert isinstance(old, Card) and old.title == "Before"  # it did read before the write

    assert cards.cached("racing-card") is NOT_CACHED
    if write == "delete":
        for path in ("/c/racing-card", "/p/racing-card", "/p/racing-card.vcf", "/q/racing-card.png", "/q/racing-card.svg"):
            assert client.get(path, follow_redirects=False).status_code == 410, path
    else:
        assert "After" in client.get("/p/racing-card").text
        assert "After" in client.get("/p/racing-card.vcf").text


@pytest.mark.parametrize("path", ["/c/..%2f..%2fetc", "/c/%2e%2e/v1/me", "/c//evil.example"])
def test_traversal_shaped_slugs_go_nowhere(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 404
    assert "location" not in response.headers
