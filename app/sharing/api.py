"""The sharing API (SPEC §4): share a card, list a card's invitations; and the tracked
links people follow, /i/{token} and the email's open pixel. Each handler parses, calls an
operation of app/sharing/sharing.py and shapes the answer."""

from __future__ import annotations

from litestar import Request, Response, Router, get, post, route
from litestar.params import FromPath, JSONBody

from app.api import pagination
from app.api.openapi import BINARY, HTML_PAGE, media_types
from app.api.problems import AUTHENTICATED, BODY, WRITE, problems
from app.cards import cards
from app.config import SettingsDep
from app.db import DatabaseDep
from app.public import answers, bots, pages
from app.sharing.sharing import (
    PIXEL,
    Invitation,
    InvitationPage,
    ShareRequest,
    ShareResponse,
    invitation_for_token,
    list_invitations,
    record_click,
    record_open,
    share,
)


@post(
    "/cards/{cardId:str}/share", operation_id="shareCard", summary="Share a card by email, SMS, WhatsApp or LinkedIn",
    status_code=202, responses=problems(*AUTHENTICATED, *BODY, *WRITE, 404),
)
async def share_card(
    request: Request, cardId: FromPath[str], data: JSONBody[ShareRequest], db: DatabaseDep, settings: SettingsDep
) -> ShareResponse:
    card = await cards.owned_card(db, request, cardId)
    shared = await share(db, request.app.state.outbox, settings, card, request.user.user_id, data.recipients, data.message)
    return ShareResponse(invitations=shared)


@get(
    "/cards/{cardId:str}/invitations", operation_id="listCardInvitations",
    summary="The card's invitations and where each is in the funnel", responses=problems(*AUTHENTICATED, 400, 404, 422),
)
async def card_invitations(
    request: Request,
    cardId: FromPath[str],
    db: DatabaseDep,
    limit: pagination.Limit = pagination.DEFAULT_LIMIT,
    cursor: pagination.Cursor = None,
) -> InvitationPage:
    card = await cards.owned_card(db, request, cardId)
    async with db.read() as conn:
        rows = await list_invitations(conn, card, limit + 1, pagination.before(cursor))
    page, next_cursor = pagination.page_of(rows, limit, lambda row: row["id"])
    return InvitationPage(
        items=[Invitation(**{k: row[k] for k in row.keys() if k != "id"}) for row in page], next_cursor=next_cursor
    )


router = Router("/", route_handlers=[share_card, card_invitations], tags=["sharing"])


@route(
    "/i/{token:str}", http_method=["GET", "HEAD"], operation_id=answers.operation_ids("followInvitation"),
    summary="Follow an invitation's tracked link to the card page", tags=["public"],
    status_code=302, operation_class=media_types(302, {}), responses={**problems(400), 404: HTML_PAGE},
)
async def follow_invitation(request: Request, token: FromPath[str], db: DatabaseDep) -> Response:
    async with db.read() as conn:
        found = await invitation_for_token(conn, token)
    if found is None:
        return pages.message_page(404, "No such invitation", "This invitation link is not valid.")
    # Only the first counted click writes: repeats and bots never take the writer.
    if found["clicked_at"] is None and bots.countable(request):
        await record_click(db, found)
    # The page's view (and a save from it) counts with the source `share` (answers.page_path).
    location = answers.page_path(found["slug"], "share")
    return Response(b"", status_code=302, headers={"Location": location, "Cache-Control": "no-store"})


@route(
    "/i/{token:str}/open.gif", http_method=["GET", "HEAD"], operation_id=answers.operation_ids("invitationOpened"),
    summary="The email's 1×1 image: marks the invitation opened", tags=["public"],
    operation_class=media_types(200, {"image/gif": BINARY}), responses=problems(400),
)
async def invitation_opened(request: Request, token: FromPath[str], db: DatabaseDep) -> Response:
    if bots.countable_open(request):
        async with db.read() as conn:
            found = await invitation_for_token(conn, token)
        if found is not None and found["opened_at"] is None:
            await record_open(db, found)
    # The same image whatever the token: it tells nothing about which tokens exist.
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store, private"})


tracking_handlers = [follow_invitation, invitation_opened]
