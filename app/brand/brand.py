"""The team brand's operations (SPEC §10), which every door calls: read it, replace it, set
or remove its logo.

The data model: one row (team_brand, migration 0016) in the database the cards live in.
What the public pages show of it is read with each card (app/public/card_cache.py; at an
edge, from the copy) and kept on the cached Card as its `brand`. So a change of the brand
is a change of every card: in its transaction every slug moves in the card change
sequence (`cards.changed`), and after its commit every cached card is forgotten, at the
primary at once and at the edges as soon as their long poll hears of it. A locked field
with a default is written to every card in the same transaction, so the vCards, static
codes and the API say the same as the pages.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from app import qr
from app.brand import store
from app.brand.types import LOCKABLE, BrandRequest, Stored
from app.cards import cards
from app.cards.card_images import PROCESSOR
from app.cards.store import CARD_COLUMNS, card_from_row, update_card
from app.cards.types import UpdateCardRequest
from app.db import Database, Tx, fetch_all
from app.errors import Invalid

if TYPE_CHECKING:
    from app.public.card_cache import PublicCards


async def current(db: Database) -> Stored:
    async with db.read() as conn:
        return await store.get_stored(conn)


def check(data: BrandRequest) -> None:
    """Raises Invalid: code colours without the contrast downloads need, an empty address."""
    dark, light = qr.parse_colour(data.qr_dark), qr.parse_colour(data.qr_light)
    if qr.contrast_ratio(dark, light) < 3:
        raise Invalid(
            "qrDark and qrLight need a contrast of at least 3:1, with dark modules darker",
            errors=[{"field": "qrDark", "message": "too little contrast with qrLight"}], code="low_contrast",
        )
    if data.defaults.address is not None and not data.defaults.address.parts():
        raise Invalid("an address needs at least one part", errors=[{"field": "defaults.address", "message": "is empty"}])


def locked_defaults(brand: Stored) -> UpdateCardRequest:
    """The edit that makes a card hold the defaults of the fields the team locks."""
    defaults, asked = brand.defaults, {}
    for field, value in (("organization", defaults.organization), ("website", defaults.website), ("phone", defaults.phone)):
        if brand.locks(field) and value:
            asked[field] = value
    if brand.locks("addresses") and defaults.address is not None:
        asked["addresses"] = [defaults.address]
    return UpdateCardRequest(**asked)


async def update_brand(db: Database, public_cards: PublicCards, data: BrandRequest, actor_id: str) -> Stored:
    """Replace the brand; every card wears it at once. Raises Invalid (`check`)."""
    check(data)
    async with db.write() as tx:
        brand = await store.save(tx.conn, data, tx.now_text)
        await _reach_every_card(tx, public_cards, brand, actor_id)
    return brand


async def set_logo(db: Database, public_cards: PublicCards, upload: bytes) -> Stored:
    """Make the upload the team logo. Raises TooLarge, Unsupported and Invalid (app/cards/images.py)."""
    from app.cards.images import process  # Pillow: loaded by the first upload, not by every install at start

    processed = await asyncio.get_running_loop().run_in_executor(PROCESSOR, process, upload)
    async with db.write() as tx:
        brand = await store.set_logo(tx.conn, processed.content_hash, processed.image, processed.thumbnail, tx.now_text)
        await _reach_every_card(tx, public_cards, brand, None)
    return brand


async def delete_logo(db: Database, public_cards: PublicCards) -> Stored:
    """Remove the team logo (nothing to do without one)."""
    async with db.write() as tx:
        brand = await store.get_stored(tx.conn)
        if brand.logo_hash is None:
            return brand
        brand = await store.set_logo(tx.conn, None, None, None, tx.now_text)
        await _reach_every_card(tx, public_cards, brand, None)
    return brand


async def _reach_every_card(tx: Tx, public_cards: PublicCards, brand: Stored, actor_id: str | None) -> None:
    """In `tx`: the locked defaults written to every card that differs, and every card marked
    changed (the caches forget it after the commit, the edges hear of it)."""
    rows = await fetch_all(tx.conn, f"SELECT {CARD_COLUMNS} FROM cards ORDER BY id")
    edit = locked_defaults(brand)
    for card in map(card_from_row, rows):
        changes: dict[str, Any] = cards.settle(edit, card)
        before = {column: value for column, value in cards.lockable_columns(card).items() if column in changes}
        if any(changes[column] != value for column, value in before.items()):
            card = await update_card(tx.conn, card, changes, tx.now_text)
            asked = sorted(field for field in brand.locked_fields if LOCKABLE[field] in changes)
            await tx.emit("card.updated", {**cards.event_data(card), "changed": asked}, actor_id=actor_id, user_id=card.user_id)
    await cards.changed(tx, public_cards, [row["slug"] for row in rows])
