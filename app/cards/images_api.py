"""The card's photo and logo in the API (SPEC §8): PUT the image as the request body,
DELETE to remove it; both answer 200 with the card, as PATCH does (a photo removed is an
edit of the card, not the card gone). Owner-only, as editing the card."""

from __future__ import annotations

import dataclasses

from litestar import Request, Router, delete, put
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, Operation, RequestBody
from litestar.params import FromPath

from app.api.openapi import BINARY
from app.api.problems import AUTHENTICATED, PROBLEM_MEDIA_TYPE, WRITE, Problem, problems
from app.cards.card_images import delete_image, set_image
from app.cards.cards import owned_card, to_response
from app.cards.types import IMAGE_MAX_BYTES as MAX_BYTES
from app.cards.types import IMAGE_MEDIA_TYPES as MEDIA_TYPES
from app.cards.types import ContactCard, ImageKind
from app.config import SettingsDep
from app.db import DatabaseDep
from app.errors import TooLarge, Unsupported

UPLOAD_PROBLEMS = {
    **problems(*AUTHENTICATED, *WRITE, 400, 404),
    413: ResponseSpec(
        Problem, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False,
        description="The body is over 10 MB, or the image over 50 million pixels (a decompression bomb)",
    ),
    415: ResponseSpec(
        Problem, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False,
        description="Not sent as image/jpeg, image/png or image/webp, or not really one of them (SVG, GIF, HEIC, text)",
    ),
    422: ResponseSpec(Problem, media_type=PROBLEM_MEDIA_TYPE, generate_examples=False,
                      description="The image is truncated or damaged, or the team has locked the logo"),
}


@dataclasses.dataclass
class ImageUpload(Operation):
    """The operation with its request body: the image itself, in one of the three media types."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            content={media_type: OpenAPIMediaType(schema=BINARY) for media_type in MEDIA_TYPES},
            required=True,
            description="The image, at most 10 MB: JPEG, PNG or WebP",
        )


async def image_upload(request: Request) -> bytes:
    """An uploaded image's bytes, refused before they are read when its type or declared
    length will not do (415, 413); the card's and the team's image uploads both read it here."""
    if request.content_type[0].lower() not in MEDIA_TYPES:
        raise Unsupported("send the image as image/jpeg, image/png or image/webp", code="image_type")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BYTES:  # said before any of it is read
        raise TooLarge("the image is larger than 10 MB", code="image_too_large")
    return await request.body()  # 413 past request_max_body_size (a chunked body)


def handlers_for(kind: ImageKind) -> list:
    title = kind.title()

    @put(
        f"/{{cardId:str}}/{kind}", operation_id=f"put{title}", summary=f"Set the card's {kind} (the body is the image)",
        operation_class=ImageUpload, request_max_body_size=MAX_BYTES, responses=UPLOAD_PROBLEMS,
    )
    async def put_image(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> ContactCard:
        card = await owned_card(db, request, cardId)
        upload = await image_upload(request)
        card = await set_image(db, request.app.state.public_cards, card, kind, upload, admin=request.user.is_admin)
        return await to_response(card, request.app.state, settings)

    @delete(
        f"/{{cardId:str}}/{kind}", operation_id=f"delete{title}", summary=f"Remove the card's {kind}",
        status_code=200, responses=problems(*AUTHENTICATED, *WRITE, 400, 404, 422),
    )
    async def delete_image_handler(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> ContactCard:
        card = await delete_image(
            db, request.app.state.public_cards, await owned_card(db, request, cardId), kind, admin=request.user.is_admin
        )
        return await to_response(card, request.app.state, settings)

    return [put_image, delete_image_handler]


router = Router("/cards", route_handlers=[*handlers_for("photo"), *handlers_for("logo")], tags=["cards"])
