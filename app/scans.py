"""Public pages: the counted scan redirect, the card page, its vCard and its QR images.

These are what phones hit, so cards are looked up in an in-process cache (slug → card,
including "no such card"), and scans and views are counted in memory and written in one
transaction per second by `Counters.run`, never one write per request: the counters on
the cards table and `scan_events` rows (second, device class, referrer host, and a
country only from a trusted proxy header; never the client IP), alike requests of the
same second folded into one row with their number of hits.
HEAD requests, crawlers and link-preview fetchers are answered but not counted.
All public pages share one per-client-IP limit (`ScannerLimit`), higher than the API's.

What the scan redirect and the QR images answer is decided here, once, by `redirect` and
the answer functions around it, through two front doors: app/scanner.py asks
`answer_scan_now` / `answer_qr_now` from inside the HTTP server, which answer exact
GET/HEAD /c/{slug} and /q/{name} requests when the card and its image are in memory; the
Litestar handlers below call `answer_scan` / `answer_qr` for everything else (a card to
read, an image to draw, a trailing slash) and carry the OpenAPI documentation.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import functools
import hashlib
import html
import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple
from urllib.parse import quote, urlsplit

import crawleruseragents
from cachetools import LRUCache
from litestar import Request, Response, route
from litestar.openapi import ResponseSpec
from litestar.params import FromPath
from prometheus_client import Counter, Histogram

from app import qr, tally
from app.cards import Card, dynamic_drawing, get_card_by_slug, short_url, slug_is_retired
from app.config import Settings
from app.db import Database
from app.errors import problems
from app.limits import network_of
from app.openapi import BINARY, TEXT, media_types
from app.proxies import client_of

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
# The hot path's metrics as tallies, folded in before each scrape (app/tally.py).
REDIRECT_OUTCOMES = {
    outcome: tally.Counted(REDIRECTS.labels(outcome)) for outcome in ("counted", "not_counted", "not_found", "rate_limited")
}
REDIRECT_TIMES = tally.Timed(REDIRECT_LATENCY)
SLUG_HITS, SLUG_MISSES = tally.Counted(qr.CACHE_HITS.labels("slug")), tally.Counted(qr.CACHE_MISSES.labels("slug"))

# --- who counts ----------------------------------------------------------------------

# Crawlers, link-preview fetchers, mail security scanners and HTTP libraries fetch links
# nobody clicked. One pattern, used by every counter in the service (scans, views, and the
# invitation funnel in app.sharing): the maintained list of the crawler-user-agents
# project, plus the fetchers it leaves out. Brand names alone are never in it: people
# open links in the LinkedIn, X, Telegram, Pinterest, Facebook and Instagram apps, whose
# in-app browsers name the app (`[LinkedInApp]`, `Telegram-Android/…`); only the
# fetchers (`LinkedInBot`, `Twitterbot`, `TelegramBot`, `Pinterestbot`,
# `facebookexternalhit`) are bots.
LOCAL_FETCHERS = (
    # Mail security scanners, which open every link of a message on delivery.
    "barracuda", "mimecast", "proofpoint", "urldefense", "ironport", "safelinks", "trendmicro", "symantec",
    "forcepoint", "zscaler", "sophos", "fortiguard", "messagelabs", "mailscanner", "urlscan", "virustotal",
    # Microsoft Office checks a link before Word or Outlook opens it ("ms-office", "Existence Discovery").
    "ms-office", "msoffice", "microsoft office",
    # Link previews and HTTP libraries the list leaves out.
    "vkshare", "quora link preview", "pagerenderer", "http.rb", "python-httpx", "node-fetch", "axios/", "java/",
    "lighthouse",
)  # fmt: skip
# Gmail and Yahoo Mail load a message's images through their proxies when the person
# opens it (not on delivery), so for an email's open pixel they are the person opening.
MAIL_IMAGE_PROXIES = re.compile(r"GoogleImageProxy|YahooMailProxy")
# Longer user agents are not a person's browser (real ones stay well under 512 characters):
# they count as bots without a search, which keeps the search and its cache bounded.
MAX_USER_AGENT = 1024


def _any_of(literals: list[str]) -> str:
    """A regex matching any of `literals`, as a trie (one branch per next character):
    Python's re tries the alternatives of a flat alternation one by one at every
    position, 20 to 40 times slower for the crawler list's 1,500 names."""
    trie: dict = {}
    for literal in literals:
        node = trie
        for ch in literal:
            node = node.setdefault(ch, {})
        node[""] = {}

    def branch(node: dict) -> str:
        if "" in node:  # a shorter name matched: a search need not look further
            return ""
        parts = [re.escape(ch) + branch(child) for ch, child in sorted(node.items())]
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
    return branch(trie)


