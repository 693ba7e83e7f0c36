"""A card's photo and logo (SPEC §8): their SQL (table card_images, migration 0011) and the
operations every door calls to set or remove one.

Setting an image processes the upload (app/cards/images.py) in a thread of its own, then
replaces the card's image of that kind and sets the hash on the card's row in one
transaction, recorded as a change of the card (`cards.changed`): the public pages' cache
and the edges learn of it as of any edit. The images are served from
/p/{slug}/{kind}-{hash}.jpg (app/public/answers.py), which a new image never reuses.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import aiosqlite

from app.brand import store as brand_store
from app.cards.cards import changed, image_hash, refuse_locked_logo
from app.cards.store import CARD_COLUMNS, card_from_row
from app.cards.types import Card
from app.cards.types import ImageKind as Kind
from app.db import Database, fetch_one

if TYPE_CHECKING:
    from app.cards.images import Processed
    from app.public.card_cache import PublicCards

# At most two uploads decoded at once: each may hold 150 MB while it is (images.MAX_PIXELS),
# and the scans' event loop keeps a core to itself on a two-core machine.
PROCESSOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="card-images")


# --- SQL -----------------------------------------------------------------------------


async def put_image(conn: aiosqlite.Connection, card: Card, kind: Kind, processed: Processed, now: str) -> Card:
    """Replace the card's image of this kind; the card's row as it is now."""
    await conn.execute(
        """INSERT INTO card_images (card_id, kind, content_hash, image, thumbnail, created_at)
        VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (card_id, kind) DO UPDATE SET content_hash = excluded.content_hash, image = excluded.image,
            thumbnail = excluded.thumbnail, created_at = excluded.created_at""",
        (card.id, kind, processed.content_hash, processed.image, processed.thumbnail, now),
    )
    return await _set_hash(conn, card, kind, processed.content_hash, now)


async def remove_image(conn: aiosqlite.Connection, card: Card, kind: Kind, now: str) -> Card:
    await conn.execute("DELETE FROM card_images WHERE card_id = ? AND kind = ?", (card.id, kind))
    return await _set_hash(conn, card, kind, None, now)


async def _set_hash(conn: aiosqlite.Connection, card: Card, kind: Kind, content_hash: str | None, now: str) -> Card:
    column = {"photo": "photo_hash", "logo": "logo_hash"}[kind]  # one of two names, never the caller's text
    row = await fetch_one(
        conn,
        f"UPDATE cards SET {column} = ?, updated_at = ? WHERE id = ? RETURNING {CARD_COLUMNS}",
        (content_hash, now, card.id),
    )
    return card_from_row(row)


async def image_bytes(conn: aiosqlite.Connection, card_row_id: int, kind: Kind, thumbnail: bool) -> tuple[str, bytes] | None:
    """The stored (hash, JPEG) of a card's image, or of its thumbnail; None when it has none."""
    column = "thumbnail" if thumbnail else "image"
    row = await fetch_one(
        conn, f"SELECT content_hash, {column} AS jpeg FROM card_images WHERE card_id = ? AND kind = ?", (card_row_id, kind)
    )
    return None if row is None else (row["content_hash"], bytes(row["jpeg"]))


# --- operations ----------------------------------------------------------------------


async def set_image(db: Database, public_cards: PublicCards, card: Card, kind: Kind, upload: bytes, *, admin: bool = False) -> Card:
    """Make the upload the card's photo or logo; the card as it is now. Raises TooLarge,
    Unsupported and Invalid (app/cards/images.py; unless `admin`, a logo the team has
    locked), storing nothing then."""
    from app.cards.images import process  # Pillow: loaded by the first upload, not by every install at start

    if kind == "logo" and not admin:
        async with db.read() as conn:
            refuse_locked_logo(await brand_store.get_stored(conn))
    processed = await asyncio.get_running_loop().run_in_executor(PROCESSOR, process, upload)
    async with db.write() as tx:
        if kind == "logo" and not admin:
            refuse_locked_logo(await brand_store.get_stored(tx.conn))
        card = await put_image(tx.conn, card, kind, processed, tx.now_text)
        await changed(tx, public_cards, [card.slug])
    return card


async def delete_image(db: Database, public_cards: PublicCards, card: Card, kind: Kind, *, admin: bool = False) -> Card:
    """Remove the card's photo or logo (nothing to do when it has none); the card as it is
    now. Raises Invalid (unless `admin`, a logo the team has locked)."""
    if image_hash(card, kind) is None:
        return card
    async with db.write() as tx:
        if kind == "logo" and not admin:
            refuse_locked_logo(await brand_store.get_stored(tx.conn))
        card = await remove_image(tx.conn, card, kind, tx.now_text)
        await changed(tx, public_cards, [card.slug])
    return card


async def photo_jpeg(db: Database, card: Card) -> bytes | None:
    """The card's photo as stored (a square JPEG of at most 512 px, no metadata), or None:
    what the vCard's PHOTO carries."""
    if card.photo_hash is None:
        return None
    async with db.read() as conn:
        found = await image_bytes(conn, card.id, "photo", thumbnail=False)
    return None if found is None else found[1]

