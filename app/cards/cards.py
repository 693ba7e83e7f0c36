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
from app.cards import vcard
from app.cards.content import (
    LIST_TYPES,
    AccentColor,
    Address,
    Addresses,
    EmailEntry,
    Emails,
    Headline,
    Link,
    Links,
    PhoneEntry,
    Phones,
    Pronouns,
    Social,
    Socials,
    StructuredName,
    from_json,
    join_name,
    network_of,
    split_full_name,
    to_json,
)
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
    # What a card holds beside the above (SPEC §8, migration 0010; app/cards/content.py).
    name: StructuredName
    pronouns: str | None
    headline: str | None
    department: str | None
    phones: list[PhoneEntry]
    emails: list[EmailEntry]
    addresses: list[Address]
    links: list[Link]
    socials: list[Social]
    accent_color: str | None
    # The hashes naming the card's photo and logo in their URLs (card_images.py), None without one.
    photo_hash: str | None = None
    logo_hash: str | None = None

    def vcard(self, version: vcard.Version = 3, photo_jpeg: bytes | None = None) -> str:
        return vcard.vcard(self, version, photo_jpeg)


class CreateCardRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """`fullName` or `name` is required, and `email` or `emails`; see docs/api.md for how
    the single fields and the lists mirror each other."""

    full_name: Name | msgspec.UnsetType = msgspec.UNSET
    email: Email | msgspec.UnsetType = msgspec.UNSET
    organization: ShortText | None = None
    title: ShortText | None = None
    phone: Phone | None | msgspec.UnsetType = msgspec.UNSET
    website: Website | None | msgspec.UnsetType = msgspec.UNSET
    slug: Slug | None = None
    qr_error_correction: qr.Ecc = "M"
    qr_size: QrSize = 512
    name: StructuredName | msgspec.UnsetType = msgspec.UNSET
    pronouns: Pronouns | None = None
    headline: Headline | None = None
    department: ShortText | None = None
    phones: Phones | msgspec.UnsetType = msgspec.UNSET
    emails: Emails | msgspec.UnsetType = msgspec.UNSET
    addresses: Addresses = []
    links: Links | msgspec.UnsetType = msgspec.UNSET
    socials: Socials = []
    accent_color: AccentColor | None = None


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
    name: StructuredName | msgspec.UnsetType = msgspec.UNSET
    pronouns: Pronouns | None | msgspec.UnsetType = msgspec.UNSET
    headline: Headline | None | msgspec.UnsetType = msgspec.UNSET
    department: ShortText | None | msgspec.UnsetType = msgspec.UNSET
    phones: Phones | msgspec.UnsetType = msgspec.UNSET
    emails: Emails | msgspec.UnsetType = msgspec.UNSET
    addresses: Addresses | msgspec.UnsetType = msgspec.UNSET
    links: Links | msgspec.UnsetType = msgspec.UNSET
    socials: Socials | msgspec.UnsetType = msgspec.UNSET
    accent_color: AccentColor | None | msgspec.UnsetType = msgspec.UNSET


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
    name: StructuredName
    pronouns: str | None
    headline: str | None
    department: str | None
    phones: list[PhoneEntry]
    emails: list[EmailEntry]
    addresses: list[Address]
    links: list[Link]
    socials: list[Social]
    accent_color: str | None
    photo_url: str | None = None  # a square JPEG of at most 512 px; the URL changes with the image
    logo_url: str | None = None


class CardPage(msgspec.Struct, rename="camel"):
    items: list[ContactCard]
    next_cursor: str | None


# --- SQL -----------------------------------------------------------------------------

