"""The cards pages: the list with search, create and edit with a live preview (and the
photo and logo uploads), the card with its QR downloads, the card's code full screen for
showing it in person, and delete with a confirmation.
Writes go through the same operations as the API (cards.create_card, edit_card,
delete_card, qr_download; card_images.set_image, delete_image). The card form's fields
and how a submitted form is read (its rows of phones, emails, ...) are
app/console/card_form.py.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException
from litestar.params import FromPath, QueryParameter

from app.brand import brand
from app.brand.types import Stored
from app.cards import card_images, cards, search
from app.cards.types import IMAGE_MAX_BYTES as MAX_BYTES
from app.cards.types import PRINT_MM, Card, CreateCardRequest, ImageKind, QrOptions, UpdateCardRequest
from app.config import Settings, SettingsDep
from app.console import carried
from app.console.card_form import (
    ECC_CHOICES,
    FIELDS,
    HEADLINE,
    LABELS,
    LISTS,
    MORE_FIELDS,
    NAME_PARTS,
    SINGLE,
    SLUG,
    WHOLE_PIXELS,
    domain_errors,
    left_out,
    read_card_form,
    request_body,
    rows_changed,
    values_of,
    with_empty_rows,
)
from app.console.web import form_of, page, page_off_loop, see_other, sentence
from app.db import DatabaseDep, isoformat
from app.errors import Conflict, Invalid, TooLarge, Unsupported
from app.events.events import latest_event

PER_PAGE = 24


# --- the card form's page ------------------------------------------------------------


async def _form_page(
    request: Request, *, card: Card | None, values: dict, errors: dict, status: int = 200, image_errors: dict | None = None,
) -> Response:
    team = await brand.current(request.app.state.db)
    # What the team locks is read-only for members (SPEC §10): the inputs by name, the lists whole.
    locked = set() if request.user.is_admin else {field for field in team.locked_fields if field != "addresses"}
    if card is None and not values.get("organization") and not values.get("fullName"):
        values = with_team_defaults(values, team)
    images = {
        kind: {"label": kind.title(), "thumbnail": cards.image_path(card, kind, thumbnail=True)} for kind in IMAGE_KINDS
    } if card else {}
    return page(
        request, "console/cards/form.html", status=status, section="cards", card=card, values=with_empty_rows(values),
        errors=errors, fields=FIELDS, more_fields=MORE_FIELDS, headline=HEADLINE, name_parts=NAME_PARTS, lists=LISTS,
        slug_field=SLUG, ecc_choices=ECC_CHOICES, labels=LABELS,
        name_open=any(values.get(f.name) or f.name in errors for f in NAME_PARTS),
        images=images, image_errors=image_errors or {}, locked=locked,
        locked_lists={"addresses"} if "addresses" in team.locked_fields and not request.user.is_admin else set(),
        team_logo="/app/team/brand/logo.jpg" if team.logo_hash else None,
    )


def with_team_defaults(values: dict, team: Stored) -> dict:
    """A new card's form filled with what the team's defaults give it."""
    defaults, filled = team.defaults, dict(values)
    filled["organization"] = defaults.organization or ""
    if defaults.phone:
        filled["phones"] = [{"number": defaults.phone, "type": "work", "ext": ""}]
    if defaults.website:
        filled["links"] = [{"url": defaults.website, "label": "Website"}]
    if defaults.address is not None:
        address = defaults.address
        filled["addresses"] = [{"type": address.type, "street": address.street, "locality": address.locality,
                                "region": address.region, "postalCode": address.postal_code, "country": address.country}]
    return filled


IMAGE_KINDS: tuple[ImageKind, ...] = ("photo", "logo")
# What an upload's refusal says, by the error's code (app/cards/images.py).
IMAGE_SAID = {
    "image_type": "Choose a JPEG, PNG or WebP picture. Other kinds (SVG, GIF, HEIC) cannot be used: "
                  "export or screenshot it as JPEG or PNG first.",
    "image_too_large": "That picture is larger than 10 MB. Choose a smaller one.",
    "image_too_many_pixels": "That picture has too many pixels (over 50 million). Choose a smaller one.",
    "image_damaged": "That picture could not be read: it may be incomplete or damaged. Try another.",
    "locked_field": "Your team sets the logo (Team › Brand): it cannot be changed here.",
}


# --- handlers ------------------------------------------------------------------------


@get("/cards")
async def cards_list(
    request: Request,
    db: DatabaseDep,
    q: Annotated[str, QueryParameter(max_length=1000)] = "",
    page_number: Annotated[int, QueryParameter(name="page", ge=1, le=1_000_000)] = 1,
) -> Response:
    query = q.strip()[:200]
    since = isoformat(db.now() - timedelta(days=7))
    async with db.read() as conn:
        rows, total = await search.search_cards(conn, request.user.user_id, query, PER_PAGE, (page_number - 1) * PER_PAGE)
        weekly = await search.scans_since(conn, [row["id"] for row in rows], since)
    counters = request.app.state.counters
    tiles = [
        {
            **row,
            "qr_url": f"/app/cards/{row['card_id']}/qr?format=svg&size=128&border=2",
            "scans_this_week": weekly.get(row["id"], 0) + counters.pending(row["card_id"])[0],
        }
        for row in rows
    ]
    pages = max(1, math.ceil(total / PER_PAGE))
    return await page_off_loop(request, "console/cards/list.html", section="cards", cards=tiles, query=query, total=total,
                                page_number=page_number, pages=pages)


@get("/cards/new")
async def new_card_form(request: Request) -> Response:
    values = {f.name: "" for f in (*SINGLE, *MORE_FIELDS, HEADLINE, *NAME_PARTS)} | {
        "slug": "", "qrErrorCorrection": "M", "qrSize": "512",
    } | {listed.name: [] for listed in LISTS}
    return await _form_page(request, card=None, values=values, errors={})


@post("/cards/new")
async def new_card(request: Request, db: DatabaseDep) -> Response:
    form = await form_of(request)
    values, errors = read_card_form(form, with_slug=True)
    if rows_changed(form, values):
        return await _form_page(request, card=None, values=values, errors={})
    if not errors:
        try:
            card = await cards.create_card(
                db, request.app.state.public_cards, request.user.user_id, request_body(values, None, CreateCardRequest),
                admin=request.user.is_admin,
            )
        except (Invalid, Conflict) as exc:
            errors = domain_errors(exc)
        else:
            return see_other(f"/app/cards/{card.card_id}", flash="card-created")
    return await _form_page(request, card=None, values=values, errors=errors, status=422)


@get("/cards/{cardId:str}/edit")
async def edit_card_form(request: Request, cardId: FromPath[str], db: DatabaseDep) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    return await _form_page(request, card=card, values=values_of(card), errors={})


@post("/cards/{cardId:str}/edit")
async def edit_card(request: Request, cardId: FromPath[str], db: DatabaseDep) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    form = await form_of(request)
    values, errors = read_card_form(form, with_slug=False)
    if rows_changed(form, values):
        return await _form_page(request, card=card, values={**values, "slug": card.slug}, errors={})
    if not errors:
        try:
            await cards.edit_card(
                db, request.app.state.public_cards, card, request_body(values, card, UpdateCardRequest), admin=request.user.is_admin
            )
        except (Invalid, Conflict) as exc:
            errors = domain_errors(exc)
        else:
            return see_other(f"/app/cards/{card.card_id}", flash="card-saved")
    return await _form_page(request, card=card, values={**values, "slug": card.slug}, errors=errors, status=422)


def _download_defaults(card: Card, team: Stored) -> dict[str, str]:
    """The download panel as it starts: the card's size and level, the team's code colours."""
    return {"format": "png", "size": str(card.qr_size), "ecc": card.qr_error_correction, "mode": "dynamic",
            "dark": team.qr_dark, "light": team.qr_light, "border": "4", "logo": "", "mm": str(PRINT_MM)}


def _card_page(
    request: Request, settings: Settings, card: Card, *, download: dict, errors: dict, status: int = 200,
    live_after: str | None = None,
) -> Response:
    scans, views, saves = request.app.state.counters.pending(card.card_id)
    return page(
        request, "console/cards/show.html", status=status, section="cards", card=card,
        short_url=cards.short_url(settings, card.slug), card_url=f"{settings.public_base_url}/p/{card.slug}",
        nfc_url=cards.short_url(settings, card.slug) + "?src=nfc",
        scan_count=card.scan_count + scans, view_count=card.view_count + views, save_count=card.save_count + saves,
        download=download, errors=errors, ecc_choices=ECC_CHOICES, left_out=left_out(card),
        preview_query=urlencode({k: v for k, v in download.items() if v} | {"format": "png", "size": "256"}),
        live_after=live_after, carry=carried.links_of(settings, card),
    )


@get("/cards/{cardId:str}")
async def card_page(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> Response:
    live_after = await latest_event(db)  # before the counts: the page's script follows the events after it
    card = await cards.card_of(db, request.user.user_id, cardId)
    download = _download_defaults(card, await brand.current(db))
    return _card_page(request, settings, card, download=download, errors={}, live_after=live_after)


# The code as the "Show it in person" page draws it: the dynamic code (the short link), dark on
# white whatever the card's download colours, large enough for a phone's screen at 3x.
PRESENT_QR = "format=png&size=1024&border=4&dark=%23000000&light=%23ffffff"
# Where the page's "Done" goes back to: the cards list (from its tiles), or the card's page.
PRESENT_FROM = {"list": "/app/cards", "card": "/app/cards/{card_id}"}


@get("/cards/{cardId:str}/show")
async def present_card(
    request: Request,
    cardId: FromPath[str],
    db: DatabaseDep,
    settings: SettingsDep,
    came_from: Annotated[str, QueryParameter(name="from", max_length=1000)] = "list",
) -> Response:
    """SPEC §8 "Show it in person": the card's code full screen, for a phone held up to another."""
    card = await cards.card_of(db, request.user.user_id, cardId)
    back = PRESENT_FROM.get(came_from, PRESENT_FROM["list"]).format(card_id=card.card_id)
    return page(
        request, "console/cards/present.html", section="cards", card=card, short_url=cards.short_url(settings, card.slug),
        qr_url=f"/app/cards/{card.card_id}/qr?{PRESENT_QR}", back=back,
    )


