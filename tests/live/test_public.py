"""Public pages: the counted redirect, the card page, the vCard download and public QR images.

Every test runs twice: through Litestar in-process, and on a real uvicorn server, where
exact GET/HEAD requests for /c/{slug} and /q/{name} whose card (and image) is cached are
answered by the scanner fast path in the HTTP protocol (app/public/fast_path.py) instead.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import re
import threading

import pytest
import vobject
from litestar.testing import TestClient
from prometheus_client import REGISTRY

from app.cards.types import Card
from app.edge import local_copy
from app.edge import main as edge_main
from app.ops import tally
from app.public import pages
from app.public.answers import NOT_CACHED
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
        assert response.headers["location"] == "/p/scan-me?src=qr"
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
    assert response.status_code == 302 and response.headers["location"] == "/p/head-check?src=qr"
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
    assert "<script" not in html and "<img src=x" not in html
    # The page's own images only: the card's QR (behind "Show QR"), no photo on this card.
    assert re.findall(r'<img src="([^"]+)"', html) == ["/q/page-check.svg"]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert 'href="https://example.com/?a=&#34;onmouseover=alert(1)"' in html
    assert 'href="tel:+15550100"' in html
    assert 'href="mailto:jane@example.com"' in html
    assert 'href="/p/page-check.vcf"' in html and "Save contact" in html
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    styles = re.findall(r"<style>(.*?)</style>", html, re.S)  # the page's, then the card's accent
    assert len(styles) == 2
    for style in styles:
        assert base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() in csp
    assert counts(client, user, card) == (0, 1)


def test_card_page_has_a_favicon_and_open_graph_tags_for_link_previews(client, user):
    create_card(client, user["headers"], slug="og-check", fullName="Ana \"Q\" Li", organization="Acme", title="CTO")
    html = client.get("/p/og-check", headers={"User-Agent": PHONE_UA}).text
    base = client.app.state.settings.public_base_url
    tags = dict(re.findall(r'<meta property="(og:[a-z:]+)" content="([^"]*)">', html))
    assert tags["og:title"] == "Ana &#34;Q&#34; Li" and tags["og:description"] == "CTO · Acme"
    assert tags["og:url"] == f"{base}/p/og-check" and tags["og:image"].startswith(f"{base}/p/og-check/og.png?v=")
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


def test_the_short_pages_allow_exactly_their_own_style(client):
    """404 and 429 (and the edge's 503, the same page) carry the stylesheet their CSP allows by hash."""
    answers = [
        pages.NOT_FOUND, pages.GONE, pages.too_many_requests(3), edge_main.UNAVAILABLE_PAGE,
        pages.page_answer(404, "No <such> thing", "Not here & not there."),
    ]
    for answer in answers:
        headers = dict(answer.headers)
        [style] = re.findall(rb"<style>(.*?)</style>", answer.body, re.S)
        assert base64.b64encode(hashlib.sha256(style).digest()) in headers[b"content-security-policy"]
        assert headers[b"content-length"] == str(len(answer.body)).encode()
    assert b"<h1>No &lt;such&gt; thing</h1>" in answers[-1].body and b"Not here &amp; not there." in answers[-1].body
    assert dict(answers[2].headers)[b"retry-after"] == b"3" and answers[2].body == pages.too_many_requests(9).body
    page = client.get("/p/nope-nope")
    assert page.content == pages.NOT_FOUND.body and page.headers["content-security-policy"] == pages.CSP


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


# --- the same cache at an edge, filled from its copy ------------------------------------------


def slug_lookups() -> tuple[float, float]:
    """The slug cache's hits and misses so far (what /metrics would say)."""
    tally.fold_all()
    return tuple(REGISTRY.get_sample_value(f"cache_{kind}_total", {"cache": "slug"}) or 0.0 for kind in ("hits", "misses"))


def test_an_edge_answers_from_its_copy_and_counts_as_the_primary_does(client, user, settings, monkeypatch):
    """EdgeCards is the primary's cache with another `load`: the copy (here the primary's
    own file) answers cards and retired slugs, cached; everything else asks the primary."""
    create_card(client, user["headers"], slug="edge-copy-card", title="On the copy")
    gone = create_card(client, user["headers"], slug="edge-copy-gone")
    assert client.delete(f"/v1/cards/{gone['cardId']}", headers=user["headers"]).status_code == 204
    copy = local_copy.EdgeCopy(settings)
    cards = copy.cards
    start = slug_lookups()

    def lookup(slug: str):
        return asyncio.run(cards.get(slug))

    def counted() -> tuple[float, float]:
        hits, misses = slug_lookups()
        return hits - start[0], misses - start[1]

    with pytest.raises(local_copy.AskPrimary):  # no copy yet
        lookup("edge-copy-card")
    assert counted() == (0, 1)
    copy.path = settings.database_path
    card = lookup("edge-copy-card")
    assert isinstance(card, Card) and card.title == "On the copy" and counted() == (0, 2)
    assert lookup("edge-copy-card") == card and cards.cached("edge-copy-card") == card and counted() == (2, 2)
    assert lookup("edge-copy-gone") == "gone" and lookup("edge-copy-gone") == "gone" and counted() == (3, 3)
    for _ in range(2):  # not in the copy: the primary may have it, so it is neither answered nor cached
        with pytest.raises(local_copy.AskPrimary):
            lookup("edge-copy-none")
    assert cards.cached("edge-copy-none") is NOT_CACHED and counted() == (3, 5)
    assert lookup("Not a slug") is None and counted() == (3, 5)

    cards.forget("edge-copy-card")
    copy.outdated_since = 1.0  # the copy is of another history than the primary's
    with pytest.raises(local_copy.AskPrimary):
        lookup("edge-copy-card")
    copy.outdated_since = None
    copy.path = settings.data_dir / "removed-meanwhile.db"
    with pytest.raises(local_copy.AskPrimary):
        lookup("edge-copy-card")
    copy.path = settings.database_path
    assert cards.cached("edge-copy-card") is NOT_CACHED and counted() == (3, 7)

    async def lookup_while_a_change_is_heard(slug: str):
        loop = asyncio.get_running_loop()
        read_card = local_copy.read_card

        def hear() -> None:  # as EdgeCopy.hear_changes does with an answer of the primary
            if slugs := copy.changes.hear([{"seq": 7, "slug": slug, "changedAt": "2026-01-01T00:00:00Z"}], 7):
                cards.forget(*slugs)

        def read_then_hear(path, name):
            found = read_card(path, name)
            loop.call_soon_threadsafe(hear)  # runs before the lookup takes what it read
            return found

        monkeypatch.setattr(local_copy, "read_card", read_then_hear)
        return await cards.get(slug)

    assert asyncio.run(lookup_while_a_change_is_heard("edge-copy-card")) == card  # read before the change
    assert cards.cached("edge-copy-card") is NOT_CACHED  # but not kept
    with pytest.raises(local_copy.AskPrimary):  # changed after the copy
        lookup("edge-copy-card")
    assert counted() == (3, 9)


@pytest.mark.parametrize("path", ["/c/..%2f..%2fetc", "/c/%2e%2e/v1/me", "/c//evil.example"])
def test_traversal_shaped_slugs_go_nowhere(client, path):
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 404
    assert "location" not in response.headers
