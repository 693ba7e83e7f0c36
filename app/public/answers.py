"""Public pages: the counted scan redirect, the card page, its vCard and its QR images.

These are what phones hit, so cards are looked up in an in-process cache (slug → card,
including "no such card": app.public.card_cache), and scans, views and saves (vCard
downloads) are counted in memory, with the source of the visit (counters.Source), and
written in one transaction per second by `Counters.run` (app.public.counters), never one write
per request. HEAD requests, crawlers and link-preview fetchers are answered but not
counted (app.public.bots). All public pages share one per-client-IP limit (app.public.scanner_limit),
higher than the API's; their HTML is in app.public.pages.

What the scan redirect and the QR images answer is decided here, once, by `redirect` and
the answer functions around it, through two front doors: app/public/fast_path.py asks
`answer_scan_now` / `answer_qr_now` from inside the HTTP server, which answer exact
GET/HEAD /c/{slug} and /q/{name} requests when the card and its image are in memory; the
Litestar handlers below call `answer_scan` / `answer_qr` for everything else (a card to
read, an image to draw, a trailing slash) and carry the OpenAPI documentation.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, NamedTuple

from litestar import Request, Response, route
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter
from prometheus_client import Counter, Histogram

from app import qr
from app.api.limits import network_of
from app.api.openapi import BINARY, TEXT, media_types
from app.api.problems import problems
from app.cards import vcard
from app.cards.cards import THUMBNAIL_SUFFIX, dynamic_drawing, image_hash, short_url
from app.cards.types import Card, ImageKind
from app.config import Settings
from app.db import Database
from app.leads import form as lead_form
from app.ops import tally
from app.proxies import client_of
from app.public import card_files
from app.public.bots import is_bot
from app.public.card_cache import NOT_CACHED, ChangeBell, Gone, PublicCards
from app.public.counters import COUNTRY_HEADER, Counters, DatabaseSink, Source, source_named
from app.public.countries import CLOUDFLARE_HEADER, Countries
from app.public.image_cache import ImageCache
from app.public.pages import NOT_FOUND, PAGE_HEADERS, Answer, card_page, not_found, too_many_requests
from app.public.scanner_limit import ScannerLimit

REDIRECTS = Counter("redirects", "Scan redirects answered", ["outcome"])
REDIRECT_LATENCY = Histogram(
    "redirect_latency_seconds",
    "Time to answer a scan redirect",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
# The hot path's metrics as tallies, folded in before each scrape (app/ops/tally.py).
REDIRECT_OUTCOMES = {
    outcome: tally.Counted(REDIRECTS.labels(outcome)) for outcome in ("counted", "not_counted", "not_found", "rate_limited")
}
REDIRECT_TIMES = tally.Timed(REDIRECT_LATENCY)


class Visit(NamedTuple):
    """What the public pages need to know about a request, whichever front door it came in by."""

    method: str
    client: str  # the address the scanner limit counts
    user_agent: str | None = None
    referer: str | None = None
    country: str | None = None  # see app/public/countries.py
    source: Source | None = None  # named by the query's `src`; None without one (see counters.source_in_query)

    @property
    def countable(self) -> bool:
        return self.method == "GET" and not is_bot(self.user_agent)

    @classmethod
    def of(cls, request: Request, settings: Settings, countries: Countries | None = None) -> Visit:
        """The visit of a Litestar request; its country only when `countries` is given (the
        counted public pages: the limits and the exchange form have no use for it)."""
        headers = request.headers
        peer = request.client.host if request.client else None
        client = client_address(
            settings, headers.get("fly-client-ip"), peer, headers.getall("x-forwarded-for", ()), headers.getall("forwarded", ()),
        )
        return cls(
            method=request.method,
            client=client,
            user_agent=headers.get("user-agent"),
            referer=headers.get("referer"),
            country=None if countries is None else countries.of(
                client, peer, headers.get(CLOUDFLARE_HEADER), headers.get(COUNTRY_HEADER)
            ),
            source=source_named(request.query_params.get("src")) if request.scope["query_string"] else None,
        )


def client_address(
    settings: Settings, fly_client_ip: str | None, peer: str | None,
    forwarded_for: Sequence[str] = (), forwarded: Sequence[str] = (),
) -> str:
    """Who the scanner limit counts, as limits.client_ip for the API (app/proxies.py):
    the connection's peer, or what a trusted proxy says; an IPv6 address as its /64."""
    client = client_of(settings, peer, fly_client_ip, forwarded_for, forwarded)
    return _network_of(client) if client else "unknown"