@get("/cards/{cardId:str}/qr")
async def card_qr(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> Response:
    """The download panel's GET form: the card's code drawn as asked, through the API's own code path."""
    card = await cards.card_of(db, request.user.user_id, cardId)
    defaults = _download_defaults(card, await brand.current(db))
    asked = {key: value.strip() for key, value in request.query_params.items() if key in defaults}
    download = defaults | asked
    errors: dict[str, str] = {}
    try:
        options = msgspec.convert({k: v for k, v in asked.items() if v != ""}, QrOptions, strict=False)
        image, media_type, filename, _ = await cards.qr_download(request.app.state, settings, card, options)
    except msgspec.ValidationError as exc:
        field = str(exc).rpartition("$.")[2].rstrip("`") or "form"
        errors[field] = {
            "size": WHOLE_PIXELS,
            "border": "Enter a whole number of modules from 0 to 32",
            "mm": "Enter a whole number of millimetres from 10 to 1000",
            "dark": "Choose a colour like #1a2b3c", "light": "Choose a colour like #ffffff",
        }.get(field, "Choose one of the options")
    except Invalid as exc:
        errors = domain_errors(exc)
    if errors:
        return _card_page(request, settings, card, download=download, errors=errors, status=422)
    return Response(
        image, media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "private, max-age=60"},
    )


