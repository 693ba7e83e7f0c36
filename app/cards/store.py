"""The cards' SQL: the columns of a card row and the Card of a row (`card_from_row`, also
used at an edge on sqlite3), the reads (`get_card`, `get_card_by_slug`, `list_cards`, ...),
the writes the operations of app/cards/cards.py make in their transaction (`insert_card`,
`update_card`, `retire_card`), and the card change sequence the edges follow
(`record_changes`).
"""

from __future__ import annotations

import uuid
from typing import Any

import aiosqlite
import msgspec

from app.cards.content import LIST_TYPES, StructuredName, from_json, split_full_name
from app.cards.types import Card
from app.db import fetch_all, fetch_one
from app.errors import Conflict

CARD_COLUMNS = (
    "id, card_id, user_id, slug, full_name, organization, title, email, phone, website, "
    "qr_error_correction, qr_size, created_at, updated_at, view_count, scan_count, save_count, photo_hash, logo_hash, "
    "name, pronouns, headline, department, phones, emails, addresses, links, socials, accent_color"
)
# The columns a card's content is written to (what `cards.settle` returns keys of).
CONTENT_COLUMNS = (
    "full_name", "email", "organization", "title", "phone", "website", "qr_error_correction", "qr_size",
    "name", "pronouns", "headline", "department", "phones", "emails", "addresses", "links", "socials", "accent_color",
)


def card_from_row(row: Any) -> Card:
    """A Card of a row of CARD_COLUMNS (from aiosqlite, or sqlite3 at an edge)."""
    fields = dict(row)
    for column, kind in LIST_TYPES.items():
        fields[column] = from_json(fields[column], kind)
    name = fields["name"]
    fields["name"] = split_full_name(fields["full_name"]) if name is None else msgspec.json.decode(name, type=StructuredName)
    return Card(**fields)


async def get_card(conn: aiosqlite.Connection, user_id: str, card_id: str) -> Card | None:
    row = await fetch_one(conn, f"SELECT {CARD_COLUMNS} FROM cards WHERE card_id = ? AND user_id = ?", (card_id, user_id))
    return card_from_row(row) if row else None


async def get_card_by_slug(conn: aiosqlite.Connection, slug: str) -> Card | None:
    row = await fetch_one(conn, f"SELECT {CARD_COLUMNS} FROM cards WHERE slug = ?", (slug,))
    return card_from_row(row) if row else None


async def slug_is_retired(conn: aiosqlite.Connection, slug: str) -> bool:
    return await fetch_one(conn, "SELECT 1 FROM retired_slugs WHERE slug = ?", (slug,)) is not None


async def list_cards(conn: aiosqlite.Connection, user_id: str, limit: int, before_id: int) -> list[Card]:
    rows = await fetch_all(
        conn,
        f"""SELECT {CARD_COLUMNS} FROM cards WHERE user_id = ? AND id < ?
        ORDER BY id DESC LIMIT ?""",
        (user_id, before_id, limit),
    )
    return [card_from_row(r) for r in rows]


async def list_all_cards(conn: aiosqlite.Connection, user_id: str) -> list[Card]:
    rows = await fetch_all(conn, f"SELECT {CARD_COLUMNS} FROM cards WHERE user_id = ? ORDER BY id DESC", (user_id,))
    return [card_from_row(r) for r in rows]


async def insert_card(conn: aiosqlite.Connection, user_id: str, slug: str, columns: dict[str, Any], now: str) -> Card:
    """A new card of `columns` (every one of CONTENT_COLUMNS, as `cards.settle` gives them). Raises
    Conflict when the slug is taken or retired."""
    if await get_card_by_slug(conn, slug) or await slug_is_retired(conn, slug):
        raise Conflict(f"the slug {slug!r} is taken", errors=[{"field": "slug", "message": "taken"}], code="slug_taken")
    names = ", ".join(CONTENT_COLUMNS)
    values = ", ".join(f":{name}" for name in CONTENT_COLUMNS)
    row = await fetch_one(
        conn,
        f"""INSERT INTO cards (card_id, user_id, slug, created_at, updated_at, {names})
        VALUES (:card_id, :user_id, :slug, :now, :now, {values}) RETURNING {CARD_COLUMNS}""",
        {**{name: columns[name] for name in CONTENT_COLUMNS}, "card_id": uuid.uuid4().hex, "user_id": user_id,
         "slug": slug, "now": now},
    )
    return card_from_row(row)


async def update_card(conn: aiosqlite.Connection, card: Card, changes: dict[str, Any], now: str) -> Card:
    """Write `changes` (columns of CONTENT_COLUMNS, as `cards.settle` gives them) to the card."""
    assignments = ", ".join(f"{name} = :{name}" for name in changes if name in CONTENT_COLUMNS)
    row = await fetch_one(
        conn,
        f"UPDATE cards SET {assignments}, updated_at = :updated_at WHERE id = :id RETURNING {CARD_COLUMNS}",
        {**changes, "updated_at": now, "id": card.id},
    )
    return card_from_row(row)


async def retire_card(conn: aiosqlite.Connection, card: Card, now: str) -> None:
    """Delete a card and retire its slug for good."""
    await conn.execute("INSERT OR IGNORE INTO retired_slugs (slug, retired_at) VALUES (?, ?)", (card.slug, now))
    await conn.execute("DELETE FROM cards WHERE id = ?", (card.id,))


async def record_changes(conn: aiosqlite.Connection, slugs: list[str], now: str) -> None:
    """Move each slug to the end of the card change sequence (migration 0005): the edges
    follow it to know which of their copy's cards are out of date. Called in the same
    transaction as the change itself, by every operation that changes a public card."""
    await conn.executemany(
        # REPLACE deletes the slug's row and inserts it anew: AUTOINCREMENT gives it a seq
        # above every seq ever used, the one just deleted included.
        "INSERT OR REPLACE INTO card_changes (slug, changed_at) VALUES (?, ?)",
        [(slug, now) for slug in slugs],
    )
