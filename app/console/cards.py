"""The cards pages: list with search, create, edit, the card with its QR downloads, delete."""

from __future__ import annotations

from litestar import Request, Response, get

from app.console.web import page


@get("/cards")
async def cards_list(request: Request) -> Response:
    return page(request, "console/cards/list.html", section="cards", cards=[])


handlers = [cards_list]
