"""Contact cards: the owner's CRUD API and the QR image download.

A slug is permanent because printed codes carry it: PATCH refuses to change it, and a
deleted card's slug is retired for good rather than handed to someone else. Creating,
editing and deleting a card are operations (`create_card`, `edit_card`, `delete_card`)
that every door calls: each writes in one transaction, with the slug's new place in the
card change sequence the edges follow (`record_changes`), and registers with it that the
public pages' cache drops the card once it commits (`changed`).
"""

from __future__ import annotations

import functools
import secrets
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

import aiosqlite
import msgspec
from litestar import Request
from litestar.datastructures import State

from app import qr
from app.config import Settings
from app.db import Database, Tx, fetch_all, fetch_one
from app.errors import Conflict, Invalid, NotFound
from app.fields import Email, Name, Phone, QrSize, ShortText, Slug, Website, limits_of

if TYPE_CHECKING:
    from app.public.card_cache import PublicCards  # which imports this module

RESERVED_SLUGS = frozenset(
    "admin api v1 c p q i health metrics schema docs static assets login logout register signup "
    "settings account me cards support help about robots favicon well-known".split()
)
SLUG_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o or 1/l/i to misread from paper
COLOUR = r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"


QR_SIZES = limits_of(QrSize)

# --- structs -------------------------------------------------------------------------


class Card(msgspec.Struct):
    """A row of the cards table."""

    id: int
    card_id: str
    user_id: str
    slug: str
    full_name: str
    organization: str | None
    title: str | None
    email: str
    phone: str | None
    website: str | None
    qr_error_correction: qr.Ecc
    qr_size: int
    created_at: str
    updated_at: str
    view_count: int
    scan_count: int
    save_count: int  # downloads of its vCard (SPEC §8)
    # The hashes naming the card's photo and logo in their URLs (card_images.py), None without one.
    photo_hash: str | None = None
    logo_hash: str | None = None

    def vcard(self) -> str:
        return qr.vcard(self.full_name, self.email, self.organization, self.title, self.phone, self.website)


class CreateCardRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    full_name: Name
    email: Email
    organization: ShortText | None = None
    title: ShortText | None = None
    phone: Phone | None = None
    website: Website | None = None
    slug: Slug | None = None
    qr_error_correction: qr.Ecc = "M"
    qr_size: QrSize = 512


class UpdateCardRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Fields left out stay as they are; null clears an optional field."""

    full_name: Name | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType = msgspec.UNSET
    organization: ShortText | None | msgspec.UnsetType = msgspec.UNSET
    title: ShortText | None | msgspec.UnsetType = msgspec.UNSET
    phone: Phone | None | msgspec.UnsetType = msgspec.UNSET
    website: Website | None | msgspec.UnsetType = msgspec.UNSET
    qr_error_correction: qr.Ecc | msgspec.UnsetType = msgspec.UNSET
    qr_size: QrSize | msgspec.UnsetType = msgspec.UNSET
    # Accepted only to refuse a change with a clear message (slugs are permanent).
    slug: Slug | msgspec.UnsetType = msgspec.UNSET


class ContactCard(msgspec.Struct, rename="camel"):
    card_id: str
    slug: str
    full_name: str
    organization: str | None
    title: str | None
    email: str
    phone: str | None
    website: str | None
    qr_error_correction: str
    qr_size: int
    created_at: str
    updated_at: str
    view_count: int
    scan_count: int
    save_count: int  # downloads of its vCard (/p/{slug}.vcf), bots and HEAD left out
    short_url: str
    card_url: str
    vcard_url: str
    qr_code_url: str
    photo_url: str | None = None  # a square JPEG of at most 512 px; the URL changes with the image
    logo_url: str | None = None


class CardPage(msgspec.Struct, rename="camel"):
    items: list[ContactCard]
    next_cursor: str | None


# --- SQL -----------------------------------------------------------------------------

CARD_COLUMNS = (
    "id, card_id, user_id, slug, full_name, organization, title, email, phone, website, "
    "qr_error_correction, qr_size, created_at, updated_at, view_count, scan_count, save_count, photo_hash, logo_hash"
)
EDITABLE = ("full_name", "email", "organization", "title", "phone", "website", "qr_error_correction", "qr_size")


def _card(row: Any) -> Card:
    return Card(**dict(row))


async def get_card(conn: aiosqlite.Connection, user_id: str, card_id: str) -> Card | None:
    row = await fetch_one(conn, f"SELECT {CARD_COLUMNS} FROM cards WHERE card_id = ? AND user_id = ?", (card_id, user_id))
    return _card(row) if row else None


async def get_card_by_slug(conn: aiosqlite.Connection, slug: str) -> Card | None:
    row = await fetch_one(conn, f"SELECT {CARD_COLUMNS} FROM cards WHERE slug = ?", (slug,))
    return _card(row) if row else None


async def slug_is_retired(conn: aiosqlite.Connection, slug: str) -> bool:
    return await fetch_one(conn, "SELECT 1 FROM retired_slugs WHERE slug = ?", (slug,)) is not None


async def list_cards(conn: aiosqlite.Connection, user_id: str, limit: int, before_id: int) -> list[Card]:
    rows = await fetch_all(
        conn,
        f"""SELECT {CARD_COLUMNS} FROM cards WHERE user_id = ? AND id < ?
        ORDER BY id DESC LIMIT ?""",
        (user_id, before_id, limit),
    )
    return [_card(r) for r in rows]


async def list_all_cards(conn: aiosqlite.Connection, user_id: str) -> list[Card]:
    rows = await fetch_all(conn, f"SELECT {CARD_COLUMNS} FROM cards WHERE user_id = ? ORDER BY id DESC", (user_id,))
    return [_card(r) for r in rows]


async def insert_card(conn: aiosqlite.Connection, user_id: str, slug: str, data: CreateCardRequest, now: str) -> Card:
    """Raises Conflict when the slug is taken or retired."""
    if await get_card_by_slug(conn, slug) or await slug_is_retired(conn, slug):
        raise Conflict(f"the slug {slug!r} is taken", errors=[{"field": "slug", "message": "taken"}], code="slug_taken")
    row = await fetch_one(
        conn,
        f"""INSERT INTO cards (card_id, user_id, slug, full_name, organization, title, email, phone,
            website, qr_error_correction, qr_size, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {CARD_COLUMNS}""",
        (
            uuid.uuid4().hex, user_id, slug, data.full_name, data.organization, data.title, data.email,
            data.phone, data.website, data.qr_error_correction, data.qr_size, now, now,
        ),
    )
    return _card(row)


async def update_card(conn: aiosqlite.Connection, card: Card, changes: dict[str, Any], now: str) -> Card:
    assignments = ", ".join(f"{name} = :{name}" for name in changes)  # names come from EDITABLE only
    row = await fetch_one(
        conn,
        f"UPDATE cards SET {assignments}, updated_at = :updated_at WHERE id = :id RETURNING {CARD_COLUMNS}",
        {**changes, "updated_at": now, "id": card.id},
    )
    return _card(row)


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


# --- responses -----------------------------------------------------------------------


def short_url(settings: Settings, slug: str) -> str:
    return f"{settings.public_base_url}/c/{slug}"


def dynamic_drawing(card: Card) -> qr.Drawing:
    """How a card's own dynamic code is drawn: PNG at the card's size and level."""
    return qr.Drawing(format="png", size=card.qr_size, ecc=card.qr_error_correction)


async def to_response(card: Card, state: State, settings: Settings) -> ContactCard:
    png = await qr.cached_image(state.qr_cache, short_url(settings, card.slug), dynamic_drawing(card), "dynamic")
    scans, views, saves = state.counters.pending(card.card_id)
    return ContactCard(
        card_id=card.card_id,
        slug=card.slug,
        full_name=card.full_name,
        organization=card.organization,
        title=card.title,
        email=card.email,
        phone=card.phone,
        website=card.website,
        qr_error_correction=card.qr_error_correction,
        qr_size=card.qr_size,
        created_at=card.created_at,
        updated_at=card.updated_at,
        view_count=card.view_count + views,
        scan_count=card.scan_count + scans,
        save_count=card.save_count + saves,
        short_url=short_url(settings, card.slug),
        card_url=f"{settings.public_base_url}/p/{card.slug}",
        vcard_url=f"{settings.public_base_url}/p/{card.slug}.vcf",
        qr_code_url=qr.data_url(png),
        photo_url=image_url(settings.public_base_url, card, "photo"),
        logo_url=image_url(settings.public_base_url, card, "logo"),
    )


ImageKind = Literal["photo", "logo"]
THUMBNAIL_SUFFIX = "-96"


def image_hash(card: Card, kind: ImageKind) -> str | None:
    return card.photo_hash if kind == "photo" else card.logo_hash


def image_path(card: Card, kind: ImageKind, thumbnail: bool = False) -> str | None:
    """The path of the card's photo or logo (or its 96 px thumbnail) under the public pages,
    None when it has none: /p/{slug}/{kind}-{hash}[-96].jpg (app/cards/card_images.py)."""
    content_hash = image_hash(card, kind)
    if content_hash is None:
        return None
    return f"/p/{card.slug}/{kind}-{content_hash}{THUMBNAIL_SUFFIX if thumbnail else ''}.jpg"


def image_url(base_url: str, card: Card, kind: ImageKind) -> str | None:
    path = image_path(card, kind)
    return None if path is None else base_url + path


async def owned_card(db: Database, request: Request, card_id: str) -> Card:
    """The caller's card. Raises NotFound, for missing cards and other people's alike."""
    return await card_of(db, request.user.user_id, card_id)


async def card_of(db: Database, user_id: str, card_id: str) -> Card:
    """The account's card. Raises NotFound, for missing cards and other people's alike."""
    async with db.read() as conn:
        card = await get_card(conn, user_id, card_id)
    if card is None:
        raise NotFound("no such card")
    return card


# --- operations ----------------------------------------------------------------------


async def changed(tx: Tx, public_cards: PublicCards, slugs: list[str]) -> None:
    """The cards of `slugs` changed in `tx`: they take their place in the change sequence the
    edges follow, and the public pages' cache forgets them once it commits."""
    await record_changes(tx.conn, slugs, tx.now_text)
    tx.after_commit(functools.partial(public_cards.forget, *slugs))


def _refuse_reserved(slug: str) -> None:
    if slug in RESERVED_SLUGS:
        raise Invalid(f"{slug!r} is a reserved word", errors=[{"field": "slug", "message": "reserved word"}], code="slug_reserved")


async def create_card(db: Database, public_cards: PublicCards, user_id: str, data: CreateCardRequest) -> Card:
    """A new card for the account, with the asked slug or a random one. Raises Invalid (a
    reserved slug) and Conflict (a taken or retired one)."""
    if data.slug is not None:
        _refuse_reserved(data.slug)
    async with db.write() as tx:
        if data.slug is not None:
            card = await insert_card(tx.conn, user_id, data.slug, data, tx.now_text)
        else:
            for _ in range(10):
                slug = "".join(secrets.choice(SLUG_ALPHABET) for _ in range(7))
                if slug not in RESERVED_SLUGS and not await get_card_by_slug(tx.conn, slug):
                    break
            card = await insert_card(tx.conn, user_id, slug, data, tx.now_text)
        await changed(tx, public_cards, [card.slug])
    return card


async def edit_card(db: Database, public_cards: PublicCards, card: Card, data: UpdateCardRequest) -> Card:
    """Change the fields `data` sets; the card as it is now. Raises Invalid for a new slug."""
    if data.slug is not msgspec.UNSET and data.slug != card.slug:
        raise Invalid("a slug is permanent: printed codes carry it", errors=[{"field": "slug", "message": "cannot be changed"}])
    changes = {name: getattr(data, name) for name in EDITABLE if getattr(data, name) is not msgspec.UNSET}
    if not changes:
        return card
    async with db.write() as tx:
        card = await update_card(tx.conn, card, changes, tx.now_text)
        await changed(tx, public_cards, [card.slug])
    return card


async def delete_card(db: Database, public_cards: PublicCards, card: Card) -> None:
    """Delete the card; its slug is retired, so its printed codes answer "removed"."""
    async with db.write() as tx:
        await retire_card(tx.conn, card, tx.now_text)
        await changed(tx, public_cards, [card.slug])


class QrOptions(msgspec.Struct, forbid_unknown_fields=True):
    """How to draw a card's code for download (the API's query parameters, the console's download form)."""

    format: qr.Format = "png"
    size: QrSize | None = None  # the card's qrSize
    ecc: qr.Ecc | None = None  # the card's level
    mode: qr.Mode = "dynamic"
    dark: Annotated[str, msgspec.Meta(pattern=COLOUR)] = "#000000"
    light: Annotated[str, msgspec.Meta(pattern=COLOUR)] = "#ffffff"
    border: Annotated[int, msgspec.Meta(ge=0, le=32)] = 4


async def qr_download(state: State, settings: Settings, card: Card, options: QrOptions) -> tuple[bytes, str, str]:
    """The card's code drawn as asked: (image, media type, file name). Raises Invalid (colours
    without contrast, a payload too large for the level)."""
    try:
        dark_rgb, light_rgb = qr.parse_colour(options.dark), qr.parse_colour(options.light)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    # Below 3:1 (or inverted) many phone scanners fail; refuse rather than print a dud.
    if qr.contrast_ratio(dark_rgb, light_rgb) < 3:
        raise Invalid(
            "dark and light colours need a contrast of at least 3:1, with dark modules darker",
            errors=[{"field": "dark", "message": "too little contrast with light"}],
            code="low_contrast",
        )
    drawing = qr.Drawing(
        format=options.format,
        size=options.size or card.qr_size,
        ecc=options.ecc or card.qr_error_correction,
        dark="#{:02x}{:02x}{:02x}".format(*dark_rgb),
        light="#{:02x}{:02x}{:02x}".format(*light_rgb),
        border=options.border,
    )
    payload = short_url(settings, card.slug) if options.mode == "dynamic" else card.vcard()
    try:
        image = await qr.cached_image(state.qr_cache, payload, drawing, options.mode)
    except qr.QrTooLarge as exc:
        raise Invalid(str(exc)) from None
    return image, qr.MEDIA_TYPES[options.format], f"{card.slug}-{options.mode}.{options.format}"
