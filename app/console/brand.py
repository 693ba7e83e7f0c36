"""Team › Brand (admins only; SPEC §10): the team's name, colours, code colours, logo on
codes, the defaults new cards start with and the fields members cannot change, with the
team logo's upload. Every change is an operation of app/brand/brand.py; the page says
each refusal next to its field.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request, Response, get, post

from app.brand import brand, store
from app.brand.types import LOCKABLE, BrandRequest, Stored
from app.console.cards import IMAGE_SAID, UPLOAD_BODY
from app.console.cards import _uploaded as uploaded_image
from app.console.team import _admin_only
from app.console.web import form_of, page, see_other, sentence
from app.db import DatabaseDep
from app.errors import Invalid, NotFound, TooLarge, Unsupported

COLOURS = ("accentColor", "qrDark", "qrLight")
ADDRESS = ("street", "locality", "region", "postalCode", "country")
LABELS = {
    "name": "Team name", "accentColor": "Accent colour", "qrDark": "Code colour", "qrLight": "Code background",
    "organization": "Organization", "website": "Website", "phone": "Main phone", "street": "Street",
    "locality": "City", "region": "Region", "postalCode": "Postal code", "country": "Country",
}
LOCK_LABELS = {
    "organization": "Organization", "website": "Website", "phone": "Main phone", "addresses": "Address",
    "department": "Department", "accentColor": "Accent colour", "logo": "Logo",
}
COLOUR_SAID = "Choose a colour like #1a56db"


def values_of(stored: Stored) -> dict[str, Any]:
    address = stored.defaults.address
    return {
        "name": stored.name or "", "accentColor": stored.accent_color or "", "qrDark": stored.qr_dark,
        "qrLight": stored.qr_light, "logoOnCodes": stored.logo_on_codes, "locked": set(stored.locked_fields),
        "organization": stored.defaults.organization or "", "website": stored.defaults.website or "",
        "phone": stored.defaults.phone or "",
        **{part: getattr(address, re.sub(r"([A-Z])", r"_\1", part).lower()) if address else "" for part in ADDRESS},
    }


def read_form(form: dict[str, str]) -> tuple[dict[str, Any], BrandRequest | None, dict[str, str]]:
    """The form's values, the request they make (None when one is wrong) and what is wrong, by field."""
    values: dict[str, Any] = {name: form.get(name, "").strip() for name in (*LABELS, *COLOURS)}
    values["logoOnCodes"] = form.get("logoOnCodes") == "yes"
    values["locked"] = {field for field in LOCKABLE if form.get(f"lock-{field}") == "yes"}
    errors = {name: COLOUR_SAID for name in COLOURS if values[name] and not re.fullmatch(r"#[0-9a-fA-F]{6}", values[name])}
    for name in ("qrDark", "qrLight"):
        if not values[name]:
            errors[name] = COLOUR_SAID
    address = {part: values[part] for part in ADDRESS}
    body = {
        "name": values["name"] or None, "accentColor": values["accentColor"] or None, "qrDark": values["qrDark"],
        "qrLight": values["qrLight"], "logoOnCodes": values["logoOnCodes"], "lockedFields": sorted(values["locked"]),
        "defaults": {
            "organization": values["organization"] or None, "website": values["website"] or None,
            "phone": values["phone"] or None, "address": address if any(address.values()) else None,
        },
    }
    if errors:
        return values, None, errors
    try:
        return values, msgspec.convert(body, BrandRequest, from_attributes=False), {}
    except msgspec.ValidationError as exc:
        return values, None, {_field_of(str(exc)): _said(str(exc))}


def _field_of(message: str) -> str:
    """The form field a validation message is about (`… - at `$.defaults.address.postal_code``)."""
    path = message.rpartition("$.")[2].rstrip("`")
    last = path.split(".")[-1]
    return last if last in LABELS else "name"


def _said(message: str) -> str:
    if "length" in message:
        return "Too long"
    if "regex" in message:
        return "Has characters or a shape that is not allowed"
    return sentence(message.partition(" - at")[0], "")


async def _page(request: Request, db: DatabaseDep, *, values: dict | None = None, errors: dict | None = None,
                logo_error: str | None = None, status: int = 200) -> Response:
    stored = await brand.current(db)
    return page(
        request, "console/team/brand.html", status=status, section="team", values=values or values_of(stored),
        errors=errors or {}, labels=LABELS, lock_labels=LOCK_LABELS, logo_error=logo_error,
        logo_url=f"/app/team/brand/logo.jpg?v={stored.logo_hash}" if stored.logo_hash else None,
        upload_body=UPLOAD_BODY,
    )


@get("/team/brand")
async def brand_page(request: Request, db: DatabaseDep) -> Response:
    _admin_only(request)
    return await _page(request, db)


@post("/team/brand")
async def save_brand(request: Request, db: DatabaseDep) -> Response:
    _admin_only(request)
    values, data, errors = read_form(await form_of(request))
    if data is not None:
        try:
            await brand.update_brand(db, request.app.state.public_cards, data, request.user.user_id)
        except Invalid as exc:
            errors = {_form_field(item.get("field", "")): sentence(item.get("message", "")) for item in exc.errors or []}
            errors = errors or {"name": sentence(exc.message)}
        else:
            return see_other("/app/team/brand", flash="brand-saved")
    return await _page(request, db, values=values, errors=errors, status=422)


def _form_field(field: str) -> str:
    return {"defaults.address": "street"}.get(field, field)


@post("/team/brand/logo", request_max_body_size=UPLOAD_BODY)
async def upload_logo(request: Request, db: DatabaseDep) -> Response:
    _admin_only(request)
    try:
        data = await uploaded_image(request)
        if data is None:
            message = "Choose a picture to upload first."
        else:
            await brand.set_logo(db, request.app.state.public_cards, data)
            return see_other("/app/team/brand", flash="brand-logo-saved")
    except (TooLarge, Unsupported, Invalid) as exc:
        message = IMAGE_SAID.get(exc.code or "", sentence(exc.message))
    return await _page(request, db, logo_error=message, status=422)


@post("/team/brand/logo/delete")
async def remove_logo(request: Request, db: DatabaseDep) -> Response:
    _admin_only(request)
    await brand.delete_logo(db, request.app.state.public_cards)
    return see_other("/app/team/brand", flash="brand-logo-removed")


@get("/team/brand/logo.jpg")
async def logo_image(db: DatabaseDep) -> Response[bytes]:
    """The team logo for the console's pages (the card form shows it too); any signed-in member."""
    async with db.read() as conn:
        found = await store.logo_bytes(conn, False)
    if found is None:
        raise NotFound("the team has no logo")
    return Response(found[1], media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


handlers = [brand_page, save_brand, upload_logo, remove_logo, logo_image]