# Parsing an address costs more than the rest of the limit; a crowd has few of them.
network_of_peer = _network_of = functools.lru_cache(maxsize=65_536)(network_of)


# --- answers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Public:
    """What the public pages work with, in one object (not looked up in the app state per request)."""

    settings: Settings
    cards: PublicCards
    counters: Counters
    qr_cache: qr.QrCache
    limit: ScannerLimit
    images: ImageCache = field(default_factory=ImageCache)
    countries: Countries | None = None  # None: no country for any visit (built by make_state and the edge)


_REDIRECT_HEADERS = [(b"cache-control", b"no-store")]
_QR_HEADERS = {
    extension: [(b"content-type", qr.MEDIA_TYPES[extension].encode()), (b"cache-control", b"public, max-age=300")]
    for extension in ("png", "svg")
}


async def answer_scan(public: Public, slug: str, visit: Visit) -> Answer:
    """GET/HEAD /c/{slug}: count the scan and redirect to the card page."""
    started = time.perf_counter()
    if retry_after := public.limit.retry_after(visit.client):
        return scan_limited(retry_after)
    found = public.cards.cached(slug)
    if found is NOT_CACHED:
        found = await public.cards.get(slug)
    return redirect(public, found, visit, started)


def answer_scan_now(public: Public, slug: str, visit: Visit) -> Answer | None:
    """answer_scan when the card is in memory; None when it must be read from the database."""
    started = time.perf_counter()
    found = public.cards.cached(slug)
    if found is NOT_CACHED:
        return None
    if retry_after := public.limit.retry_after(visit.client):
        return scan_limited(retry_after)
    return redirect(public, found, visit, started)


def scan_limited(retry_after: int) -> Answer:
    REDIRECT_OUTCOMES["rate_limited"].n += 1
    return too_many_requests(retry_after)


def redirect(public: Public, found: Card | Gone | None, visit: Visit, started: float) -> Answer:
    """The scan of a looked-up card: counted, and a redirect to its page (or the 404/410 page).
    The redirect's latency is measured from `started`, when the answer was begun."""
    if not isinstance(found, Card):
        REDIRECT_OUTCOMES["not_found"].n += 1
        return not_found(found)
    source = visit.source
    if counted := visit.countable:
        public.counters.scan(found, visit.user_agent, visit.referer, visit.country, source or "qr")
    REDIRECT_OUTCOMES["counted" if counted else "not_counted"].n += 1
    REDIRECT_TIMES.add(time.perf_counter() - started)
    # The common scan (no query) looks its answer up by the slug alone, as before sources.
    return redirect_to_page(found.slug) if source is None else redirect_from(found.slug, source)


@functools.lru_cache(maxsize=10_000)
def redirect_to_page(slug: str) -> Answer:
    """The redirect of a scan without `src`: to the card page as a visit from the printed code."""
    return redirect_from(slug, "qr")


@functools.lru_cache(maxsize=1_000)
def redirect_from(slug: str, source: Source) -> Answer:
    """The redirect to the card page, carrying the scan's source on to the page (its view
    and the save it leads to count with that source, not as `link`)."""
    # A relative Location built from a validated slug: it can only lead to our own page.
    return Answer(302, [(b"location", page_path(slug, source).encode()), *_REDIRECT_HEADERS])