CARD_COLUMNS = (
    "id, card_id, user_id, slug, full_name, organization, title, email, phone, website, "
    "qr_error_correction, qr_size, created_at, updated_at, view_count, scan_count, save_count, photo_hash, logo_hash, "
    "name, pronouns, headline, department, phones, emails, addresses, links, socials, accent_color"
)
# The columns a card's content is written to (what `settle` returns keys of).
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
    """A new card of `columns` (every one of CONTENT_COLUMNS, as `settle` gives them). Raises
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
    """Write `changes` (columns of CONTENT_COLUMNS, as `settle` gives them) to the card."""
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
        name=card.name,
        pronouns=card.pronouns,
        headline=card.headline,
        department=card.department,
        phones=card.phones,
        emails=card.emails,
        addresses=card.addresses,
        links=card.links,
        socials=card.socials,
        accent_color=card.accent_color,
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


# The single fields and the first entry of their list: (single, list, the entry's field,
# a new first entry of a value).
MIRRORS = (
    ("phone", "phones", "number", lambda value, old: PhoneEntry(number=value, type=old.type if old else "mobile")),
    ("email", "emails", "address", lambda value, old: EmailEntry(address=value, type=old.type if old else "work")),
    ("website", "links", "url", lambda value, old: Link(url=value, label=old.label if old else "Website")),
)
PLAIN = ("organization", "title", "pronouns", "headline", "department", "accent_color", "qr_error_correction", "qr_size")


def settle(data: CreateCardRequest | UpdateCardRequest, card: Card | None) -> dict[str, Any]:
    """The columns `data` writes, to a new card (`card` None: every column) or to `card`, with
    the names and the mirrored fields settled as docs/api.md says. Raises Invalid."""

    def sent(field: str) -> bool:
        return getattr(data, field) is not msgspec.UNSET

    changes: dict[str, Any] = {field: getattr(data, field) for field in PLAIN if sent(field)}
    # fullName and name: either one alone makes the other.
    if sent("name"):
        full_name = data.full_name if sent("full_name") else join_name(data.name)
        if not (data.name.given.strip() or data.name.family.strip()) or not full_name.strip():
            raise Invalid("a name needs a given or a family name", errors=[{"field": "name", "message": "needs a given or a family name"}])
        changes["name"], changes["full_name"] = to_json(data.name), full_name
    elif sent("full_name"):
        changes["name"], changes["full_name"] = to_json(split_full_name(data.full_name)), data.full_name
    elif card is None:
        raise Invalid("a card needs fullName or name", errors=[{"field": "fullName", "message": "is required"}])
    for single, plural, key, entry in MIRRORS:
        if sent(plural):
            items = getattr(data, plural)
            first = getattr(items[0], key) if items else None
            if sent(single) and getattr(data, single) != first:
                raise Invalid(
                    f"{single} and {plural}[0].{key} differ: send one of them",
                    errors=[{"field": single, "message": f"must equal {plural}[0].{key} when both are sent"}],
                )
        elif sent(single):
            before = getattr(card, plural) if card else []
            value = getattr(data, single)
            items = before[1:] if value is None else [entry(value, before[0] if before else None), *before[1:]]
        elif card is None:
            items = []
        else:
            continue
        changes[plural], changes[single] = items, getattr(items[0], key) if items else None
    if "emails" in changes and not changes["emails"]:
        field = "emails" if sent("emails") else "email"
        raise Invalid("a card needs an email address", errors=[{"field": field, "message": "needs at least one email address"}])
    for field in ("addresses", "socials"):
        if sent(field) or card is None:
            changes[field] = getattr(data, field)
    for i, address in enumerate(changes.get("addresses", [])):
        if not address.parts():
            raise Invalid("an address needs at least one part", errors=[{"field": f"addresses[{i}]", "message": "is empty"}])
    if "socials" in changes:
        changes["socials"] = [
            social if social.network else msgspec.structs.replace(social, network=network_of(social.url))
            for social in changes["socials"]
        ]
    for field in LIST_TYPES:
        if field in changes:
            changes[field] = to_json(changes[field])
    return changes


def _refuse_reserved(slug: str) -> None:
    if slug in RESERVED_SLUGS:
        raise Invalid(f"{slug!r} is a reserved word", errors=[{"field": "slug", "message": "reserved word"}], code="slug_reserved")


async def create_card(db: Database, public_cards: PublicCards, user_id: str, data: CreateCardRequest) -> Card:
    """A new card for the account, with the asked slug or a random one. Raises Invalid (a
    reserved slug) and Conflict (a taken or retired one)."""
    if data.slug is not None:
        _refuse_reserved(data.slug)
    columns = settle(data, None)
    async with db.write() as tx:
        if data.slug is not None:
            card = await insert_card(tx.conn, user_id, data.slug, columns, tx.now_text)
        else:
            for _ in range(10):
                slug = "".join(secrets.choice(SLUG_ALPHABET) for _ in range(7))
                if slug not in RESERVED_SLUGS and not await get_card_by_slug(tx.conn, slug):
                    break
            card = await insert_card(tx.conn, user_id, slug, columns, tx.now_text)
        await changed(tx, public_cards, [card.slug])
    return card


async def edit_card(db: Database, public_cards: PublicCards, card: Card, data: UpdateCardRequest) -> Card:
    """Change the fields `data` sets; the card as it is now. Raises Invalid (a new slug, what
    `settle` refuses)."""
    if data.slug is not msgspec.UNSET and data.slug != card.slug:
        raise Invalid("a slug is permanent: printed codes carry it", errors=[{"field": "slug", "message": "cannot be changed"}])
    changes = settle(data, card)
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


def static_payload(card: Card, ecc: qr.Ecc) -> tuple[str, list[str]]:
    """What a static code of the card at level `ecc` holds (a vCard 3.0, never the photo), and
    the fields left out so that it fits (field names as the API's, camelCase)."""
    return vcard.static_text(card, ecc)  # LEAVE_OUT_ORDER's names are one word: the API's too


async def qr_download(state: State, settings: Settings, card: Card, options: QrOptions) -> tuple[bytes, str, str, list[str]]:
    """The card's code drawn as asked: (image, media type, file name, the fields a static code
    left out). Raises Invalid (colours without contrast, a payload too large for the level)."""
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
    payload, left_out = (short_url(settings, card.slug), []) if options.mode == "dynamic" else static_payload(card, drawing.ecc)
    try:
        image = await qr.cached_image(state.qr_cache, payload, drawing, options.mode)
    except qr.QrTooLarge as exc:
        raise Invalid(str(exc)) from None
    return image, qr.MEDIA_TYPES[options.format], f"{card.slug}-{options.mode}.{options.format}", left_out