def _bot_patterns() -> tuple[re.Pattern[str], tuple[re.Pattern[str], ...]]:
    """The crawler list and LOCAL_FETCHERS, for lower-cased user agents: one regex of the
    names, and the list's few real regexes, each searched on its own.

    Most of the list's patterns are plain names (escaped punctuation at most): they go
    into one trie. The others ([wW]get, ^curl, Foo[\\s\\S]*bar) are kept as they are but
    for their letters, lower-cased outside escapes (`\\S` is not `\\s`). Searched one by
    one, each keeps re's literal-prefix scan: 50–70 µs a new 230-character user agent on
    this shared 2-core machine, where one alternation of everything took 170 µs and one
    with an IGNORECASE group 360 µs (the old hand-made pattern: about 20 µs).
    """
    escaped = re.compile(r"\\([^A-Za-z0-9])")  # \/ \. \- \( …: a punctuation mark as itself
    names, regexes = list(LOCAL_FETCHERS), []
    for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA:
        pattern = entry["pattern"]
        if re.search(r"[\\^$.|?*+()\[\]{}]", escaped.sub("", pattern)):
            lowered = re.sub(r"\\.|[^\\]+", lambda part: part[0] if part[0][0] == "\\" else part[0].lower(), pattern)
            regexes.append(re.compile(lowered))
        else:
            names.append(escaped.sub(r"\1", pattern).lower())
    return re.compile(_any_of(names)), tuple(regexes)


BOT_NAMES, BOT_REGEXES = _bot_patterns()
SLUG_SHAPE = re.compile(r"^[a-z0-9-]{3,100}$")


def is_bot(user_agent: str | None) -> bool:
    """True for requests that should not count: no user agent, a very long one, or a known automated one."""
    if not user_agent or len(user_agent) > MAX_USER_AGENT:
        return True
    return _known_bot(user_agent)


# Cached: a crowd of phones sends a few dozen distinct user agents, and the search is the
# most expensive step of a scan. At most 4,096 agents of at most MAX_USER_AGENT
# characters: about 5 MB at worst, whatever clients send.
@functools.lru_cache(maxsize=4096)
def _known_bot(user_agent: str) -> bool:
    lower = user_agent.lower()
    return BOT_NAMES.search(lower) is not None or any(regex.search(lower) for regex in BOT_REGEXES)


def countable(request: Request) -> bool:
    """Whether a request counts (scans, views, the invitation funnel): a GET from no known bot."""
    return request.method == "GET" and not is_bot(request.headers.get("user-agent"))


def countable_open(request: Request) -> bool:
    """Whether a request for an email's open pixel counts: as `countable`, and also from
    a webmail's image proxy (MAIL_IMAGE_PROXIES), which fetches it for the person opening."""
    if request.method != "GET":
        return False
    agent = request.headers.get("user-agent")
    if not is_bot(agent):
        return True
    return bool(agent) and len(agent) <= MAX_USER_AGENT and MAIL_IMAGE_PROXIES.search(agent) is not None