def page_path(slug: str, source: Source) -> str:
    """The card page's path for a visit from `source` (a plain link needs no src)."""
    return f"/p/{slug}" if source == "link" else f"/p/{slug}?src={source}"


async def answer_qr(public: Public, name: str, visit: Visit) -> Answer:
    """GET/HEAD /q/{slug}.png or .svg: the card's dynamic code, from the render cache."""
    if retry_after := public.limit.retry_after(visit.client):
        return too_many_requests(retry_after)
    slug, _, extension = name.partition(".")
    if extension not in _QR_HEADERS:
        return NOT_FOUND
    found = public.cards.cached(slug)
    if found is NOT_CACHED:
        found = await public.cards.get(slug)
    if not isinstance(found, Card):
        return not_found(found)
    payload, drawing = qr_of(public, found, extension)
    image = public.qr_cache.get(payload, drawing)
    if image is None:  # qr.cached_image, without a second lookup
        image = await asyncio.to_thread(qr.render_counted, payload, drawing, "dynamic")
        public.qr_cache.put(payload, drawing, image)
    return Answer(200, _QR_HEADERS[extension], image)


def image_answer(extension: str, image: bytes) -> Answer:
    """A cached image's answer, its head made once for the images a crowd is scanning (the
    same bytes object comes back from the QR cache: its hash is kept, a hit is an identity).
    At most IMAGE_ANSWERS images of at most 64 KiB are kept alive here: 4 MiB."""
    found = _image_answers.get((extension, image))
    if found is None:
        found = Answer(200, _QR_HEADERS[extension], image)
        if len(image) <= 64 * 1024:
            if len(_image_answers) >= IMAGE_ANSWERS:
                _image_answers.clear()
            _image_answers[(extension, image)] = found
    return found


IMAGE_ANSWERS = 64
_image_answers: dict[tuple[str, bytes], Answer] = {}


def answer_qr_now(public: Public, name: str, visit: Visit) -> Answer | None:
    """answer_qr when the card and its image are in memory; None when one must be read or drawn."""
    slug, _, extension = name.partition(".")
    found = public.cards.cached(slug)
    if found is NOT_CACHED:
        return None
    image = None
    if isinstance(found, Card) and extension in _QR_HEADERS:
        if (image := public.qr_cache.cached(*qr_of(public, found, extension))) is None:
            return None
    if retry_after := public.limit.retry_after(visit.client):
        return too_many_requests(retry_after)
    if extension not in _QR_HEADERS:
        return NOT_FOUND
    if not isinstance(found, Card):
        return not_found(found)
    return image_answer(extension, image)


async def answer_page(public: Public, name: str, visit: Visit, version: vcard.Version = 3) -> Answer:
    """GET/HEAD /p/{slug} (the card page, a view counted), /p/{slug}.vcf (its vCard, of `version`)
    or /p/{slug}.pkpass (its Apple Wallet pass)."""
    if retry_after := public.limit.retry_after(visit.client):
        return too_many_requests(retry_after)
    slug, dot, extension = name.partition(".")
    if dot and extension not in ("vcf", "pkpass"):
        return NOT_FOUND
    found = await public.cards.get(slug)
    if extension == "pkpass" and isinstance(found, Card):
        return await card_files.apple_pass_of(public, found)  # not counted: the page that offers it is
    if extension == "vcf" and isinstance(found, Card):
        await card_files.photo_of(public, found)  # the vCard carries it: in memory before the answer is made
    return card_page_of(public, found, extension, visit, version)


def answer_page_now(public: Public, name: str, visit: Visit) -> Answer | None:
    """answer_page when the card is in memory; None when it must be read from the database."""
    slug, dot, extension = name.partition(".")
    found = public.cards.cached(slug)
    if found is NOT_CACHED or extension == "pkpass":  # a pass may have to be built: answer_page
        return None
    if retry_after := public.limit.retry_after(visit.client):
        return too_many_requests(retry_after)
    if dot and extension != "vcf":
        return NOT_FOUND
    if extension == "vcf" and isinstance(found, Card) and found.photo_hash and public.images.cached(found.photo_hash, False) is None:
        return None  # its photo must be read first
    return card_page_of(public, found, extension, visit)


