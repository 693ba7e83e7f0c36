"""Public pages: the counted scan redirect, the card page, its vCard and its QR images.

These are what phones hit, so cards are looked up in an in-process cache (slug → card,
including "no such card"), and scans and views are counted in memory and written in one
transaction per second by `Counters.run`, never one write per request.
HEAD requests, crawlers and link-preview fetchers are answered but not counted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import logging
import re
import time
from typing import Literal
from urllib.parse import quote

from cachetools import LRUCache
from litestar.params import FromPath
from litestar import Request, Response, get, route
from litestar.enums import HttpMethod
from litestar.openapi import ResponseSpec
from prometheus_client import Counter, Histogram

from app import qr
from app.cards import Card, dynamic_drawing, get_card_by_slug, short_url, slug_is_retired
from app.config import Settings, SettingsDep
from app.db import Database
from app.errors import problems
from app.openapi import BINARY, TEXT, media_types

log = logging.getLogger("app.scans")

REDIRECTS = Counter("redirects", "Scan redirects answered", ["outcome"])
REDIRECT_LATENCY = Histogram(
    "redirect_latency_seconds",
    "Time to answer a scan redirect",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)

# Crawlers, link-preview fetchers and mail scanners: they fetch links nobody clicked.
# One list, used by every counter in the service.
BOT_PATTERN = re.compile(
    r"bot|crawl|spider|slurp|preview|facebookexternalhit|facebookcatalog|meta-externalagent|whatsapp|"
    r"slack|linkedin|twitter|telegram|discord|skype|embedly|quora link|pinterest|vkshare|w3c_validator|"
    r"redditbot|applebot|bingpreview|google-?(?:bot|read-aloud|inspectiontool|safety)|yahoo|duckduck|"
    r"headless|lighthouse|python-requests|go-http-client|curl/|wget|httpclient|okhttp|"
    r"barracuda|mimecast|proofpoint|ironport|safelinks|trendmicro|symantec|forcepoint|microsoft office",
    re.IGNORECASE,
)
SLUG_SHAPE = re.compile(r"^[a-z0-9-]{3,100}$")


def is_bot(user_agent: str | None) -> bool:
    """True for requests that should not count: no user agent, or a known automated one."""
    return not user_agent or BOT_PATTERN.search(user_agent) is not None


def countable(request: Request) -> bool:
    return request.method == HttpMethod.GET and not is_bot(request.headers.get("user-agent"))


# --- the card directory and the counters ---------------------------------------------

Gone = Literal["gone"]


class PublicCards:
    """Cards by slug for the public pages, cached; None for unknown slugs, "gone" for retired ones."""

    def __init__(self, db: Database, size: int = 10_000) -> None:
        self._db = db
        self._cards: LRUCache[str, Card | Gone | None] = LRUCache(maxsize=size)

    async def get(self, slug: str) -> Card | Gone | None:
        if not SLUG_SHAPE.match(slug):
            return None
        try:
            found = self._cards[slug]
            qr.CACHE_HITS.labels("slug").inc()
            return found
        except KeyError:
            qr.CACHE_MISSES.labels("slug").inc()
        async with self._db.read() as conn:
            found = await get_card_by_slug(conn, slug)
            if found is None and await slug_is_retired(conn, slug):
                found = "gone"
        self._cards[slug] = found
        return found

    def forget(self, *slugs: str) -> None:
        """Drop cached entries after a card is created, changed or deleted."""
        for slug in slugs:
            self._cards.pop(slug, None)


class Counters:
    """Scans and views counted in memory, written to the cards table in one transaction."""

    def __init__(self) -> None:
        self._pending: dict[int, list[int]] = {}

    def scan(self, card: Card) -> None:
        self._pending.setdefault(card.id, [0, 0])[0] += 1

    def view(self, card: Card) -> None:
        self._pending.setdefault(card.id, [0, 0])[1] += 1

    def pending(self, card_id: int) -> tuple[int, int]:
        scans, views = self._pending.get(card_id, (0, 0))
        return scans, views

    async def flush(self, db: Database) -> int:
        """Write what is pending; returns how many cards were updated. Raises sqlite3.Error."""
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        try:
            async with db.write() as conn:
                await conn.executemany(
                    "UPDATE cards SET scan_count = scan_count + ?, view_count = view_count + ? WHERE id = ?",
                    [(scans, views, card_id) for card_id, (scans, views) in batch.items()],
                )
        except BaseException:
            # Put the counts back so the next flush writes them.
            for card_id, (scans, views) in batch.items():
                counts = self._pending.setdefault(card_id, [0, 0])
                counts[0] += scans
                counts[1] += views
            raise
        return len(batch)

    async def run(self, db: Database, interval: float = 1.0) -> None:
        """Flush every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush(db)
            except Exception:
                log.exception("flushing counters failed; will retry")


# --- the card page -------------------------------------------------------------------

