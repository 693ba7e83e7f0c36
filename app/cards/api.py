"""The cards API (SPEC §5): create, list, read, edit and delete the caller's cards, and
download their QR codes. Each handler parses, calls an operation of app/cards/cards.py and
shapes the answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from litestar import Request, Response, Router, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from app import qr
from app.api import pagination
from app.api.openapi import BINARY, media_types
from app.api.problems import AUTHENTICATED, BODY, WRITE, problems
from app.config import SettingsDep
from app.db import DatabaseDep

if TYPE_CHECKING:
    pass  # which imports this module
from app.cards.cards import create_card, delete_card, edit_card, owned_card, qr_download, to_response
from app.cards.store import list_cards
from app.cards.types import COLOUR, PRINT_MM, QR_SIZES, CardPage, ContactCard, CreateCardRequest, QrOptions, UpdateCardRequest


@post(
    "/", operation_id="createCard", summary="Create a contact card", status_code=201,
    responses=problems(*AUTHENTICATED, *BODY, *WRITE, 409),
)
async def create_card_handler(
    request: Request, data: JSONBody[CreateCardRequest], db: DatabaseDep, settings: SettingsDep
) -> ContactCard:
    card = await create_card(db, request.app.state.public_cards, request.user.user_id, data, admin=request.user.is_admin)
    return await to_response(card, request.app.state, settings)


@get("/", operation_id="listCards", summary="The caller's cards, newest first", responses=problems(*AUTHENTICATED, 400, 422))
async def get_cards(
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    limit: pagination.Limit = pagination.DEFAULT_LIMIT,
    cursor: pagination.Cursor = None,
) -> CardPage:
    async with db.read() as conn:
        rows = await list_cards(conn, request.user.user_id, limit + 1, pagination.before(cursor))
    page, next_cursor = pagination.page_of(rows, limit, lambda card: card.id)
    items = [await to_response(card, request.app.state, settings) for card in page]
    return CardPage(items=items, next_cursor=next_cursor)


# Path parameters are named as the API documents them (SPEC §5: {cardId}), camelCase like
# the bodies, and Litestar hands a path parameter to the argument of the same name.
@get("/{cardId:str}", operation_id="getCard", summary="One of the caller's cards", responses=problems(*AUTHENTICATED, 400, 404))
async def read_card(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> ContactCard:
    return await to_response(await owned_card(db, request, cardId), request.app.state, settings)


@patch(
    "/{cardId:str}", operation_id="updateCard", summary="Change some fields of a card",
    responses=problems(*AUTHENTICATED, *BODY, *WRITE, 404),
)
async def edit_card_handler(
    request: Request, cardId: FromPath[str], data: JSONBody[UpdateCardRequest], db: DatabaseDep, settings: SettingsDep
) -> ContactCard:
    card = await owned_card(db, request, cardId)
    card = await edit_card(db, request.app.state.public_cards, card, data, admin=request.user.is_admin)
    return await to_response(card, request.app.state, settings)


@delete(
    "/{cardId:str}", operation_id="deleteCard", summary="Delete a card; its slug is retired", status_code=204,
    responses=problems(*AUTHENTICATED, *WRITE, 400, 404),
)
async def delete_card_handler(request: Request, cardId: FromPath[str], db: DatabaseDep) -> None:
    await delete_card(db, request.app.state.public_cards, await owned_card(db, request, cardId))


@get(
    "/{cardId:str}/qr",
    operation_id="getCardQr",
    summary="The card's QR code as PNG, SVG, PDF or EPS",
    media_type="application/octet-stream",
    operation_class=media_types(200, {media_type: BINARY for media_type in qr.MEDIA_TYPES.values()}),
    responses=problems(*AUTHENTICATED, 400, 404, 422),
    response_headers=[ResponseHeader(
        name="X-Left-Out", documentation_only=True, required=False,
        description="mode=static: the card's fields the code leaves out to fit its level, comma-separated (absent when all fit)",
    )],
)
async def card_qr(
    request: Request,
    cardId: FromPath[str],
    db: DatabaseDep,
    settings: SettingsDep,
    format: FromQuery[qr.Format] = "png",
    size: Annotated[
        int | None, QueryParameter(ge=QR_SIZES.ge, le=QR_SIZES.le, description="pixels (PNG, SVG); the card's qrSize by default")
    ] = None,
    ecc: Annotated[qr.Ecc | None, QueryParameter(description="error correction; the card's level by default")] = None,
    mode: FromQuery[qr.Mode] = "dynamic",
    dark: Annotated[
        str | None, QueryParameter(pattern=COLOUR, description="hex colour of the dark modules; the team's qrDark, else black")
    ] = None,
    light: Annotated[
        str | None, QueryParameter(pattern=COLOUR, description="hex colour of the light modules; the team's qrLight, else white")
    ] = None,
    border: Annotated[int, QueryParameter(ge=0, le=32, description="minimum quiet zone, in modules")] = 4,
    logo: Annotated[bool | None, QueryParameter(
        description="the card's logo (else the team's) in the centre, at error correction H (PNG, SVG); the team's logoOnCodes by default"
    )] = None,
    mm: Annotated[
        int | None, QueryParameter(ge=10, le=1000, description=f"PDF and EPS: the printed side in millimetres, {PRINT_MM} by default")
    ] = None,
) -> Response[bytes]:
    card = await owned_card(db, request, cardId)
    options = QrOptions(format=format, size=size, ecc=ecc, mode=mode, dark=dark, light=light, border=border, logo=logo, mm=mm)
    image, media_type, filename, left_out = await qr_download(request.app.state, settings, card, options)
    headers = {"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "private, max-age=60"}
    if left_out:
        headers["X-Left-Out"] = ", ".join(left_out)
    return Response(image, media_type=media_type, headers=headers)


router = Router(
    "/cards",
    route_handlers=[create_card_handler, get_cards, read_card, edit_card_handler, delete_card_handler, card_qr],
    tags=["cards"],
)
