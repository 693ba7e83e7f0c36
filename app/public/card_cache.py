"""The public pages' card directory: cards by slug, cached in memory, with "no such card"
and "gone" (a retired slug) cached too. Every write to a card forgets its slug after
the commit (the operations in app.cards.cards, app.accounts.users and app.accounts.team), which
also rings the primary's card change bell: the edges' long polls hear of it at once.
"""

from __future__ import annotations

import asyncio
import re
from typing import Literal

import msgspec
from cachetools import LRUCache
from prometheus_client import Gauge

from app import qr
from app.brand import store as brand_store
from app.brand.types import Stored
from app.cards.card_images import image_bytes
from app.cards.cards import shows_team_logo
from app.cards.store import get_card_by_slug, slug_is_retired
from app.cards.types import Card, ImageKind
from app.db import Database
from app.ops import tally

SLUG_SHAPE = re.compile(r"^[a-z0-9-]{3,100}$")
SLUG_HITS, SLUG_MISSES = tally.Counted(qr.CACHE_HITS.labels("slug")), tally.Counted(qr.CACHE_MISSES.labels("slug"))

Gone = Literal["gone"]

POLLS_WAITING = Gauge("internal_change_polls_waiting", "Long polls of GET /internal/changes waiting for a card change")


class NotCached:
    """Not in the cache (None is a cached answer: no such card)."""


NOT_CACHED = NotCached()


class ChangeBell:
    """Rung after every commit that moves a slug in the change sequence; long polls wait on it.

    A poll takes `next_ring()` before it reads the sequence and waits on that: a change
    committed between its read and its wait has rung it already, so none is missed.
    """

    def __init__(self) -> None:
        self._next = asyncio.Event()

    def next_ring(self) -> asyncio.Event:
        return self._next

    def ring(self) -> None:
        self._next.set()
        self._next = asyncio.Event()

    async def wait(self, ring: asyncio.Event, timeout: float) -> None:
        """Return once `ring` has rung, or after `timeout` seconds."""
        POLLS_WAITING.inc()
        try:
            await asyncio.wait_for(ring.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            POLLS_WAITING.dec()


def wearing(card: Card, brand: Stored) -> Card:
    """The card as the public pages show it: with the team's look (a brand never set: none)."""
    look = brand.look()
    return card if look is None else msgspec.structs.replace(card, brand=look)


class PublicCards:
    """Cards by slug for the public pages, cached; None for unknown slugs, "gone" for retired ones.

    Every write to a card calls `forget` after its commit (`cards.changed` registers it
    with the transaction). A lookup that read the
    database before such a commit must not put what it read in the cache afterwards, or
    a deleted or changed card would be served from the cache for good: `forget` moves
    `_writes` on, and a lookup stores its row only if no write ended while it read.
    (One counter for all slugs, not one per slug: it costs nothing to keep, and a lookup
    that loses its store to another card's write only reads again next time.)
    """

    def __init__(self, db: Database, size: int = 10_000, bell: ChangeBell | None = None) -> None:
        self._db = db
        self._cards: LRUCache[str, Card | Gone | None] = LRUCache(maxsize=size)
        self._writes = 0  # writes that ended (called forget) so far
        self._bell = bell  # the primary's: wakes the long polls of GET /internal/changes

    def cached(self, slug: str) -> Card | Gone | None | NotCached:
        """The cached entry, or NOT_CACHED: lets a hit be answered without a coroutine."""
        found = self._cards.get(slug, NOT_CACHED)
        if found is not NOT_CACHED:
            SLUG_HITS.n += 1
        return found

    async def get(self, slug: str) -> Card | Gone | None:
        """The entry for `slug`, from the cache or else from `load`; raises what `load` raises
        (and then caches nothing)."""
        if not SLUG_SHAPE.match(slug):
            return None
        try:
            found = self._cards[slug]
            SLUG_HITS.n += 1
            return found
        except KeyError:
            SLUG_MISSES.n += 1
        writes = self._writes
        found = await self.load(slug)
        if self._writes == writes:
            self._cards[slug] = found
        return found

    async def load(self, slug: str) -> Card | Gone | None:
        """Read one slug where the cards are, here the database; the one thing an edge's
        directory (app.edge.local_copy.EdgeCards) does otherwise. Caches nothing itself."""
        async with self._db.read() as conn:
            found = await get_card_by_slug(conn, slug)
            if found is None and await slug_is_retired(conn, slug):
                found = "gone"
            if isinstance(found, Card):
                found = wearing(found, await brand_store.get_stored(conn))
        return found

    async def load_image(self, card: Card, kind: ImageKind, thumbnail: bool) -> tuple[str, bytes] | None:
        """The (hash, JPEG) of the card's photo or logo (or its thumbnail) where the cards are,
        here the database; None when it has none. Caches nothing (app/public/image_cache.py does)."""
        async with self._db.read() as conn:
            if kind == "logo" and shows_team_logo(card):
                return await brand_store.logo_bytes(conn, thumbnail)
            return await image_bytes(conn, card.id, kind, thumbnail)

    def forget(self, *slugs: str) -> None:
        """Drop cached entries after a card is created, changed or deleted: call it once the
        write has committed (a lookup under way then will not cache what it read). At the
        primary it also wakes the edges' long polls, so they hear of it before the caller
        is answered."""
        self._writes += 1
        for slug in slugs:
            self._cards.pop(slug, None)
        if self._bell is not None:
            self._bell.ring()

    def forget_all(self) -> None:
        """Drop every cached entry (an edge that hears of another history)."""
        self._writes += 1
        self._cards.clear()
