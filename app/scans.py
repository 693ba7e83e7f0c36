"""Public pages: the counted scan redirect, the card page, its vCard and its QR images.

These are what phones hit, so cards are looked up in an in-process cache (slug → card,
including "no such card"), and scans and views are counted in memory and written in one
transaction per second by `Counters.run`, never one write per request: the counters on
the cards table and one `scan_events` row per counted request (time, device class,
referrer host, and a country only from a trusted proxy header; never the client IP).
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
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote, urlsplit

from cachetools import LRUCache
from litestar.params import FromPath
from litestar import Request, Response, get, route
from litestar.enums import HttpMethod
from litestar.openapi import ResponseSpec
from prometheus_client import Counter, Histogram

from app import qr
from app.cards import Card, dynamic_drawing, get_card_by_slug, short_url, slug_is_retired
from app.config import Settings, SettingsDep
from app.db import Database, isoformat
from app.errors import problems
from app.openapi import BINARY, TEXT, media_types

log = logging.getLogger("app.scans")

REDIRECTS = Counter("redirects", "Scan redirects answered", ["outcome"])
FLUSH_EVENTS = Histogram(
    "counter_flush_events", "Scan and view events written per counter flush", buckets=(1, 10, 100, 1000, 10_000, 100_000)
)
FLUSH_SECONDS = Histogram(
    "counter_flush_seconds", "Time to write one counter flush", buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
)
SCANS_BY_COUNTRY = Counter("scans_by_country", "Counted scans by country (behind a trusted proxy only)", ["country"])
REDIRECT_LATENCY = Histogram(
    "redirect_latency_seconds",
    "Time to answer a scan redirect",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)

# Crawlers, link-preview fetchers, mail security scanners and HTTP libraries: they fetch
# links nobody clicked. One list, used by every counter in the service (scans, views, and
# the invitation funnel in app.sharing).
BOT_PATTERN = re.compile(
    r"bot|crawl|spider|slurp|preview|facebookexternalhit|facebookcatalog|meta-externalagent|whatsapp|"
    r"slack|linkedin|twitter|telegram|discord|skype|embedly|quora link|pinterest|vkshare|w3c_validator|"
    r"redditbot|applebot|bingpreview|google-?(?:bot|read-aloud|inspectiontool|safety)|yahoo|duckduck|"
    r"headless|lighthouse|python-requests|go-http-client|curl/|wget|httpclient|okhttp|"
    r"barracuda|mimecast|proofpoint|ironport|safelinks|trendmicro|symantec|forcepoint|microsoft office|"
    r"zscaler|sophos|fortiguard|messagelabs|mailscanner|urlscan|virustotal|pagerenderer|iframely|mastodon|"
    r"http\.rb|python-urllib|python-httpx|aiohttp|java/|node-fetch|axios/|libwww-perl",
    re.IGNORECASE,
)
SLUG_SHAPE = re.compile(r"^[a-z0-9-]{3,100}$")


def is_bot(user_agent: str | None) -> bool:
    """True for requests that should not count: no user agent, or a known automated one."""
    return not user_agent or BOT_PATTERN.search(user_agent) is not None


def countable(request: Request) -> bool:
    return request.method == HttpMethod.GET and not is_bot(request.headers.get("user-agent"))


# --- what a scan event records ---------------------------------------------------------

DeviceClass = Literal["mobile", "tablet", "desktop", "other"]
# Tablets first: Android tablets say "Android" without "Mobile", iPads say "iPad".
_TABLET = re.compile(r"ipad|tablet|kindle|silk/|playbook|android(?!.*mobi)", re.IGNORECASE)
_MOBILE = re.compile(r"mobi|iphone|ipod|android|windows phone|blackberry|opera mini", re.IGNORECASE)
_DESKTOP = re.compile(r"windows nt|macintosh|mac os x|x11|linux|cros", re.IGNORECASE)
# A DNS name: letters, digits, hyphens and dots, no label starting or ending with a hyphen.
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")

# Fly.io sends no country header, but its edge sets `Fly-Region` (clients cannot forge it
# through Fly's proxy), so the country is the country of the edge region that took the
# request: right for most visitors, approximate near borders. Unknown regions give none.
COUNTRY_HEADER = "fly-region"
FLY_REGION_COUNTRIES = {
    "ams": "NL", "arn": "SE", "atl": "US", "bog": "CO", "bom": "IN", "bos": "US", "cdg": "FR", "den": "US",
    "dfw": "US", "ewr": "US", "eze": "AR", "fra": "DE", "gdl": "MX", "gig": "BR", "gru": "BR", "hkg": "HK",
    "iad": "US", "jnb": "ZA", "lax": "US", "lhr": "GB", "mad": "ES", "mia": "US", "nrt": "JP", "ord": "US",
    "otp": "RO", "phx": "US", "qro": "MX", "scl": "CL", "sea": "US", "sin": "SG", "sjc": "US", "syd": "AU",
    "waw": "PL", "yul": "CA", "yyz": "CA",
}


def device_class(user_agent: str | None) -> DeviceClass:
    if not user_agent:
        return "other"
    if _TABLET.search(user_agent):
        return "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    if _DESKTOP.search(user_agent):
        return "desktop"
    return "other"


def referrer_host(referer: str | None) -> str | None:
    """The host of an http(s) Referer, lower case; None for anything else (paths and queries are never kept)."""
    if not referer:
        return None
    try:
        parts = urlsplit(referer[:2048])
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    host = host.rstrip(".")
    return host if _HOSTNAME.fullmatch(host) else None


def country_for(region: str | None, settings: Settings) -> str | None:
    """The country (ISO 3166 alpha-2) for a `Fly-Region` header value; None unless proxy headers are trusted."""
    if not settings.trust_proxy_headers or not region:
        return None
    return FLY_REGION_COUNTRIES.get(region.strip().lower())


def country_of(request: Request, settings: Settings) -> str | None:
    """The visitor's country from the trusted proxy header (COUNTRY_HEADER), or None."""
    return country_for(request.headers.get(COUNTRY_HEADER), settings)


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
    """Scans and views counted in memory, and their events, written in one transaction per flush."""

    # Past this many unwritten events (the database has been failing for a while), new
    # events are dropped; the counts themselves are always kept.
    MAX_PENDING_EVENTS = 200_000

    def __init__(self) -> None:
        self._pending: dict[int, list[int]] = {}
        # (unix time, card id, kind, user agent, referer, country): classified at flush
        # time, so the request path only appends a tuple.
        self._events: list[tuple[float, int, str, str | None, str | None, str | None]] = []
        self.dropped_events = 0

    def scan(self, card: Card, user_agent: str | None, referer: str | None, country: str | None) -> None:
        self._pending.setdefault(card.id, [0, 0])[0] += 1
        self._event(card, "scan", user_agent, referer, country)
        if country:
            SCANS_BY_COUNTRY.labels(country).inc()

    def view(self, card: Card, user_agent: str | None, referer: str | None, country: str | None) -> None:
        self._pending.setdefault(card.id, [0, 0])[1] += 1
        self._event(card, "view", user_agent, referer, country)

    def _event(self, card: Card, kind: str, user_agent: str | None, referer: str | None, country: str | None) -> None:
        if len(self._events) < self.MAX_PENDING_EVENTS:
            self._events.append((time.time(), card.id, kind, user_agent, referer, country))
        else:
            self.dropped_events += 1

    def pending(self, card_id: int) -> tuple[int, int]:
        scans, views = self._pending.get(card_id, (0, 0))
        return scans, views

    async def flush(self, db: Database) -> int:
        """Write what is pending; returns how many events were written. Raises sqlite3.Error."""
        if not self._pending and not self._events:
            return 0
        batch, self._pending = self._pending, {}
        events, self._events = self._events, []
        started = time.perf_counter()
        rows = [
            (card_id, kind, isoformat(datetime.fromtimestamp(at, UTC)), device_class(agent), referrer_host(referer), country, card_id)
            for at, card_id, kind, agent, referer, country in events
        ]
        try:
            async with db.write() as conn:
                await conn.executemany(
                    "UPDATE cards SET scan_count = scan_count + ?, view_count = view_count + ? WHERE id = ?",
                    [(scans, views, card_id) for card_id, (scans, views) in batch.items()],
                )
                # A card deleted since the request has no row to refer to: its events go with it.
                await conn.executemany(
                    """INSERT INTO scan_events (card_id, kind, occurred_at, device_class, referrer_host, country)
                    SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM cards WHERE id = ?)""",
                    rows,
                )
        except BaseException:
            # Put everything back so the next flush writes it.
            for card_id, (scans, views) in batch.items():
                counts = self._pending.setdefault(card_id, [0, 0])
                counts[0] += scans
                counts[1] += views
            self._events[:0] = events
            raise
        elapsed = time.perf_counter() - started
        FLUSH_EVENTS.observe(len(rows))
        FLUSH_SECONDS.observe(elapsed)
        log.debug("counters flushed: %d events, %d cards in %.1f ms", len(rows), len(batch), elapsed * 1000)
        return len(rows)

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
        headers = request.headers
        state.counters.scan(found, headers.get("user-agent"), headers.get("referer"), country_of(request, state.settings))
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
        headers = request.headers
        request.app.state.counters.view(
            found, headers.get("user-agent"), headers.get("referer"), country_of(request, request.app.state.settings)
        )
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

