"""The invitations pages: every invitation the account sent, and one card's, with where each
stands in the funnel (sent → opened → clicked → joined), newest first, a page at a time."""

from __future__ import annotations

from litestar import Request, Response, get
from litestar.params import FromPath

from app.api import pagination
from app.cards import cards, store
from app.console.web import page
from app.db import DatabaseDep
from app.sharing import sharing

PER_PAGE = 50


def _paged(rows: list, path: str) -> tuple[list[dict], str | None]:
    items, cursor = pagination.page_of(rows, PER_PAGE, lambda row: row["id"])
    return [dict(row) for row in items], f"{path}?cursor={cursor}" if cursor else None


@get("/invitations")
async def all_invitations(request: Request, db: DatabaseDep, cursor: pagination.Cursor = None) -> Response:
    async with db.read() as conn:
        rows = await sharing.list_sender_invitations(conn, request.user.user_id, PER_PAGE + 1, pagination.before(cursor))
        has_cards = bool(rows) or bool(await store.list_cards(conn, request.user.user_id, 1, pagination.before(None)))
    invitations, older = _paged(rows, "/app/invitations")
    return page(
        request, "console/invitations/list.html", section="invitations", card=None, invitations=invitations,
        older=older, first_page=cursor is None, has_cards=has_cards, here="/app/invitations",
    )


@get("/cards/{cardId:str}/invitations")
async def card_invitations(request: Request, cardId: FromPath[str], db: DatabaseDep, cursor: pagination.Cursor = None) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    async with db.read() as conn:
        rows = await sharing.list_invitations(conn, card, PER_PAGE + 1, pagination.before(cursor))
    invitations, older = _paged(rows, f"/app/cards/{card.card_id}/invitations")
    return page(
        request, "console/invitations/list.html", section="cards", card=card, invitations=invitations,
        older=older, first_page=cursor is None, has_cards=True, here=f"/app/cards/{card.card_id}/invitations",
    )


handlers = [all_invitations, card_invitations]
