"""A card's files beside its page: the vCard (with the photo), the link preview image
(og.png) and the Apple Wallet pass (.pkpass), each made once per state of the card and
answered from memory after, like the page; and the Google Wallet save link (app/public/answers.py
serves them all)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from app.cards import vcard
from app.cards.cards import image_hash, short_url
from app.cards.types import Card, ImageKind
from app.public.looks import accent_of
from app.public.pages import NOT_FOUND, Answer

if TYPE_CHECKING:
    from app.public.answers import Public  # which imports this module

PAGES_KEPT = 256


def vcard_of(public: Public, card: Card, version: vcard.Version) -> Answer:
    """The card's vCard, made once for each state of the card and version, with the photo
    (which `photo_of` has put in memory: answer_page awaits it, answer_page_now waits for it)."""
    kept = _vcards.get((card.slug, version))
    if kept is not None and kept[0] is card:
        return kept[1]
    photo = public.images.cached(card.photo_hash, False) if card.photo_hash else None
    answer = vcard_answer(card, version, photo.body if photo is not None else None)
    if len(_vcards) >= PAGES_KEPT:
        del _vcards[next(iter(_vcards))]
    _vcards[(card.slug, version)] = (card, answer)
    return answer


_vcards: dict[tuple[str, int], tuple[Card, Answer]] = {}


def vcard_answer(card: Card, version: vcard.Version = 3, photo_jpeg: bytes | None = None) -> Answer:
    return Answer(200, [
        (b"content-type", b"text/vcard; charset=utf-8"),
        (b"content-disposition", f'attachment; filename="{card.slug}.vcf"'.encode()),
        (b"cache-control", b"no-cache"),
    ], card.vcard(version, photo_jpeg).encode())


async def photo_of(public: Public, card: Card) -> bytes | None:
    """The card's photo (512 px JPEG), from memory or else read once and kept; None without one."""
    return await image_of(public, card, "photo")


async def image_of(public: Public, card: Card, kind: ImageKind) -> bytes | None:
    """The card's photo or logo (JPEG), from memory or else read once and kept; None without one."""
    content_hash = image_hash(card, kind)
    if not content_hash:
        return None
    if (answer := public.images.cached(content_hash, False)) is not None:
        return answer.body
    stored = await public.cards.load_image(card, kind, False)
    if stored is None or stored[0] != content_hash:  # changed since the card was cached
        return None
    return public.images.put(stored[0], False, stored[1]).body


class KeptPerCard:
    """Answers made once for each state of a card (the cached Card object itself: an edit
    makes a new one), for at most `most` cards, the oldest dropped first."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._kept: dict[str, tuple[Card, Answer]] = {}

    def get(self, card: Card) -> Answer | None:
        kept = self._kept.get(card.slug)
        return kept[1] if kept is not None and kept[0] is card else None

    def put(self, card: Card, answer: Answer) -> Answer:
        self._kept.pop(card.slug, None)
        if len(self._kept) >= self.most:
            del self._kept[next(iter(self._kept))]
        self._kept[card.slug] = (card, answer)
        return answer


async def og_image_of(public: Public, card: Card) -> Answer:
    """/p/{slug}/og.png, the link preview: drawn off the loop once for each state of the card."""
    if (kept := _og_images.get(card)) is not None:
        return kept
    from app.public import og_image  # Pillow: loaded on the first preview, not by every install at start

    photo = await photo_of(public, card)
    subtitle = " · ".join(part for part in (card.title, card.organization) if part)
    png = await asyncio.to_thread(
        og_image.draw, card.full_name, subtitle, short_url(public.settings, card.slug), accent=accent_of(card), photo_jpeg=photo
    )
    return _og_images.put(card, Answer(200, _OG_HEADERS, png))


# Link previews fetch it once; the page names it with the card's state (?v=), so a day's cache is safe.
_OG_HEADERS = [(b"content-type", b"image/png"), (b"cache-control", b"public, max-age=86400"), (b"x-content-type-options", b"nosniff")]
_og_images = KeptPerCard(64)  # about 30 KB each


async def apple_pass_of(public: Public, card: Card) -> Answer:
    """/p/{slug}.pkpass, the card's Apple Wallet pass (app/wallet/apple.py): built and signed
    off the loop once for each state of the card; 404 when Apple Wallet is not configured."""
    if not public.settings.apple_wallet:
        return NOT_FOUND
    from app.wallet import apple  # the wallet extra, present when a wallet is configured (app/config.py)

    if (kept := _passes.get(card)) is not None:
        return kept
    photo, logo = await photo_of(public, card), await image_of(public, card, "logo")
    body = await asyncio.to_thread(apple.build, public.settings, card, photo, logo)
    return _passes.put(card, Answer(200, [
        (b"content-type", apple.MEDIA_TYPE.encode()),
        (b"content-disposition", f'attachment; filename="{card.slug}.pkpass"'.encode()),
        (b"cache-control", b"no-cache"),
        (b"x-content-type-options", b"nosniff"),
    ], body))


_passes = KeptPerCard(64)  # 10 to 100 KB each, with the photo


def google_wallet_of(public: Public, card: Card) -> Answer:
    """/p/{slug}/google-wallet: a redirect to Google's save link of the card's pass
    (app/wallet/google.py), signed now; 404 when Google Wallet is not configured."""
    if not public.settings.google_wallet:
        return NOT_FOUND
    from app.wallet import google  # the wallet extra, as above

    location = google.save_url(public.settings, card, int(public.counters.seconds()))
    return Answer(302, [(b"location", location.encode()), (b"cache-control", b"no-store"), (b"referrer-policy", b"no-referrer")])