PAGE_STYLE = """
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,sans-serif;background:#f4f5f7;color:#1d2330}
main{max-width:28rem;margin:0 auto;padding:2rem 1.25rem}
.card{background:#fff;border-radius:1rem;padding:1.5rem;box-shadow:0 1px 4px rgba(0,0,0,.08)}
h1{margin:0;font-size:1.6rem;line-height:1.2;overflow-wrap:anywhere}.role{margin:.25rem 0 1.25rem;color:#5b6473}
ul{list-style:none;margin:0 0 1.5rem;padding:0}li{border-top:1px solid #eceef2}
li a{display:block;padding:.8rem 0;color:#1a56db;text-decoration:none;overflow-wrap:anywhere}
.save{display:block;text-align:center;background:#1a56db;color:#fff;padding:.9rem;border-radius:.6rem;
font-weight:600;text-decoration:none}
footer{margin-top:1rem;text-align:center;font-size:.8rem;color:#8a93a3}
""".strip()
_STYLE_HASH = base64.b64encode(hashlib.sha256(PAGE_STYLE.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def card_page(card: Card) -> str:
    e = html.escape
    role = ", ".join(part for part in (card.title, card.organization) if part)
    links = [f'<li><a href="mailto:{e(quote(card.email, safe="@+"))}">{e(card.email)}</a></li>']
    if card.phone:
        dial = "".join(ch for ch in card.phone if ch.isdigit() or ch == "+")
        links.append(f'<li><a href="tel:{e(dial)}">{e(card.phone)}</a></li>')
    if card.website:
        links.append(f'<li><a href="{e(card.website)}" rel="noopener noreferrer nofollow">{e(card.website)}</a></li>')
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex">
<title>{e(card.full_name)}</title><style>{PAGE_STYLE}</style></head>
<body><main><div class="card">
<h1>{e(card.full_name)}</h1>
<p class="role">{e(role)}</p>
<ul>{"".join(links)}</ul>
<a class="save" href="/p/{e(card.slug)}.vcf">Save contact</a>
</div><footer>Shared with QR Contact</footer></main></body></html>
"""


def message_page(status: int, title: str, text: str) -> Response[str]:
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title>'
        f"<style>{PAGE_STYLE}</style></head><body><main><div class=\"card\"><h1>{title}</h1>"
        f'<p class="role">{text}</p></div></main></body></html>'
    )
    return Response(body, status_code=status, media_type="text/html", headers=PAGE_HEADERS)


def not_found(found: Gone | None) -> Response[str]:
    if found == "gone":
        return message_page(410, "Card removed", "The owner has deleted this contact card.")
    return message_page(404, "No such card", "This code does not lead to a contact card.")


# --- handlers ------------------------------------------------------------------------


# People get pages, not problem documents: unknown and removed cards answer HTML.
MISSING = {
    **problems(400),
    404: ResponseSpec(str, description="No such card (an HTML page)", media_type="text/html", generate_examples=False),
    410: ResponseSpec(str, description="The card was deleted (an HTML page)", media_type="text/html", generate_examples=False),
}


def operation_ids(name: str):
    """One OpenAPI operation id per method for the GET+HEAD handlers (ids must be unique)."""
    return lambda handler, method, path: name if method == "GET" else f"{name}{method.title()}"


@route(
    "/c/{slug:str}", http_method=["GET", "HEAD"], operation_id=operation_ids("scan"),
    summary="Count a scan, go to the card page", tags=["public"],
    status_code=302, operation_class=media_types(302, {}), responses=MISSING,
)
async def scan(request: Request, slug: FromPath[str]) -> Response:
    started = time.perf_counter()
    state = request.app.state
    found = await state.public_cards.get(slug)
    if not isinstance(found, Card):
        REDIRECTS.labels("not_found").inc()
        return not_found(found)
    counted = countable(request)
    if counted:
        state.counters.scan(found)
    REDIRECTS.labels("counted" if counted else "not_counted").inc()
    REDIRECT_LATENCY.observe(time.perf_counter() - started)
    # A relative Location built from a validated slug: it can only lead to our own page.
    return Response(b"", status_code=302, headers={"Location": f"/p/{found.slug}", "Cache-Control": "no-store"})


@route(
    "/p/{name:str}", http_method=["GET", "HEAD"], operation_id=operation_ids("cardPage"),
    summary="The card page, or its vCard with .vcf", tags=["public"],
    operation_class=media_types(200, {"text/html": TEXT, "text/vcard": TEXT}), responses=MISSING,
)
async def page(request: Request, name: FromPath[str]) -> Response:
    slug, dot, extension = name.partition(".")
    if dot and extension != "vcf":
        return not_found(None)
    found = await request.app.state.public_cards.get(slug)
    if not isinstance(found, Card):
        return not_found(found)
    if extension == "vcf":
        return Response(
            found.vcard().encode(),
            media_type="text/vcard",
            headers={"Content-Disposition": f'attachment; filename="{found.slug}.vcf"', "Cache-Control": "no-cache"},
        )
    if countable(request):
        request.app.state.counters.view(found)
    return Response(card_page(found), media_type="text/html", headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})


@get(
    "/q/{name:str}", operation_id="publicQr", summary="The card's dynamic QR code, .png or .svg", tags=["public"],
    operation_class=media_types(200, {"image/png": BINARY, "image/svg+xml": TEXT}), responses=MISSING,
)
async def public_qr(request: Request, name: FromPath[str], settings: SettingsDep) -> Response:
    slug, _, extension = name.partition(".")
    if extension not in ("png", "svg"):
        return not_found(None)
    found = await request.app.state.public_cards.get(slug)
    if not isinstance(found, Card):
        return not_found(found)
    drawing = dynamic_drawing(found)
    if extension == "svg":
        drawing = qr.Drawing(format="svg", size=drawing.size, ecc=drawing.ecc)
    image = await qr.cached_image(request.app.state.qr_cache, short_url(settings, found.slug), drawing, "dynamic")
    return Response(image, media_type=qr.MEDIA_TYPES[extension], headers={"Cache-Control": "public, max-age=300"})


handlers = [scan, page, public_qr]


def make_state(db: Database) -> dict:
    return {"public_cards": PublicCards(db), "counters": Counters(), "qr_cache": qr.QrCache()}

