"""Saves and sources (SPEC §8): a `.vcf` download counted as a save (never a bot's, never a
HEAD), `saveCount` on the card, and the source each scan, view and save is counted with,
through both front doors (the fast path in the HTTP server, and Litestar's handlers)."""

from __future__ import annotations

import re

import pytest

from app.public.counters import source_in_query, source_named
from tests.support.app import PHONE_UA, create_card, flush_counters
from tests.support.db import query
from tests.support.sharing import share, token_of

BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.parametrize(
    ("query_string", "source"),
    [
        (b"src=qr", "qr"), (b"src=nfc", "nfc"), (b"src=wallet", "wallet"), (b"src=signature", "signature"),
        (b"src=share", "share"), (b"src=link", "link"),
        (b"src=bogus", "link"), (b"src=", "link"), (b"src", "link"), (b"src=NFC", "link"), (b"src=nf%63", "link"),
        (b"utm_source=x&src=nfc", "nfc"), (b"src=wallet&src=nfc", "wallet"),
        (b"utm_source=x", None), (b"source=nfc", None), (b"xsrc=nfc", None),
    ],
)
def test_src_names_a_source_in_both_doors(query_string, source):
    assert source_in_query(query_string) == source
    value = next((part.partition(b"=")[2].decode() for part in query_string.split(b"&") if part.split(b"=")[0] == b"src"), None)
    assert source_named(value) == source


def visit_by_fast_path(client, url: str, method: str = "GET", agent: str = PHONE_UA) -> tuple[int, dict[str, str], bytes]:
    """The request as the HTTP server's fast path answers it (the card cached already)."""
    raw = client.app.state.fast_path.answer(method.encode(), url.encode(), [(b"user-agent", agent.encode())], ("127.0.0.1", 5000), [])
    assert raw is not None, f"{url} was left to Litestar"
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    return int(status_line.split()[1]), dict(line.split(": ", 1) for line in lines), body


def visit_by_litestar(client, url: str, method: str = "GET", agent: str = PHONE_UA) -> tuple[int, dict[str, str], bytes]:
    response = client.request(method, url, headers={"User-Agent": agent}, follow_redirects=False)
    return response.status_code, dict(response.headers), response.content


DOORS = {"fast path": visit_by_fast_path, "litestar": visit_by_litestar}


def counted(settings, slug: str) -> list[tuple]:
    return query(settings, """SELECT kind, source, sum(hits) FROM scan_events JOIN cards ON cards.id = scan_events.card_id
        WHERE slug = ? GROUP BY 1, 2 ORDER BY 1, 2""", (slug,))


@pytest.mark.parametrize("door", DOORS)
@pytest.mark.parametrize(
    ("scan_query", "source", "page"),
    [
        ("", "qr", "?src=qr"),  # the printed code
        ("?src=qr", "qr", "?src=qr"),
        ("?src=nfc", "nfc", "?src=nfc"),
        ("?src=wallet", "wallet", "?src=wallet"),
        ("?src=signature", "signature", "?src=signature"),
        ("?src=share", "share", "?src=share"),
        ("?src=somewhere", "link", ""),  # unknown: link, and the page needs no src for it
        ("?utm_campaign=x", "qr", "?src=qr"),  # a query without src changes nothing
    ],
)
def test_a_visit_counts_its_scan_view_and_save_with_its_source(client, user, settings, door, scan_query, source, page):
    visit = DOORS[door]
    card = create_card(client, user["headers"])
    slug = card["slug"]
    client.blocking_portal.call(client.app.state.public_cards.get, slug)  # cached, as after a first scan
    status, headers, _ = visit(client, f"/c/{slug}{scan_query}")
    assert (status, headers["location"]) == (302, f"/p/{slug}{page}")
    status, _, body = visit(client, headers["location"])
    assert status == 200
    save = re.search(r'<a class="action primary" href="([^"]+)"', body.decode()).group(1)
    assert save == f"/p/{slug}.vcf{page}"  # the page hands its source on to the save
    status, headers, body = visit(client, save)
    assert status == 200 and body.startswith(b"BEGIN:VCARD")
    flush_counters(client)
    assert counted(settings, slug) == [("save", source, 1), ("scan", source, 1), ("view", source, 1)]
    api = client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json()
    assert (api["scanCount"], api["viewCount"], api["saveCount"]) == (1, 1, 1)


@pytest.mark.parametrize("door", DOORS)
def test_a_plain_link_to_the_page_is_link_and_only_a_real_download_is_a_save(client, user, settings, door):
    visit = DOORS[door]
    card = create_card(client, user["headers"])
    slug = card["slug"]
    client.blocking_portal.call(client.app.state.public_cards.get, slug)
    assert visit(client, f"/p/{slug}")[0] == 200
    assert visit(client, f"/p/{slug}.vcf")[0] == 200
    assert visit(client, f"/p/{slug}.vcf?src=wallet")[0] == 200
    # Answered, never counted: a HEAD, a bot's download, a bot's scan.
    assert visit(client, f"/p/{slug}.vcf", method="HEAD")[0] == 200
    assert visit(client, f"/p/{slug}.vcf", agent=BOT)[0] == 200
    assert visit(client, f"/c/{slug}?src=nfc", agent=BOT)[0] == 302
    # Counted before the flush too: the API adds what is still in memory.
    api = client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json()
    assert (api["scanCount"], api["viewCount"], api["saveCount"]) == (0, 1, 2)
    flush_counters(client)
    assert counted(settings, slug) == [("save", "link", 1), ("save", "wallet", 1), ("view", "link", 1)]
    assert query(settings, "SELECT scan_count, view_count, save_count FROM cards WHERE slug = ?", (slug,)) == [(0, 1, 2)]
    listed = client.get("/v1/cards", headers=user["headers"]).json()["items"]
    assert [c["saveCount"] for c in listed if c["slug"] == slug] == [2]


def test_an_invitation_link_leads_to_the_page_as_share(client, user, settings):
    card = create_card(client, user["headers"])
    answer = share(client, user, card, {"channel": "whatsapp", "to": "+44 7700 900123"})
    assert answer.status_code == 202, answer.text
    token = token_of(answer.text)
    followed = client.get(f"/i/{token}", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    assert (followed.status_code, followed.headers["location"]) == (302, f"/p/{card['slug']}?src=share")
    client.get(followed.headers["location"], headers={"User-Agent": PHONE_UA})
    client.get(f"/p/{card['slug']}.vcf?src=share", headers={"User-Agent": PHONE_UA})
    flush_counters(client)
    assert counted(settings, card["slug"]) == [("save", "share", 1), ("view", "share", 1)]
    report = client.get(f"/v1/cards/{card['cardId']}/stats", headers=user["headers"]).json()
    assert report["totals"] == {"scans": 0, "views": 1, "saves": 1}
    assert [s for s in report["sources"] if s["name"] == "share"] == [{"name": "share", "scans": 0, "views": 1, "saves": 1}]
