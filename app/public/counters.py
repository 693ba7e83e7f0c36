"""Scans, views and saves counted in memory and written once a second (to the database on
the primary, to the outbox file at an edge: app/edge/outbox.py): the counters on the cards
table and the `scan_events` rows (second, device class, referrer host, a country only
from a trusted proxy header, and the visit's source; never the client IP), alike
requests of the same second folded into one row with their number of hits.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol
from urllib.parse import urlsplit

import aiosqlite
from litestar import Request
from prometheus_client import Counter, Histogram

from app.cards.types import Card
from app.config import Settings
from app.db import Database, Tx, fetch_all, fetch_one
from app.errors import Unavailable

# Logged as app.scans, the module these lines came from before the split, so log filters still match.
log = logging.getLogger("app.scans")

FLUSH_EVENTS = Histogram(
    "counter_flush_events", "Scan and view events written per counter flush", buckets=(1, 10, 100, 1000, 10_000, 100_000)
)
FLUSH_SECONDS = Histogram(
    "counter_flush_seconds", "Time to write one counter flush", buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
)
SCANS_BY_COUNTRY = Counter("scans_by_country", "Counted scans by country (behind a trusted proxy only)", ["country"])


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


# Where a visit came from (SPEC §8; the rule is in docs/api.md, "Sources"): the `src` of
# /c/{slug}?src=… and of the page it redirects to, /p/{slug}?src=…. Without a query a scan
# is `qr` (the printed code) and a page view or save is `link`; a src that is not one of
# these names is `link` too.
Source = Literal["qr", "nfc", "wallet", "signature", "share", "link"]
SOURCES: tuple[Source, ...] = ("qr", "nfc", "wallet", "signature", "share", "link")
_SOURCE_NAMES = {name: name for name in SOURCES}
_SOURCE_BYTES = {name.encode(): name for name in SOURCES}


def source_named(src: str | None) -> Source | None:
    """The source a `src` value names (None: no src at all, so the route's own default)."""
    return None if src is None else _SOURCE_NAMES.get(src, "link")


def source_in_query(query: bytes) -> Source | None:
    """The source named by the first `src` of a raw query string, as the fast path has it;
    None when it has no `src`. Not percent-decoded: no source name needs it."""
    for pair in query.split(b"&"):
        if pair[:4] == b"src=":
            return _SOURCE_BYTES.get(pair[4:], "link")
        if pair == b"src":
            return "link"
    return None


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


# --- the counters --------------------------------------------------------------------


# What a flush writes, the same whether the primary writes it or an edge ships it
# (app/edge/outbox.py): per card (its public card_id, the one id a card keeps in every
# copy and never hands to another card: the integer id of a deleted newest card is given
# to the next one), the count increments and the scan_events rows. What came later is at
# the end of each (saves, source), where a batch from an edge of the version before
# simply has nothing (app/edge/scan_batches.py).
CardCount = tuple[str, int, int, int]  # card_id, scans, views, saves
EventRow = tuple[str, str, str, str, "str | None", "str | None", int, "str | None"]
# card_id, kind, occurred_at, device_class, referrer_host, country, hits, source


class CountSink(Protocol):
    """Where a flush goes: the database on the primary, the outbox file at an edge."""

    async def write(self, counts: list[CardCount], events: list[EventRow]) -> None:
        """Keep the counts and events durably, or raise (the Counters keep them for the next flush)."""


class DatabaseSink:
    """The primary's flush: one transaction on the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def write(self, counts: list[CardCount], events: list[EventRow]) -> None:
        scanned = scanned_data(counts, events)  # worked out before taking the writer
        async with self.db.write() as tx:
            await write_counts(tx.conn, counts, events)
            await emit_scanned(tx, merge_scanned(scanned, await take_held_scans(tx)))


async def any_held_scans(db: Database) -> bool:
    """Whether edges' batches left card.scanned data to announce (held_scans), as after a restart."""
    async with db.read() as conn:
        return await fetch_one(conn, "SELECT 1 FROM held_scans LIMIT 1") is not None


class Counters:
    """Scans, views and saves counted in memory, and their events, written to `sink` in one piece per flush.

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

    def __init__(self, sink: CountSink, seconds: Callable[[], float] = time.time) -> None:
        self.sink = sink
        # The clock each event's second is read from, as Unix seconds (the primary's is
        # its Database's, which tests set).
        self.seconds = seconds
        self._pending: dict[str, list[int]] = {}  # card_id -> [scans, views, saves]
        # (unix second, card_id, kind, user agent, referer, country, source) -> hits;
        # classified at flush time (device class, referrer host), so a request only adds one.
        self._events: dict[tuple[int, str, str, str | None, str | None, str | None, str], int] = {}
        self._events_text = 0  # characters of user agent and referrer held in `_events`' keys
        self.dropped_events = 0
        self._held = False  # the sink holds something to write even without counts (announce_held)

    def scan(
        self, card: Card, user_agent: str | None, referer: str | None, country: str | None, source: Source = "qr",
    ) -> None:
        self._pending.setdefault(card.card_id, [0, 0, 0])[0] += 1
        self._event(card, "scan", user_agent, referer, country, source)
        if country:
            SCANS_BY_COUNTRY.labels(country).inc()

    def view(
        self, card: Card, user_agent: str | None, referer: str | None, country: str | None, source: Source = "link",
    ) -> None:
        self._pending.setdefault(card.card_id, [0, 0, 0])[1] += 1
        self._event(card, "view", user_agent, referer, country, source)

    def save(
        self, card: Card, user_agent: str | None, referer: str | None, country: str | None, source: Source = "link",
    ) -> None:
        """A download of the card's vCard (/p/{slug}.vcf)."""
        self._pending.setdefault(card.card_id, [0, 0, 0])[2] += 1
        self._event(card, "save", user_agent, referer, country, source)

    def _event(
        self, card: Card, kind: str, user_agent: str | None, referer: str | None, country: str | None, source: str,
    ) -> None:
        if referer is not None and len(referer) > MAX_REFERRER:
            referer = referer[:MAX_REFERRER]
        key = (int(self.seconds()), card.card_id, kind, user_agent, referer, country, source)
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

    def announce_held(self) -> None:
        """An edge's batch was held in held_scans (hold_scans): the next flush writes, and
        so announces it, even with no counts of its own."""
        self._held = True

    def pending(self, card_id: str) -> tuple[int, int, int]:
        """The scans, views and saves of a card (by its public card_id) not written yet. Raises
        TypeError for an integer id: counts were keyed by it once, and a caller still
        passing one would read no pending counts, silently."""
        if not isinstance(card_id, str):
            raise TypeError("Counters.pending takes the card's public card_id, not its integer id")
        scans, views, saves = self._pending.get(card_id, (0, 0, 0))
        return scans, views, saves

    async def flush(self) -> int:
        """Write what is pending to the sink; returns how many events were written. Raises
        what the sink raises (sqlite3.Error), keeping everything for the next flush."""
        if not self._pending and not self._events and not self._held:
            return 0
        held, self._held = self._held, False
        batch, self._pending = self._pending, {}
        events, self._events = self._events, {}
        events_text, self._events_text = self._events_text, 0
        started = time.perf_counter()
        try:
            # Each distinct user agent and referrer is worked out once (cached), entries
            # that come out alike (two agents of one device class) are one row, and a
            # flush of many distinct entries is worked through in slices, requests
            # answered between them.
            rows: collections.Counter[tuple] = collections.Counter()
            entries = list(events.items())
            for first in range(0, len(entries), FLUSH_SLICE):
                for (whole, card_id, kind, agent, referer, country, source), hits in entries[first:first + FLUSH_SLICE]:
                    rows[(card_id, kind, _second(whole), _device_class(agent), _referrer_host(referer), country, source)] += hits
                await asyncio.sleep(0)
            event_rows: list[EventRow] = [(*key[:6], hits, key[6]) for key, hits in rows.items()]
            await self.sink.write([(card_id, *counts) for card_id, counts in batch.items()], event_rows)
        except BaseException:
            # Put everything back so the next flush writes it.
            self._held = self._held or held
            for card_id, (scans, views, saves) in batch.items():
                counts = self._pending.setdefault(card_id, [0, 0, 0])
                counts[0] += scans
                counts[1] += views
                counts[2] += saves
            for key, hits in events.items():
                self._events[key] = self._events.get(key, 0) + hits
            self._events_text += events_text  # an over-count where keys met again: errs towards dropping
            raise
        elapsed = time.perf_counter() - started
        written = sum(events.values())
        FLUSH_EVENTS.observe(written)
        FLUSH_SECONDS.observe(elapsed)
        log.debug("counters flushed: %d events (%d rows), %d cards in %.1f ms", written, len(event_rows), len(batch), elapsed * 1000)
        return written

    async def run(self, interval: float = 1.0) -> None:
        """Flush every `interval` seconds until cancelled."""
        refused = False
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
            except Unavailable as exc:
                # A primary that lost its role refuses every write (app/ops/failover.py): said
                # once, not every second; the counts stay in memory, as for any failed flush.
                if not refused:
                    log.warning("counts kept in memory, not written: %s", exc)
                refused = True
            except Exception:
                log.exception("flushing counters failed; will retry")


FLUSH_SLICE = 250


async def write_counts(conn: aiosqlite.Connection, counts: Sequence[CardCount], events: Sequence[EventRow]) -> None:
    """Add a flush's counts and events inside the caller's transaction: the primary's own
    flush and a batch shipped by an edge (app/edge/scan_batches.py) both write through here.
    Cards deleted since (no such card_id) are skipped, their events with them. Raises sqlite3.Error."""
    await conn.executemany(
        "UPDATE cards SET scan_count = scan_count + ?, view_count = view_count + ?, save_count = save_count + ? WHERE card_id = ?",
        [(scans, views, saves, card_id) for card_id, scans, views, saves in counts],
    )
    # Many rows per statement; a large flush yields to the requests between slices.
    for first in range(0, len(events), FLUSH_SLICE):
        chunk = events[first:first + FLUSH_SLICE]
        await conn.execute(_insert_events(len(chunk)), [value for row in chunk for value in row])
        await asyncio.sleep(0)


_KIND_COUNT = {"scan": "scans", "view": "views", "save": "saves"}


def scanned_data(counts: Sequence[CardCount], events: Sequence[EventRow]) -> dict[str, dict]:
    """The `card.scanned` data of each card in a flush (SPEC §9), by card_id: its scans, views
    and saves, and the same by source, device class and country (from the scan_events rows:
    a dimension a row lacks, such as a country without a trusted proxy, is left out)."""
    data: dict[str, dict] = {
        card_id: {"cardId": card_id, "scans": scans, "views": views, "saves": saves,
                  "bySource": {}, "byDevice": {}, "byCountry": {}}
        for card_id, scans, views, saves in counts
    }
    for card_id, kind, _occurred, device, _referrer, country, hits, source in events:
        if (item := data.get(card_id)) is None:
            continue
        name = _KIND_COUNT[kind]
        for dimension, value in (("bySource", source), ("byDevice", device), ("byCountry", country)):
            if value is not None:
                tally = item[dimension].setdefault(value, {})
                tally[name] = tally.get(name, 0) + hits
    return data


def merge_scanned(data: dict[str, dict], more: dict[str, dict]) -> dict[str, dict]:
    """`data` with the `card.scanned` data of `more` added in, card by card (`scanned_data`'s shape)."""
    for card_id, item in more.items():
        if (mine := data.get(card_id)) is None:
            data[card_id] = item
            continue
        for name in ("scans", "views", "saves"):
            mine[name] += item[name]
        for dimension in ("bySource", "byDevice", "byCountry"):
            for value, tally in item[dimension].items():
                into = mine[dimension].setdefault(value, {})
                for name, hits in tally.items():
                    into[name] = into.get(name, 0) + hits
    return data


async def hold_scans(tx: Tx, data: dict[str, dict]) -> None:
    """Keep an edge batch's `card.scanned` data (`scanned_data`) in held_scans, merged per
    card with what waits there, for the primary's next flush to announce: a card gets at
    most one event a second however many batches reach it."""
    if not data:
        return
    held = await fetch_all(
        tx.conn, f"SELECT card_id, data FROM held_scans WHERE card_id IN ({', '.join('?' * len(data))})", list(data)
    )
    merge_scanned(data, {row["card_id"]: json.loads(row["data"]) for row in held})
    await tx.conn.executemany(
        "INSERT INTO held_scans (card_id, data) VALUES (?, ?) ON CONFLICT (card_id) DO UPDATE SET data = excluded.data",
        [(card_id, json.dumps(item)) for card_id, item in data.items()],
    )


async def take_held_scans(tx: Tx) -> dict[str, dict]:
    """What held_scans holds, emptied in `tx` (a flush's, which announces it)."""
    rows = await fetch_all(tx.conn, "DELETE FROM held_scans RETURNING card_id, data")
    return {row["card_id"]: json.loads(row["data"]) for row in rows}


async def emit_scanned(tx: Tx, data: dict[str, dict]) -> None:
    """One `card.scanned` event per card of a flush, in its transaction, the card's
    owner's. The scan path adds nothing: this runs once per flush (once a second), with
    the edges' batches of that second merged in (hold_scans), so a card has at most one
    a second. Cards deleted since (no such card_id) get none, as their counts are skipped."""
    ids = list(data)
    for first in range(0, len(ids), FLUSH_SLICE):
        chunk = ids[first:first + FLUSH_SLICE]
        rows = await fetch_all(
            tx.conn, f"SELECT card_id, user_id, slug FROM cards WHERE card_id IN ({', '.join('?' * len(chunk))})", chunk
        )
        for row in rows:
            data[row["card_id"]]["slug"] = row["slug"]
        await tx.emit_many("card.scanned", [(data[row["card_id"]], row["user_id"]) for row in rows])
        await asyncio.sleep(0)


@functools.lru_cache(maxsize=4)
def _insert_events(count: int) -> str:
    """INSERT of `count` events, each naming its card by card_id."""
    rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * count)
    return f"""INSERT INTO scan_events (card_id, kind, occurred_at, device_class, referrer_host, country, hits, source)
        SELECT cards.id, column2, column3, column4, column5, column6, column7, column8 FROM (VALUES {rows}) AS event
        JOIN cards ON cards.card_id = event.column1"""


_device_class = functools.lru_cache(maxsize=4096)(device_class)
_referrer_host = functools.lru_cache(maxsize=4096)(referrer_host)


@functools.lru_cache(maxsize=16)
def _second(whole: int) -> str:
    """The UTC second as stored in scan_events.occurred_at, worked out once a second."""
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
