"""The card carried everywhere (SPEC §10): its email signature, its video-call backgrounds
and its print PDFs, as the API (app/cards/carry_api.py) and the console
(app/console/carried.py) both hand them out.

Pictures are drawn by app/cards/artwork.py (Pillow, imported at the first one, as the
link preview is) off the event loop, and kept by what they show: the card's state and
the asked variant, so a second download of an unchanged card is a lookup. Codes lead to
the card's short link: the signature's links carry `src=signature`; the background's and
the printed card's code is the plain short link, which counts as `qr` (a code scanned
with a phone, as the printed one is: counters.Source has no other name for it, and the
shortest payload gives the biggest modules).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import msgspec

from app.brand import store as brand_store
from app.cards.cards import image_path, short_url, shows_team_logo
from app.cards.signature import Signature
from app.cards.signature import build as build_signature
from app.cards.types import Card
from app.config import Settings
from app.public.looks import accent_of

if TYPE_CHECKING:
    from litestar.datastructures import State

    from app.cards.artwork import Face

BackgroundSize = Literal["1920x1080", "1280x720"]
Layout = Literal["left", "right"]
PrintLayout = Literal["card", "sheet"]
KEPT = 16  # pictures kept: a background is 20 to 60 KB, a card PDF about 100 KB, a sheet about 1 MB
SHEETS_KEPT = 2


@dataclass(frozen=True, slots=True)
class Look:
    """The accent and logo a carried card is drawn with."""

    accent: str | None
    logo_jpeg: bytes | None
    logo_key: str | None  # names the logo in cache keys (its content hash)


async def look_of(state: State, card: Card, with_logo: bool = True) -> Look:
    """The card's accent and logo as its public page wears them (SPEC §10, team brand): its
    own, else the team's, the team's first where the team locks them (looks.accent_of,
    cards.shows_team_logo); `logo_key` names the logo's version, so every carried picture
    follows a brand change at once."""
    async with state.db.read() as conn:
        team = await brand_store.get_stored(conn)
    worn = msgspec.structs.replace(card, brand=team.look())
    logo, key = None, None
    if with_logo:
        if shows_team_logo(worn):
            async with state.db.read() as conn:
                stored = await brand_store.logo_bytes(conn, False)
        elif card.logo_hash:
            stored = await state.public.cards.load_image(card, "logo", False)
        else:
            stored = None
        if stored is not None:
            key, logo = stored
    return Look(accent_of(worn), logo, key)


def signature_of(settings: Settings, card: Card, look: Look | None = None) -> Signature:
    """The card's email signature, HTML and plain text."""
    return build_signature(
        card, settings.public_base_url, photo_path=image_path(card, "photo", thumbnail=True),
        accent=look.accent if look else None,
    )


def face_of(settings: Settings, card: Card, look: Look) -> Face:
    from app.cards.artwork import Face  # Pillow: loaded by the first picture, not at start

    contacts = [entry.number for entry in card.phones[:1]] + [card.email]
    if card.website:
        contacts.append(card.website.removeprefix("https://").removeprefix("http://").rstrip("/"))
    return Face(
        name=card.full_name,
        role=", ".join(part for part in (card.title, card.department) if part),
        organization=card.organization or "",
        contacts=tuple(contacts),
        url=short_url(settings, card.slug),
        accent=look.accent,
        logo_jpeg=look.logo_jpeg,
    )


async def background_of(state: State, settings: Settings, card: Card, size: BackgroundSize, layout: Layout) -> bytes:
    """The card's video-call background, a PNG of `size` with the panel on the `layout` side."""
    from app.cards import artwork

    look = await look_of(state, card)
    return await _drawn(("background", size, layout), card, look, lambda face: artwork.background(face, size, layout), settings)


async def print_of(state: State, settings: Settings, card: Card, layout: PrintLayout) -> bytes:
    """The card's print PDF: one business card with bleed, or an A4 sheet of ten."""
    from app.cards import artwork

    look = await look_of(state, card)
    draw = artwork.card_pdf if layout == "card" else artwork.sheet_pdf
    return await _drawn(("print", layout), card, look, draw, settings)


async def _drawn(variant: tuple, card: Card, look: Look, draw, settings: Settings) -> bytes:
    face = face_of(settings, card, look)
    # What the picture shows, and nothing else: an unchanged card is drawn once.
    key = (variant, face.name, face.role, face.organization, face.contacts, face.url, face.accent, look.logo_key)
    kept, most = (_sheets, SHEETS_KEPT) if variant == ("print", "sheet") else (_pictures, KEPT)
    if (found := kept.get(key)) is not None:
        kept.move_to_end(key)
        return found
    body = await asyncio.to_thread(draw, face)
    kept[key] = body
    while len(kept) > most:
        kept.popitem(last=False)
    return body


_pictures: OrderedDict[tuple, bytes] = OrderedDict()
_sheets: OrderedDict[tuple, bytes] = OrderedDict()
