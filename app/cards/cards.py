"""Contact cards: the operations every door calls, and the API's view of a card.

A slug is permanent because printed codes carry it: PATCH refuses to change it, and a
deleted card's slug is retired for good rather than handed to someone else. Creating,
editing and deleting a card are operations (`create_card`, `edit_card`, `delete_card`)
that every door calls: each writes in one transaction, with the slug's new place in the
card change sequence the edges follow (`store.record_changes`), and registers with it that
the public pages' cache drops the card once it commits (`changed`). Here too: the response
body of a card (`to_response`, `image_path`, `image_url`), the lookups handlers use
(`owned_card`, `card_of`) and the QR download (`qr_download`). The types are
app/cards/types.py, the SQL app/cards/store.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import secrets
from typing import TYPE_CHECKING, Any

import msgspec
from litestar import Request
from litestar.datastructures import State

from app import qr
from app.brand import store as brand_store
from app.brand.types import LOCKABLE, BrandDefaults, Stored
from app.cards import vcard
from app.cards.content import (
    LIST_TYPES,
    EmailEntry,
    Link,
    PhoneEntry,
    join_name,
    network_of,
    split_full_name,
    to_json,
)
from app.cards.store import get_card, get_card_by_slug, insert_card, record_changes, retire_card, update_card
from app.cards.types import PRINT_MM, Card, ContactCard, CreateCardRequest, ImageKind, QrOptions, UpdateCardRequest
from app.config import Settings
from app.db import Database, Tx
from app.errors import Invalid, NotFound

if TYPE_CHECKING:
    from app.public.card_cache import PublicCards  # which imports this module

RESERVED_SLUGS = frozenset(
    "admin api v1 c p q i health metrics schema docs static assets login logout register signup "
    "settings account me cards support help about robots favicon well-known".split()
)
SLUG_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o or 1/l/i to misread from paper


# --- responses -----------------------------------------------------------------------


def short_url(settings: Settings, slug: str) -> str:
    return f"{settings.public_base_url}/c/{slug}"


def dynamic_drawing(card: Card) -> qr.Drawing:
    """How a card's own dynamic code is drawn: PNG at the card's size and level, in the
    team's code colours on a public card."""
    if card.brand is not None:
        return qr.Drawing(format="png", size=card.qr_size, ecc=card.qr_error_correction,
                          dark=card.brand.qr_dark, light=card.brand.qr_light)
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


THUMBNAIL_SUFFIX = "-96"


def image_hash(card: Card, kind: ImageKind) -> str | None:
    """The hash of the image the card shows: for a public card (one that wears the team's
    look) without a logo of its own, or with the logo locked by the team, the team logo's."""
    if kind == "photo":
        return card.photo_hash
    if shows_team_logo(card):
        return card.brand.logo_hash  # type: ignore[union-attr]
    return card.logo_hash


def shows_team_logo(card: Card) -> bool:
    look = card.brand
    return look is not None and look.logo_hash is not None and (look.logo_locked or card.logo_hash is None)


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


def with_defaults(data: CreateCardRequest, defaults: BrandDefaults) -> CreateCardRequest:
    """A new card's request with the team's defaults (SPEC §10) in the fields it leaves out."""
    changes: dict[str, Any] = {}
    if data.organization is None and defaults.organization:
        changes["organization"] = defaults.organization
    if data.website is msgspec.UNSET and data.links is msgspec.UNSET and defaults.website:
        changes["website"] = defaults.website
    if data.phone is msgspec.UNSET and data.phones is msgspec.UNSET and defaults.phone:
        changes["phones"] = [PhoneEntry(number=defaults.phone, type="work")]
    if not data.addresses and defaults.address is not None:
        changes["addresses"] = [defaults.address]
    return msgspec.structs.replace(data, **changes) if changes else data