class Visit(NamedTuple):
    """What the public pages need to know about a request, whichever front door it came in by."""

    method: str
    client: str  # the address the scanner limit counts
    user_agent: str | None = None
    referer: str | None = None
    country: str | None = None  # only from a trusted proxy header, see country_for

    @property
    def countable(self) -> bool:
        return self.method == "GET" and not is_bot(self.user_agent)

    @classmethod
    def of(cls, request: Request, settings: Settings) -> Visit:
        headers = request.headers
        peer = request.client.host if request.client else None
        return cls(
            method=request.method,
            client=client_address(
                settings, headers.get("fly-client-ip"), peer,
                headers.getall("x-forwarded-for", ()), headers.getall("forwarded", ()),
            ),
            user_agent=headers.get("user-agent"),
            referer=headers.get("referer"),
            country=country_for(headers.get(COUNTRY_HEADER), settings),
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
_network_of = functools.lru_cache(maxsize=65_536)(network_of)


class ScannerLimit:
    """At most `per_minute` requests per client on the public pages: a token bucket per
    client that holds `per_minute` tokens and refills at `per_minute` a minute.

    Litestar's rate-limit middleware keeps each client's history in a store and
    serializes it on every request, which would cost more than the whole redirect; a
    bucket is two floats in a dict. Buckets that would be full again are dropped once a
    minute, so memory follows the clients of the last minute.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # client -> [tokens, last update]
        self._pruned = clock()

    def __len__(self) -> int:
        return len(self._buckets)

    def retry_after(self, client: str) -> int:
        """0 when the request may go ahead (and take a token), else the seconds until it may."""
        now = self._clock()
        bucket = self._buckets.get(client)
        if bucket is None:
            if now - self._pruned > 60:
                self._prune(now)
            self._buckets[client] = [self.capacity - 1, now]
            return 0
        tokens = min(self.capacity, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1:
            bucket[0] = tokens - 1
            return 0
        bucket[0] = tokens
        return max(1, math.ceil((1 - tokens) / self.rate))

    def _prune(self, now: float) -> None:
        full_after = self.capacity / self.rate
        self._buckets = {c: b for c, b in self._buckets.items() if now - b[1] < full_after}
        self._pruned = now


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


# A referrer's host is all that is kept, and no URL with a real host needs more.
MAX_REFERRER = 2048


def referrer_host(referer: str | None) -> str | None:
    """The host of an http(s) Referer, lower case; None for anything else (paths and queries are never kept)."""
    if not referer:
        return None
    try:
        parts = urlsplit(referer[:MAX_REFERRER])
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


class NotCached:
    """Not in the cache (None is a cached answer: no such card)."""


NOT_CACHED = NotCached()


class PublicCards:
    """Cards by slug for the public pages, cached; None for unknown slugs, "gone" for retired ones.

    Every write to a card calls `forget` after its commit. A lookup that read the
    database before such a commit must not put what it read in the cache afterwards, or
    a deleted or changed card would be served from the cache for good: `forget` moves
    `_writes` on, and a lookup stores its row only if no write ended while it read.
    (One counter for all slugs, not one per slug: it costs nothing to keep, and a lookup
    that loses its store to another card's write only reads again next time.)
    """

    def __init__(self, db: Database, size: int = 10_000) -> None:
        self._db = db
        self._cards: LRUCache[str, Card | Gone | None] = LRUCache(maxsize=size)
        self._writes = 0  # writes that ended (called forget) so far

    def cached(self, slug: str) -> Card | Gone | None | NotCached:
        """The cached entry, or NOT_CACHED: lets a hit be answered without a coroutine."""
        found = self._cards.get(slug, NOT_CACHED)
        if found is not NOT_CACHED:
            SLUG_HITS.n += 1
        return found

    async def get(self, slug: str) -> Card | Gone | None:
        if not SLUG_SHAPE.match(slug):
            return None
        try:
            found = self._cards[slug]
            SLUG_HITS.n += 1
            return found
        except KeyError:
            SLUG_MISSES.n += 1
        writes = self._writes
        async with self._db.read() as conn:
            found = await get_card_by_slug(conn, slug)
            if found is None and await slug_is_retired(conn, slug):
                found = "gone"
        if self._writes == writes:
            self._cards[slug] = found
        return found

    def forget(self, *slugs: str) -> None:
        """Drop cached entries after a card is created, changed or deleted: call it once the
        write has committed (a lookup under way then will not cache what it read)."""
        self._writes += 1
        for slug in slugs:
            self._cards.pop(slug, None)


class Counters:
    """Scans and views counted in memory, and their events, written in one transaction per flush.

    Events are counted, not listed: requests alike to the second (card, kind, user agent,
    referrer, country) share one entry holding their number, so a crowd's tens of
    thousands of scans a second are a handful of entries, and a flush has that handful to
    classify and write rather than one tuple per request.
    """

    # Past this many distinct unwritten events (the database has been failing for a
    # while), or this much header text held in their keys, new ones are dropped; the
    # counts themselves are always kept. A counted request's user agent is at most
    # MAX_USER_AGENT characters (longer ones are bots) and its referrer is cut to
    # MAX_REFERRER, so distinct hostile headers cannot hold more than MAX_PENDING_TEXT.
    MAX_PENDING_EVENTS = 200_000
    MAX_PENDING_TEXT = 32 * 1024 * 1024

    def __init__(self) -> None:
        self._pending: dict[int, list[int]] = {}
        # (unix second, card id, kind, user agent, referer, country) -> hits; classified
        # at flush time (device class, referrer host), so a request only adds one.
        self._events: dict[tuple[int, int, str, str | None, str | None, str | None], int] = {}
        self._events_text = 0  # characters of user agent and referrer held in `_events`' keys
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
        if referer is not None and len(referer) > MAX_REFERRER:
            referer = referer[:MAX_REFERRER]
        key = (int(time.time()), card.id, kind, user_agent, referer, country)
        events = self._events
        if (hits := events.get(key)) is not None:
            events[key] = hits + 1
            return
        text = len(user_agent or "") + len(referer or "")
        if len(events) < self.MAX_PENDING_EVENTS and self._events_text + text <= self.MAX_PENDING_TEXT:
            events[key] = 1
            self._events_text += text
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
        events, self._events = self._events, {}
        events_text, self._events_text = self._events_text, 0
        started = time.perf_counter()
        try:
            async with db.write() as conn:
                await conn.executemany(
                    "UPDATE cards SET scan_count = scan_count + ?, view_count = view_count + ? WHERE id = ?",
                    [(scans, views, card_id) for card_id, (scans, views) in batch.items()],
                )
                # Each distinct user agent and referrer is worked out once (cached), entries
                # that come out alike (two agents of one device class) are one row, and a
                # flush of many distinct entries is worked through in slices, requests
                # answered between them (one transaction still).
                rows: collections.Counter[tuple] = collections.Counter()
                entries = list(events.items())
                for first in range(0, len(entries), FLUSH_SLICE):
                    for (whole, card_id, kind, agent, referer, country), hits in entries[first:first + FLUSH_SLICE]:
                        rows[(card_id, kind, _second(whole), _device_class(agent), _referrer_host(referer), country)] += hits
                    await asyncio.sleep(0)
                rows_list = [(*key, hits) for key, hits in rows.items()]
                for first in range(0, len(rows_list), FLUSH_SLICE):
                    chunk = rows_list[first:first + FLUSH_SLICE]
                    await conn.execute(_insert_events(len(chunk)), [value for row in chunk for value in row])
        except BaseException:
            # Put everything back so the next flush writes it.
            for card_id, (scans, views) in batch.items():
                counts = self._pending.setdefault(card_id, [0, 0])
                counts[0] += scans
                counts[1] += views
            for key, hits in events.items():
                self._events[key] = self._events.get(key, 0) + hits
            self._events_text += events_text  # an over-count where keys met again: errs towards dropping
            raise
        elapsed = time.perf_counter() - started
        written = sum(events.values())
        FLUSH_EVENTS.observe(written)
        FLUSH_SECONDS.observe(elapsed)
        log.debug("counters flushed: %d events (%d rows), %d cards in %.1f ms", written, len(rows_list), len(batch), elapsed * 1000)
        return written

    async def run(self, db: Database, interval: float = 1.0) -> None:
        """Flush every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush(db)
            except Exception:
                log.exception("flushing counters failed; will retry")


FLUSH_SLICE = 250


@functools.lru_cache(maxsize=4)
def _insert_events(count: int) -> str:
    """INSERT of `count` events; a card deleted since the request has no row to refer to,
    so its events go with it."""
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * count)
    return f"""INSERT INTO scan_events (card_id, kind, occurred_at, device_class, referrer_host, country, hits)
        SELECT column1, column2, column3, column4, column5, column6, column7 FROM (VALUES {rows}) AS event
        WHERE EXISTS (SELECT 1 FROM cards WHERE id = event.column1)"""


_device_class = functools.lru_cache(maxsize=4096)(device_class)
_referrer_host = functools.lru_cache(maxsize=4096)(referrer_host)


@functools.lru_cache(maxsize=16)
def _second(whole: int) -> str:
    """The UTC second as stored in scan_events.occurred_at, worked out once a second."""
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


class Answer:
    """A public page's answer as the ASGI server takes it: status, raw headers, body."""

    __slots__ = ("status", "headers", "head", "body")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status = status
        self.headers = [*headers, (b"content-length", str(len(body)).encode())]
        self.head = b"".join([name + b": " + value + b"\r\n" for name, value in self.headers])  # as HTTP/1.1 writes them
        self.body = body

    def response(self) -> Response[bytes]:
        """The same answer for a Litestar handler (which sets content-length itself)."""
        headers = {k.decode(): v.decode() for k, v in self.headers if k not in (b"content-type", b"content-length")}
        media_type = next((v.decode() for k, v in self.headers if k == b"content-type"), None)
        if media_type is not None:
            media_type = media_type.removesuffix("; charset=utf-8")  # Litestar adds it to text types
        return Response(self.body, status_code=self.status, headers=headers, media_type=media_type)


_PAGE_HEADERS = [(b"content-type", b"text/html; charset=utf-8")] + [
    (name.lower().encode(), value.encode()) for name, value in PAGE_HEADERS.items()
]


def page_answer(status: int, title: str, text: str, *headers: tuple[bytes, bytes]) -> Answer:
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title>'
        f"<style>{PAGE_STYLE}</style></head><body><main><div class=\"card\"><h1>{title}</h1>"
        f'<p class="role">{text}</p></div></main></body></html>'
    )
    return Answer(status, [*_PAGE_HEADERS, *headers], body.encode())