@get("/cards/{cardId:str}/delete")
async def delete_card_form(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    return page(request, "console/cards/delete.html", section="cards", card=card, short_url=cards.short_url(settings, card.slug))


@post("/cards/{cardId:str}/delete")
async def delete_card(request: Request, cardId: FromPath[str], db: DatabaseDep) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    await cards.delete_card(db, request.app.state.public_cards, card)
    return see_other("/app/cards", flash="card-deleted")


# The body of an upload: the picture, the CSRF token and the multipart framing, with room
# for a picture somewhat over the limit, so that its refusal is said on the edit page.
# Past this, the CSRF check (which reads the form first) answers the 413 error page.
UPLOAD_BODY = MAX_BYTES + 2 * 1024 * 1024


async def _uploaded(request: Request) -> bytes | None:
    """The file of an upload form, None when none was chosen. Raises TooLarge (past UPLOAD_BODY)."""
    try:
        form = await request.form()
    except ClientException as exc:
        if exc.status_code == 413:
            raise TooLarge("the image is larger than 10 MB", code="image_too_large") from None
        raise
    upload = form.get("image")
    if not isinstance(upload, UploadFile):
        return None
    data = await upload.read()
    return data or None


def _image_handlers(kind: ImageKind) -> list:
    @post(f"/cards/{{cardId:str}}/{kind}", request_max_body_size=UPLOAD_BODY, name=f"upload-{kind}")
    async def upload_image(request: Request, cardId: FromPath[str], db: DatabaseDep) -> Response:
        card = await cards.card_of(db, request.user.user_id, cardId)
        try:
            data = await _uploaded(request)
            if data is None:
                message = "Choose a picture to upload first."
            else:
                await card_images.set_image(db, request.app.state.public_cards, card, kind, data, admin=request.user.is_admin)
                return see_other(f"/app/cards/{card.card_id}/edit", flash=f"{kind}-saved")
        except (TooLarge, Unsupported, Invalid) as exc:
            message = IMAGE_SAID.get(exc.code or "", sentence(exc.message))
        return await _form_page(request, card=card, values=values_of(card), errors={}, image_errors={kind: message}, status=422)

    @post(f"/cards/{{cardId:str}}/{kind}/delete", name=f"remove-{kind}")
    async def remove_image(request: Request, cardId: FromPath[str], db: DatabaseDep) -> Response:
        card = await cards.card_of(db, request.user.user_id, cardId)
        try:
            await card_images.delete_image(db, request.app.state.public_cards, card, kind, admin=request.user.is_admin)
        except Invalid as exc:
            message = IMAGE_SAID.get(exc.code or "", sentence(exc.message))
            return await _form_page(request, card=card, values=values_of(card), errors={}, image_errors={kind: message}, status=422)
        return see_other(f"/app/cards/{card.card_id}/edit", flash=f"{kind}-removed")

    return [upload_image, remove_image]


handlers = [
    cards_list, new_card_form, new_card, edit_card_form, edit_card, card_page, present_card, card_qr, delete_card_form, delete_card,
    *_image_handlers("photo"), *_image_handlers("logo"),
]