def _refuse_locked(brand: Stored, columns: dict[str, Any], before: dict[str, Any]) -> None:
    """Raises Invalid naming the first field locked by the team whose column `columns`
    changes from `before`."""
    for field in brand.locked_fields:
        column = LOCKABLE.get(field)
        if column is not None and column in columns and columns[column] != before.get(column):
            raise Invalid(
                f"{field} is set by the team and cannot be changed",
                errors=[{"field": field, "message": "locked by the team"}], code="locked_field",
            )


def lockable_columns(card: Card) -> dict[str, Any]:
    """The card's lockable columns as `settle` writes them."""
    return {column: to_json(getattr(card, column)) if column in LIST_TYPES else getattr(card, column)
            for column in LOCKABLE.values() if column is not None}


def refuse_locked_logo(brand: Stored) -> None:
    """Raises Invalid when the team has locked the logo (members keep the team's)."""
    if brand.locks("logo"):
        raise Invalid("the logo is set by the team and cannot be changed",
                      errors=[{"field": "logo", "message": "locked by the team"}], code="locked_field")


async def create_card(
    db: Database, public_cards: PublicCards, user_id: str, data: CreateCardRequest, *, admin: bool = False,
) -> Card:
    """A new card for the account, with the asked slug or a random one, starting with the
    team's defaults. Raises Invalid (a reserved slug; unless `admin`, a field the team has
    locked set otherwise) and Conflict (a taken or retired one)."""
    if data.slug is not None:
        _refuse_reserved(data.slug)
    async with db.write() as tx:
        return await add_card(tx, public_cards, user_id, data, admin=admin)


async def add_card(
    tx: Tx, public_cards: PublicCards, user_id: str, data: CreateCardRequest, *,
    admin: bool = False, actor_id: str | None = None,
) -> Card:
    """create_card inside a transaction the caller owns (the bulk import writes a card and
    its invitation in one): `actor_id` is who asked, the owner by default. Raises as create_card."""
    if data.slug is not None:
        _refuse_reserved(data.slug)
    brand = await brand_store.get_stored(tx.conn)
    columns = settle(with_defaults(data, brand.defaults), None)
    if not admin and brand.locked_fields:
        bare = CreateCardRequest(full_name=columns["full_name"], email=columns["email"])
        _refuse_locked(brand, columns, settle(with_defaults(bare, brand.defaults), None))
    if data.slug is not None:
        card = await insert_card(tx.conn, user_id, data.slug, columns, tx.now_text)
    else:
        for _ in range(10):
            slug = "".join(secrets.choice(SLUG_ALPHABET) for _ in range(7))
            if slug not in RESERVED_SLUGS and not await get_card_by_slug(tx.conn, slug):
                break
        card = await insert_card(tx.conn, user_id, slug, columns, tx.now_text)
    await changed(tx, public_cards, [card.slug])
    await tx.emit("card.created", event_data(card), actor_id=actor_id or user_id, user_id=user_id)
    return card


async def edit_card(
    db: Database, public_cards: PublicCards, card: Card, data: UpdateCardRequest, *, admin: bool = False,
) -> Card:
    """Change the fields `data` sets; the card as it is now. Raises Invalid (a new slug, what
    `settle` refuses; unless `admin`, a change of a field the team has locked)."""
    if data.slug is not msgspec.UNSET and data.slug != card.slug:
        raise Invalid("a slug is permanent: printed codes carry it", errors=[{"field": "slug", "message": "cannot be changed"}])
    changes = settle(data, card)
    if not changes:
        return card
    async with db.write() as tx:
        if not admin:
            _refuse_locked(await brand_store.get_stored(tx.conn), changes, lockable_columns(card))
        card = await update_card(tx.conn, card, changes, tx.now_text)
        await changed(tx, public_cards, [card.slug])
        asked = sorted(_camel(name) for name, value in msgspec.structs.asdict(data).items() if value is not msgspec.UNSET)
        await tx.emit("card.updated", {**event_data(card), "changed": asked}, actor_id=card.user_id, user_id=card.user_id)
    return card


