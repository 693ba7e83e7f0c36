"""The card carried everywhere in the API (SPEC §10): its email signature (JSON), its
video-call background (PNG) and its print PDFs. Owner-only, as the card's QR downloads;
the work is app/cards/carried.py's."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Request, Response, Router, get
from litestar.params import FromPath, QueryParameter

from app.api.openapi import BINARY, media_types
from app.api.problems import AUTHENTICATED, problems
from app.cards import carried
from app.cards.cards import owned_card
from app.config import SettingsDep
from app.db import DatabaseDep


class CardSignature(msgspec.Struct):
    html: str  # a table with inline styles only, images by absolute URL: paste it as rich text
    text: str  # the same, as plain text for plain-text mail


DOWNLOAD_HEADERS = {"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff"}


@get(
    "/{cardId:str}/signature", operation_id="getCardSignature", summary="The card as an email signature, HTML and plain text",
    description="Links lead to the card's short link with `src=signature`, so visits from signatures count as their own "
    "source; the images (the photo's thumbnail and the card's QR) are absolute URLs under PUBLIC_BASE_URL.",
    responses=problems(*AUTHENTICATED, 400, 404),
)
async def signature(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> CardSignature:
    card = await owned_card(db, request, cardId)
    look = await carried.look_of(request.app.state, card, with_logo=False)
    made = carried.signature_of(settings, card, look)
    return CardSignature(html=made.html, text=made.text)


@get(
    "/{cardId:str}/background.png", operation_id="getCardBackground",
    summary="The card as a video-call background: name, title, logo and a QR that reads from a phone",
    description="The QR holds the card's short link (/c/{slug}), counted as source `qr`.",
    media_type="image/png", operation_class=media_types(200, {"image/png": BINARY}),
    responses=problems(*AUTHENTICATED, 400, 404, 422),
)
async def background(
    request: Request,
    cardId: FromPath[str],
    db: DatabaseDep,
    settings: SettingsDep,
    size: Annotated[carried.BackgroundSize, QueryParameter(description="the image's pixels")] = "1920x1080",
    layout: Annotated[carried.Layout, QueryParameter(description="the side the card's panel is on")] = "right",
) -> Response[bytes]:
    card = await owned_card(db, request, cardId)
    png = await carried.background_of(request.app.state, settings, card, size, layout)
    disposition = f'inline; filename="{card.slug}-background-{size}-{layout}.png"'
    return Response(png, media_type="image/png", headers={**DOWNLOAD_HEADERS, "Content-Disposition": disposition})


@get(
    "/{cardId:str}/print.pdf", operation_id="getCardPrint",
    summary="The card to print: one business card (85 × 55 mm with 3 mm bleed) or an A4 sheet of ten",
    description="layout=card: a 91 × 61 mm page, the card's 85 × 55 mm and 3 mm of bleed on every side, the QR on the "
    "front. layout=sheet: an A4 page of ten cards at their trimmed size with crop marks. The QR holds the short link.",
    media_type="application/pdf", operation_class=media_types(200, {"application/pdf": BINARY}),
    responses=problems(*AUTHENTICATED, 400, 404, 422),
)
async def print_pdf(
    request: Request,
    cardId: FromPath[str],
    db: DatabaseDep,
    settings: SettingsDep,
    layout: Annotated[carried.PrintLayout, QueryParameter(description="one card with bleed, or an A4 sheet of ten")] = "card",
) -> Response[bytes]:
    card = await owned_card(db, request, cardId)
    pdf = await carried.print_of(request.app.state, settings, card, layout)
    disposition = f'inline; filename="{card.slug}-{layout}.pdf"'
    return Response(pdf, media_type="application/pdf", headers={**DOWNLOAD_HEADERS, "Content-Disposition": disposition})


router = Router("/cards", route_handlers=[signature, background, print_pdf], tags=["cards"])