def card_page_of(public: Public, found: Card | Gone | None, extension: str, visit: Visit, version: vcard.Version = 3) -> Answer:
    if not isinstance(found, Card):
        return not_found(found)
    source = visit.source or "link"
    if extension == "vcf":
        if visit.countable:
            public.counters.save(found, visit.user_agent, visit.referer, visit.country, source)
        return card_files.vcard_of(public, found, version)
    if visit.countable:
        public.counters.view(found, visit.user_agent, visit.referer, visit.country, source)
    return page_of(found, public.settings, public.counters.seconds(), source)


_PAGE_ANSWER_HEADERS = [
    (b"content-type", b"text/html; charset=utf-8"), *[(k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()],
    (b"cache-control", b"no-cache"),
]


def page_of(card: Card, settings: Settings, now: float, source: Source = "link") -> Answer:
    """The card's page, drawn once for each state of the card the card cache holds (an edit
    makes a new Card object), each source (its Save link carries the source on, so the save
    counts with it) and each hour: the exchange form's token is issued per hour
    (app/leads/form.py), so every visitor within the hour gets the same bytes. At most
    PAGES_KEPT pages, the last drawn."""
    window = lead_form.window_start(now)
    key = card.slug if source == "link" else (card.slug, source)
    kept = _pages.get(key)
    if kept is not None and kept[0] is card and kept[1] == window:
        return kept[2]
    token = lead_form.issue_token(settings.jwt_secret, card.slug, window)
    vcard_href = f"/p/{card.slug}.vcf" if source == "link" else f"/p/{card.slug}.vcf?src={source}"
    html, csp = card_page(card, settings.public_base_url, token, vcard_href, wallets=(settings.apple_wallet, settings.google_wallet))
    headers = [(name, csp.encode() if name == b"content-security-policy" else value) for name, value in _PAGE_ANSWER_HEADERS]
    answer = Answer(200, headers, html.encode())
    if len(_pages) >= PAGES_KEPT:
        del _pages[next(iter(_pages))]
    _pages[key] = (card, window, answer)
    return answer


PAGES_KEPT = 256
_pages: dict[str | tuple[str, str], tuple[Card, int, Answer]] = {}


def image_name(file: str) -> tuple[ImageKind, str, bool] | None:
    """(kind, hash, thumbnail) of an image's file name, `{kind}-{hash}[-96].jpg`; None for any other name."""
    stem, dot, extension = file.partition(".")
    kind, _, rest = stem.partition("-")
    if not dot or extension != "jpg" or kind not in ("photo", "logo"):
        return None
    thumbnail = rest.endswith(THUMBNAIL_SUFFIX)
    return kind, rest.removesuffix(THUMBNAIL_SUFFIX), thumbnail  # type: ignore[return-value]


async def answer_image(public: Public, slug: str, file: str, visit: Visit) -> Answer:
    """GET/HEAD /p/{slug}/{kind}-{hash}[-96].jpg: the card's photo or logo, or its thumbnail,
    from memory after the first read. 404 for a hash that is not the card's image now. Not
    counted: the page that shows it is."""
    if retry_after := public.limit.retry_after(visit.client):
        return too_many_requests(retry_after)
    found = public.cards.cached(slug)
    if found is NOT_CACHED:
        found = await public.cards.get(slug)
    if not isinstance(found, Card):
        return not_found(found)
    if file == "og.png":
        return await card_files.og_image_of(public, found)
    if file == "google-wallet":
        return card_files.google_wallet_of(public, found)
    named = image_name(file)
    if named is None or image_hash(found, named[0]) != named[1]:
        return NOT_FOUND
    kind, content_hash, thumbnail = named
    if (answer := public.images.cached(content_hash, thumbnail)) is not None:
        return answer
    stored = await public.cards.load_image(found, kind, thumbnail)
    if stored is None or stored[0] != content_hash:  # changed since the card was cached
        return NOT_FOUND
    return public.images.put(content_hash, thumbnail, stored[1])


def qr_of(public: Public, card: Card, extension: str) -> tuple[str, qr.Drawing]:
    """The payload and drawing of a card's dynamic code as /q/{slug}.{extension} serves it."""
    drawing = dynamic_drawing(card)
    if extension == "svg":
        drawing = qr.Drawing(format="svg", size=drawing.size, ecc=drawing.ecc, dark=drawing.dark, light=drawing.light)
    return short_url(public.settings, card.slug), drawing


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
    public = request.app.state.public
    return (await answer_scan(public, slug, Visit.of(request, public.settings, public.countries))).response()


@route(
    "/p/{name:str}", http_method=["GET", "HEAD"], operation_id=operation_ids("cardPage"),
    summary="The card page, its vCard with .vcf, or its Apple Wallet pass with .pkpass (404 when not configured)",
    tags=["public"],
    operation_class=media_types(200, {"text/html": TEXT, "text/vcard": TEXT, "application/vnd.apple.pkpass": BINARY}),
    responses=MISSING,
)
async def page(
    request: Request,
    name: FromPath[str],
    v: Annotated[str | None, QueryParameter(description="with .vcf: 4 for a vCard 4.0 (RFC 6350); 3.0 otherwise")] = None,
) -> Response:
    public = request.app.state.public
    return (await answer_page(public, name, Visit.of(request, public.settings, public.countries), 4 if v == "4" else 3)).response()


@route(
    "/q/{name:str}", http_method=["GET", "HEAD"], operation_id=operation_ids("publicQr"),
    summary="The card's dynamic QR code, .png or .svg", tags=["public"],
    operation_class=media_types(200, {"image/png": BINARY, "image/svg+xml": TEXT}), responses=MISSING,
)
async def public_qr(request: Request, name: FromPath[str]) -> Response:
    public = request.app.state.public
    return (await answer_qr(public, name, Visit.of(request, public.settings, public.countries))).response()


@route(
    "/p/{slug:str}/{file:str}", http_method=["GET", "HEAD"], operation_id=operation_ids("cardImage"),
    summary="The card's photo or logo, photo-{hash}.jpg (512 px) or photo-{hash}-96.jpg (immutable), og.png (preview), "
    "or google-wallet (a 302 to Google Wallet's save link; 404 when not configured)",
    tags=["public"],
    operation_class=media_types(200, {"image/jpeg": BINARY, "image/png": BINARY}), responses={
        **MISSING, 302: ResponseSpec(None, description="google-wallet: to https://pay.google.com/gp/v/save/{jwt}"),
    },
)
async def card_image(request: Request, slug: FromPath[str], file: FromPath[str]) -> Response:
    public = request.app.state.public
    return (await answer_image(public, slug, file, Visit.of(request, public.settings, public.countries))).response()


handlers = [scan, page, public_qr, card_image]


def make_state(db: Database, settings: Settings) -> dict:
    # The primary's: counts go to its database (an edge builds its own, app/edge/main.py).
    limit = ScannerLimit(settings.scanner_rate_limit_per_minute)
    bell = ChangeBell()  # rung by every card change's commit; the internal port's long polls wait on it
    public = Public(
        settings, PublicCards(db, bell=bell), Counters(DatabaseSink(db), seconds=db.seconds), qr.QrCache(), limit,
        countries=Countries(settings),
    )
    # The other modules reach the parts they share by these names.
    return {
        "public": public, "public_cards": public.cards, "counters": public.counters, "qr_cache": public.qr_cache,
        "card_change_bell": bell,
    }