async def delete_card(db: Database, public_cards: PublicCards, card: Card) -> None:
    """Delete the card; its slug is retired, so its printed codes answer "removed"."""
    async with db.write() as tx:
        await retire_card(tx.conn, card, tx.now_text)
        await changed(tx, public_cards, [card.slug])
        await tx.emit("card.deleted", event_data(card), actor_id=card.user_id, user_id=card.user_id)


def event_data(card: Card) -> dict:
    """A card in its events (SPEC §9): who owns it and what identifies it, nothing more."""
    return {"cardId": card.card_id, "userId": card.user_id, "slug": card.slug, "fullName": card.full_name,
            "email": card.email, "organization": card.organization, "title": card.title}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def static_payload(card: Card, ecc: qr.Ecc) -> tuple[str, list[str]]:
    """What a static code of the card at level `ecc` holds (a vCard 3.0, never the photo), and
    the fields left out so that it fits (field names as the API's, camelCase)."""
    return vcard.static_text(card, ecc)  # LEAVE_OUT_ORDER's names are one word: the API's too


async def _logo_of(state: State, card: Card, brand: Stored, options: QrOptions) -> bytes | None:
    """The logo for a code with the logo: the card's, else the team's (the team's first when
    it locks the logo). None when there is none and the code was not asked for one (the
    team's logoOnCodes). Raises Invalid (no logo, or a format drawn without one, when asked)."""
    asked = options.logo is True
    if options.format not in ("png", "svg"):  # logo_codes.LOGO_FORMATS
        if not asked:
            return None
        raise Invalid("a code with the logo comes as PNG or SVG", errors=[{"field": "logo", "message": "PNG or SVG only"}],
                      code="logo_format")
    stored = None
    if card.logo_hash and not (brand.locks("logo") and brand.logo_hash):
        stored = await state.public.cards.load_image(card, "logo", False)
    elif brand.logo_hash:
        async with state.db.read() as conn:
            stored = await brand_store.logo_bytes(conn, False)
    if stored is None:
        if not asked:
            return None
        raise Invalid("this card has no logo: upload one first", errors=[{"field": "logo", "message": "the card has no logo"}],
                      code="no_logo")
    return stored[1]


async def qr_download(state: State, settings: Settings, card: Card, options: QrOptions) -> tuple[bytes, str, str, list[str]]:
    """The card's code drawn as asked, the team's qrDark, qrLight and logoOnCodes where the
    options leave them out: (image, media type, file name, the fields a static code left
    out). Raises Invalid (colours without contrast, a payload too large for the level)."""
    async with state.db.read() as conn:
        brand = await brand_store.get_stored(conn)
    try:
        dark_rgb = qr.parse_colour(options.dark or brand.qr_dark)
        light_rgb = qr.parse_colour(options.light or brand.qr_light)
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
        # Print formats are sized in millimetres, not in pixels.
        mm=(options.mm or PRINT_MM) if options.format in ("pdf", "eps") else None,
    )
    logo = None
    if options.logo is True or (options.logo is None and brand.logo_on_codes):
        logo = await _logo_of(state, card, brand, options)
    if logo is not None:
        drawing = dataclasses.replace(drawing, ecc="H")
    payload, left_out = (short_url(settings, card.slug), []) if options.mode == "dynamic" else static_payload(card, drawing.ecc)
    try:
        if logo is not None:
            from app.cards import logo_codes  # Pillow: loaded by the first such download, not at start

            image = await asyncio.to_thread(logo_codes.render, payload, drawing, logo)  # downloads, not scans: not cached
        else:
            image = await qr.cached_image(state.qr_cache, payload, drawing, options.mode)
    except qr.QrTooLarge as exc:
        raise Invalid(str(exc)) from None
    return image, qr.MEDIA_TYPES[options.format], f"{card.slug}-{options.mode}.{options.format}", left_out