def message_page(status: int, title: str, text: str) -> Response[bytes]:
    """A short HTML page for people (not a problem document), as a Litestar response."""
    return page_answer(status, title, text).response()


NOT_FOUND = page_answer(404, "No such card", "This code does not lead to a contact card.")
GONE = page_answer(410, "Card removed", "The owner has deleted this contact card.")


def not_found(found: Gone | None) -> Answer:
    return GONE if found == "gone" else NOT_FOUND


def too_many_requests(retry_after: int) -> Answer:
    return page_answer(
        429, "Too many requests", "Please wait a moment and try again.", (b"retry-after", str(retry_after).encode())
    )


# --- answers -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Public:
    """What the public pages work with, in one object (not looked up in the app state per request)."""

    settings: Settings
    cards: PublicCards
    counters: Counters
    qr_cache: qr.QrCache
    limit: ScannerLimit


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
    if counted := visit.countable:
        public.counters.scan(found, visit.user_agent, visit.referer, visit.country)
    REDIRECT_OUTCOMES["counted" if counted else "not_counted"].n += 1
    REDIRECT_TIMES.add(time.perf_counter() - started)
    return redirect_to_page(found.slug)


@functools.lru_cache(maxsize=10_000)
def redirect_to_page(slug: str) -> Answer:
    # A relative Location built from a validated slug: it can only lead to our own page.
    return Answer(302, [(b"location", b"/p/" + slug.encode()), *_REDIRECT_HEADERS])


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
    return Answer(200, _QR_HEADERS[extension], image)


