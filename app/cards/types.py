"""The card's types: the row (`Card`), the API's request and response bodies
(`CreateCardRequest`, `UpdateCardRequest`, `ContactCard`, `CardPage`), and how a code is
drawn for download (`QrOptions`). The SQL that reads and writes them is app/cards/store.py,
the operations and the response builder app/cards/cards.py.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from app import qr
from app.brand.types import Look
from app.cards import vcard
from app.cards.content import (
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
)
from app.fields import Email, Name, Phone, QrSize, ShortText, Slug, Website, limits_of

COLOUR = r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$"
QR_SIZES = limits_of(QrSize)
# The printed side of a PDF or EPS code, in millimetres: 30 suits a business card or a flyer
# (scanned from 10 to 30 cm); a poster read from 3 m wants about 300.
PRINT_MM = 30
PrintMm = Annotated[int, msgspec.Meta(ge=10, le=1000)]
ImageKind = Literal["photo", "logo"]
# What a photo or logo upload may be (app/cards/images.py decodes it).
IMAGE_MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp")
IMAGE_MAX_BYTES = 10 * 1024 * 1024


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
    phones: tuple[PhoneEntry, ...]
    emails: tuple[EmailEntry, ...]
    addresses: tuple[Address, ...]
    links: tuple[Link, ...]
    socials: tuple[Social, ...]
    accent_color: str | None
    # The hashes naming the card's photo and logo in their URLs (card_images.py), None without one.
    photo_hash: str | None = None
    logo_hash: str | None = None
    # The team brand as the public pages show it (app/public/card_cache.py sets it; None elsewhere).
    brand: Look | None = None

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


class QrOptions(msgspec.Struct, forbid_unknown_fields=True):
    """How to draw a card's code for download (the API's query parameters, the console's download form)."""

    format: qr.Format = "png"
    size: QrSize | None = None  # the card's qrSize
    ecc: qr.Ecc | None = None  # the card's level
    mode: qr.Mode = "dynamic"
    dark: Annotated[str, msgspec.Meta(pattern=COLOUR)] | None = None  # None: the team's qrDark, else black
    light: Annotated[str, msgspec.Meta(pattern=COLOUR)] | None = None  # None: the team's qrLight, else white
    border: Annotated[int, msgspec.Meta(ge=0, le=32)] = 4
    # The card's logo (else the team's) in the centre, at level H (PNG and SVG; app/cards/logo_codes.py);
    # None: the team's logoOnCodes, when there is a logo to put there.
    logo: bool | None = None
    mm: PrintMm | None = None  # PDF and EPS: the printed side in millimetres (PRINT_MM by default)
