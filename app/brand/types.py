"""The team brand's types: the API's body (`Brand`, `BrandRequest`, `BrandDefaults`), the
card fields a brand can lock (`LOCKABLE`), and the part of it every public card carries
(`Look`, set on the Card the public pages read: app/public/card_cache.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from app.cards.content import AccentColor, Address
from app.fields import Phone, ShortText, Website

# The card fields a team can lock, as the API names them, and the card column each is.
# `logo` is the card's own logo upload: locked, members keep the team's.
LockableField = Literal["organization", "website", "phone", "addresses", "department", "accentColor", "logo"]
LOCKABLE: dict[str, str | None] = {
    "organization": "organization", "website": "website", "phone": "phone", "addresses": "addresses",
    "department": "department", "accentColor": "accent_color", "logo": None,
}
BrandName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$")]


class BrandDefaults(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """What new cards start with (and, for a locked field, what every card holds)."""

    organization: ShortText | None = None
    website: Website | None = None
    phone: Phone | None = None  # the main phone: a work phone, first in the card's list
    address: Address | None = None


class BrandRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """PUT /v1/team/brand: the whole brand; a field left out takes its default."""

    name: BrandName | None = None
    accent_color: AccentColor | None = None
    qr_dark: AccentColor = "#000000"
    qr_light: AccentColor = "#ffffff"
    logo_on_codes: bool = False
    locked_fields: Annotated[list[LockableField], msgspec.Meta(max_length=len(LOCKABLE))] = []
    defaults: BrandDefaults = msgspec.field(default_factory=BrandDefaults)


class Brand(msgspec.Struct, rename="camel"):
    name: str | None
    accent_color: str | None
    qr_dark: str
    qr_light: str
    logo_on_codes: bool
    locked_fields: list[str]
    defaults: BrandDefaults
    logo_url: str | None  # GET /v1/team/brand/logo while there is a logo (the URL changes with it)
    updated_at: str | None


class Look(msgspec.Struct, frozen=True):
    """The brand as a public card wears it: the page's team name, accent and logo, its codes' colours."""

    name: str | None = None
    accent_color: str | None = None
    logo_hash: str | None = None
    qr_dark: str = "#000000"
    qr_light: str = "#ffffff"
    logo_on_codes: bool = False
    accent_locked: bool = False  # the team accent over the card's own
    logo_locked: bool = False  # the team logo over the card's own


class Stored(msgspec.Struct, frozen=True):
    """The team_brand row (migration 0016), without the logo's bytes."""

    name: str | None = None
    accent_color: str | None = None
    qr_dark: str = "#000000"
    qr_light: str = "#ffffff"
    logo_on_codes: bool = False
    locked_fields: tuple[str, ...] = ()
    defaults: BrandDefaults = msgspec.field(default_factory=BrandDefaults)
    logo_hash: str | None = None
    updated_at: str | None = None

    def locks(self, field: str) -> bool:
        return field in self.locked_fields

    def look(self) -> Look | None:
        """What public cards wear of it; None for a brand never set (the cards look as before)."""
        if self.updated_at is None:
            return None
        return Look(
            name=self.name, accent_color=self.accent_color, logo_hash=self.logo_hash, qr_dark=self.qr_dark,
            qr_light=self.qr_light, logo_on_codes=self.logo_on_codes, accent_locked=self.locks("accentColor"),
            logo_locked=self.locks("logo"),
        )