def qr_of(public: Public, card: Card, extension: str) -> tuple[str, qr.Drawing]:
    """The payload and drawing of a card's dynamic code as /q/{slug}.{extension} serves it."""
    drawing = dynamic_drawing(card)
    if extension == "svg":
        drawing = qr.Drawing(format="svg", size=drawing.size, ecc=drawing.ecc)
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
    return (await answer_scan(public, slug, Visit.of(request, public.settings))).response()


@route(
    "/p/{name:str}", http_method=["GET", "HEAD"], operation_id=operation_ids("cardPage"),
    summary="The card page, or its vCard with .vcf", tags=["public"],
    operation_class=media_types(200, {"text/html": TEXT, "text/vcard": TEXT}), responses=MISSING,
)
async def page(request: Request, name: FromPath[str]) -> Response:
    public = request.app.state.public
    visit = Visit.of(request, public.settings)
    if retry_after := public.limit.retry_after(visit.client):
        return too_many_requests(retry_after).response()
    slug, dot, extension = name.partition(".")
    if dot and extension != "vcf":
        return NOT_FOUND.response()
    found = await public.cards.get(slug)
    if not isinstance(found, Card):
        return not_found(found).response()
    if extension == "vcf":
        return Response(
            found.vcard().encode(),
            media_type="text/vcard",
            headers={"Content-Disposition": f'attachment; filename="{found.slug}.vcf"', "Cache-Control": "no-cache"},
        )
    if visit.countable:
        public.counters.view(found, visit.user_agent, visit.referer, visit.country)
    return Response(card_page(found), media_type="text/html", headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})


@route(
    "/q/{name:str}", http_method=["GET", "HEAD"], operation_id=operation_ids("publicQr"),
    summary="The card's dynamic QR code, .png or .svg", tags=["public"],
    operation_class=media_types(200, {"image/png": BINARY, "image/svg+xml": TEXT}), responses=MISSING,
)
async def public_qr(request: Request, name: FromPath[str]) -> Response:
    public = request.app.state.public
    return (await answer_qr(public, name, Visit.of(request, public.settings))).response()


handlers = [scan, page, public_qr]


def make_state(db: Database, settings: Settings) -> dict:
    public = Public(settings, PublicCards(db), Counters(), qr.QrCache(), ScannerLimit(settings.scanner_rate_limit_per_minute))
    # The other modules reach the parts they share by these names.
    return {"public": public, "public_cards": public.cards, "counters": public.counters, "qr_cache": public.qr_cache}
