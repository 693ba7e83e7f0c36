"""A card's look, shared by its page, its link preview and its wallet passes: the initials
drawn when it has no photo, and its accent colour (no drawing library needed here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.cards.types import Card

DEFAULT_ACCENT = "#2563eb"
SUFFIXES = frozenset("ii iii iv v jr sr phd md dds esq mba cpa".split())


def initials(name: str) -> str:
    """Up to two letters: of the first and the last word that are names, leaving out
    titles, suffixes and lowercase particles ("Dr. Robert de la Cruz Jr." → "RC")."""
    words = [
        word for word in name.split()
        if word[:1].isupper() and not word.endswith(".") and word.strip(",.").lower() not in SUFFIXES
    ]
    words = words or [word for word in name.split() if word[:1].isalpha()]
    if not words:
        return "?"
    first, last = words[0], words[-1]
    return (first[0] + (last[0] if len(words) > 1 else "")).upper()


def hex_rgb(colour: str | None) -> tuple[int, int, int]:
    """`#rgb` or `#rrggbb` (with or without the #) as an RGB triple; the default accent otherwise."""
    text = (colour or DEFAULT_ACCENT).lstrip("#")
    if len(text) == 3:
        text = "".join(ch * 2 for ch in text)
    try:
        value = int(text, 16)
    except ValueError:
        return hex_rgb(DEFAULT_ACCENT)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def accent_of(card: Card) -> str | None:
    """The card's accent colour as shown: its own, else the team's (the team's first when the
    team locks it); None for the default."""
    look = card.brand
    if look is not None and look.accent_color and (look.accent_locked or not card.accent_color):
        return look.accent_color
    return card.accent_color


def team_name(card: Card) -> str | None:
    return card.brand.name if card.brand is not None else None
