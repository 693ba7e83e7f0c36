"""The card carried everywhere in the console (SPEC §10): the email signature page with
its preview and copy buttons, and the background and print downloads the card page
links to. The work is app/cards/carried.py's, as in the API.

The console's pages forbid inline styles (web.CSP), which a signature is made of, so
the preview is its own small document in a sandboxed frame, with a policy of its own:
styles inline, images from the public base URL only, no script, framed by the console
alone. Opened on its own, the same document is what a browser without the Clipboard
API's rich copy selects and copies.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from litestar import Request, Response, get
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from app.cards import cards, carried
from app.cards.types import Card
from app.config import Settings, SettingsDep
from app.console.web import page
from app.db import DatabaseDep

BACKGROUNDS = [("1920x1080", "left"), ("1920x1080", "right"), ("1280x720", "left"), ("1280x720", "right")]


def links_of(settings: Settings, card: Card) -> dict:
    """What the card page offers to carry the card (plain data for console/cards/show.html):
    the wallet buttons only when that wallet is configured (the routes answer 404 otherwise)."""
    base = f"/app/cards/{card.card_id}"
    return {
        "signature": f"{base}/signature",
        "backgrounds": [
            {"href": f"{base}/background.png?size={size}&layout={layout}", "size": size.replace("x", " × "), "layout": layout}
            for size, layout in BACKGROUNDS
        ],
        "card_pdf": f"{base}/print.pdf?layout=card",
        "sheet_pdf": f"{base}/print.pdf?layout=sheet",
        "apple_wallet": f"{settings.public_base_url}/p/{card.slug}.pkpass" if settings.apple_wallet else None,
        "google_wallet": f"{settings.public_base_url}/p/{card.slug}/google-wallet" if settings.google_wallet else None,
    }


def preview_policy(base_url: str) -> str:
    parts = urlsplit(base_url)
    return (
        f"default-src 'none'; img-src {parts.scheme}://{parts.netloc}; style-src 'unsafe-inline'; "
        "form-action 'none'; frame-ancestors 'self'; sandbox"
    )


@get("/cards/{cardId:str}/signature")
async def signature_page(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    look = await carried.look_of(request.app.state, card, with_logo=False)
    made = carried.signature_of(settings, card, look)
    return page(request, "console/cards/signature.html", section="cards", card=card, signature=made,
                preview_url=f"/app/cards/{card.card_id}/signature/preview")


@get("/cards/{cardId:str}/signature/preview")
async def signature_preview(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> Template:
    """The signature alone as a page: what the preview frame shows and what a browser copies."""
    card = await cards.card_of(db, request.user.user_id, cardId)
    look = await carried.look_of(request.app.state, card, with_logo=False)
    made = carried.signature_of(settings, card, look)
    return Template("console/cards/signature_preview.html", context={"signature": made}, headers={
        "Content-Security-Policy": preview_policy(settings.public_base_url),
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
    })


@get("/cards/{cardId:str}/background.png")
async def background(
    request: Request,
    cardId: FromPath[str],
    db: DatabaseDep,
    settings: SettingsDep,
    size: Annotated[carried.BackgroundSize, QueryParameter()] = "1920x1080",
    layout: Annotated[carried.Layout, QueryParameter()] = "right",
) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    png = await carried.background_of(request.app.state, settings, card, size, layout)
    return Response(png, media_type="image/png", headers={
        "Content-Disposition": f'attachment; filename="{card.slug}-background-{size}-{layout}.png"',
        "Cache-Control": "private, max-age=60",
    })


@get("/cards/{cardId:str}/print.pdf")
async def print_pdf(
    request: Request,
    cardId: FromPath[str],
    db: DatabaseDep,
    settings: SettingsDep,
    layout: Annotated[carried.PrintLayout, QueryParameter()] = "card",
) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    pdf = await carried.print_of(request.app.state, settings, card, layout)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{card.slug}-{layout}.pdf"', "Cache-Control": "private, max-age=60",
    })


handlers = [signature_page, signature_preview, background, print_pdf]
