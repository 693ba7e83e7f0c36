"""The team brand in the API (SPEC §10): `GET|PUT /v1/team/brand` and the team logo,
`GET|PUT|DELETE /v1/team/brand/logo` (the body of PUT is the image, as for a card's logo).
Any signed-in member reads it; only an admin changes it."""

from __future__ import annotations

from litestar import Request, Response, Router, delete, get, put
from litestar.params import JSONBody

from app.api.guards import require_admin
from app.api.openapi import BINARY, media_types
from app.api.problems import AUTHENTICATED, BODY, WRITE, problems
from app.brand import brand, store
from app.brand.types import Brand, BrandRequest, Stored
from app.cards.images_api import UPLOAD_PROBLEMS, ImageUpload, image_upload
from app.cards.types import IMAGE_MAX_BYTES as MAX_BYTES
from app.config import SettingsDep
from app.db import DatabaseDep
from app.errors import NotFound

ADMIN = (*AUTHENTICATED, 403)


def to_response(stored: Stored, base_url: str) -> Brand:
    return Brand(
        name=stored.name, accent_color=stored.accent_color, qr_dark=stored.qr_dark, qr_light=stored.qr_light,
        logo_on_codes=stored.logo_on_codes, locked_fields=list(stored.locked_fields), defaults=stored.defaults,
        logo_url=f"{base_url}/v1/team/brand/logo?v={stored.logo_hash}" if stored.logo_hash else None,
        updated_at=stored.updated_at,
    )


@get("/", operation_id="getTeamBrand", summary="The team's brand", responses=problems(*AUTHENTICATED))
async def get_brand(db: DatabaseDep, settings: SettingsDep) -> Brand:
    return to_response(await brand.current(db), settings.public_base_url)


@put(
    "/", operation_id="putTeamBrand", summary="Replace the team's brand (admin); every card wears it at once",
    description="422 names the field: a colour not #rrggbb, qrDark and qrLight below 3:1, an unknown locked field.",
    guards=[require_admin], responses=problems(*ADMIN, *BODY, *WRITE),
)
async def put_brand(request: Request, data: JSONBody[BrandRequest], db: DatabaseDep, settings: SettingsDep) -> Brand:
    stored = await brand.update_brand(db, request.app.state.public_cards, data, request.user.user_id)
    return to_response(stored, settings.public_base_url)


@get(
    "/logo", operation_id="getTeamLogo", summary="The team logo (a square JPEG of at most 512 px)",
    media_type="image/jpeg", operation_class=media_types(200, {"image/jpeg": BINARY}),
    responses=problems(*AUTHENTICATED, 404),
)
async def get_logo(db: DatabaseDep) -> Response[bytes]:
    async with db.read() as conn:
        found = await store.logo_bytes(conn, False)
    if found is None:
        raise NotFound("the team has no logo")
    return Response(found[1], media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})


@put(
    "/logo", operation_id="putTeamLogo", summary="Set the team logo (admin; the body is the image)",
    operation_class=ImageUpload, request_max_body_size=MAX_BYTES, guards=[require_admin],
    responses={**UPLOAD_PROBLEMS, **problems(403)},
)
async def put_logo(request: Request, db: DatabaseDep, settings: SettingsDep) -> Brand:
    stored = await brand.set_logo(db, request.app.state.public_cards, await image_upload(request))
    return to_response(stored, settings.public_base_url)


@delete(
    "/logo", operation_id="deleteTeamLogo", summary="Remove the team logo (admin)", status_code=200,
    guards=[require_admin], responses=problems(*ADMIN, *WRITE),
)
async def delete_logo(request: Request, db: DatabaseDep, settings: SettingsDep) -> Brand:
    stored = await brand.delete_logo(db, request.app.state.public_cards)
    return to_response(stored, settings.public_base_url)


router = Router("/team/brand", route_handlers=[get_brand, put_brand, get_logo, put_logo, delete_logo], tags=["team"])
