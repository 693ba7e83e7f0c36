"""The cards pages: the list with search, create and edit with a live preview (and the
photo and logo uploads), the card with its QR downloads, and delete with a confirmation.
Writes go through the same operations as the API (cards.create_card, edit_card,
delete_card, qr_download; card_images.set_image, delete_image).

The card's lists (phones, emails, addresses, links, socials) are rows of inputs that work
without JavaScript: each list shows its rows (one empty row when it has none), an "Add another" button
(a submit named `add`) draws the form again with one more row, a "Remove" button (a submit
named `remove`) draws it without that row; neither saves. Empty rows are ignored. The
first row's main input keeps the single field's name (`phone`, `email`, `website`: the
API's mirror of the first entry), so a form with one row of each reads as it always did.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, get_args

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import ClientException
from litestar.params import FromPath, QueryParameter

from app import qr
from app.cards import card_images, cards, content, search
from app.cards.images import MAX_BYTES
from app.config import Settings, SettingsDep
from app.console.web import field_error, form_of, page, page_off_loop, see_other, sentence
from app.db import DatabaseDep, isoformat
from app.errors import Conflict, Invalid, TooLarge, Unsupported
from app.fields import Email, Name, Phone, QrSize, ShortText, Slug, Website, limits_of

PER_PAGE = 24
WHOLE_PIXELS = f"Enter a whole number of pixels from {limits_of(QrSize).ge} to {limits_of(QrSize).le}"


# --- the card form -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    name: str  # as the API's body names it
    label: str
    kind: Any  # the field type of app/fields.py
    type: str = "text"
    required: bool = False
    hint: str | None = None
    bad_format: str = "Has characters that are not allowed"
    autocomplete: str | None = None

    @property
    def maxlength(self) -> int | None:
        return limits_of(self.kind).max_length


FIELDS = (
    Field("fullName", "Full name", Name, required=True, autocomplete="off"),
    Field("email", "Email", Email, type="email", required=True,
          bad_format="Enter an email address like name@example.com", autocomplete="off"),
    Field("title", "Job title", ShortText),
    Field("organization", "Organization", ShortText),
    Field("phone", "Phone", Phone, type="tel", hint="Digits, spaces and + ( ) . - only, like +1 555 010 2030",
          bad_format="Use digits, spaces and + ( ) . - only"),
    Field("website", "Website", Website, type="url", hint="The full address, starting with https://",
          bad_format="Enter the full address, starting with https:// or http://"),
)
SLUG = Field(
    "slug", "Card address", Slug,
    hint=f"Lowercase letters, digits and hyphens ({limits_of(Slug).min_length} to {limits_of(Slug).max_length}), "
         "as in /c/jane-doe. Printed codes carry it, so it "
         "cannot be changed later. Leave it empty for a short random one.",
    bad_format="Use lowercase letters, digits and hyphens only",
)
# The card's other single fields, and the name's parts (filled in from the full name when left empty).
MORE_FIELDS = (
    Field("pronouns", "Pronouns", content.Pronouns, hint="Like she/her or they/them"),
    Field("department", "Department", ShortText),
    Field("accentColor", "Accent colour", content.AccentColor, hint="A hex colour like #0b6bcb",
          bad_format="Enter a colour like #0b6bcb"),
)
HEADLINE = Field("headline", "Headline", content.Headline, hint="A line about you or your work, up to 280 characters")
NAME_PARTS = tuple(
    Field(f"name-{part}", label, content.NamePart)
    for part, label in (("prefix", "Prefix"), ("given", "Given name"), ("middle", "Middle name"), ("family", "Family name"),
                        ("suffix", "Suffix"))
)


@dataclass(frozen=True, slots=True)
class Column:
    key: str  # as the API's entry names it
    label: str
    kind: Any
    type: str = "text"
    choices: tuple[tuple[str, str], ...] = ()  # a select's (value, label)
    hint: str | None = None
    bad_format: str = "Has characters that are not allowed"

    @property
    def maxlength(self) -> int | None:
        return None if self.choices else limits_of(self.kind).max_length


@dataclass(frozen=True, slots=True)
class ListField:
    name: str  # as the API's body names it
    label: str  # one entry, as in "Add another phone"
    columns: tuple[Column, ...]
    maximum: int
    main: str | None = None  # the column whose first row keeps the single field's name
    single: str | None = None
    required: bool = False  # the first row must be filled in (a card needs an email)

    def input_name(self, row: int, column: str) -> str:
        if row == 0 and column == self.main:
            return self.single or column
        return f"{self.name}-{row}-{column}"


PHONE_TYPES = (("mobile", "Mobile"), ("work", "Work"), ("home", "Home"), ("fax", "Fax"), ("other", "Other"))
PLACE_TYPES = (("work", "Work"), ("home", "Home"), ("other", "Other"))
NETWORKS = (("linkedin", "LinkedIn"), ("x", "X"), ("github", "GitHub"), ("instagram", "Instagram"), ("facebook", "Facebook"),
            ("youtube", "YouTube"), ("tiktok", "TikTok"), ("mastodon", "Mastodon"), ("bluesky", "Bluesky"), ("other", "Other"))
URL_HINT = "The full address, starting with https://"
URL_BAD = "Enter the full address, starting with https:// or http://"
LISTS = (
    ListField("phones", "phone", (
        Column("number", "Phone", Phone, type="tel", hint="Digits, spaces and + ( ) . - only, like +1 555 010 2030",
               bad_format="Use digits, spaces and + ( ) . - only"),
        Column("type", "Type", str, choices=PHONE_TYPES),
        Column("ext", "Extension", content.Extension, bad_format="Use digits only"),
    ), content.MAX_PHONES, main="number", single="phone"),
    ListField("emails", "email", (
        Column("address", "Email", Email, type="email", bad_format="Enter an email address like name@example.com"),
        Column("type", "Type", str, choices=PLACE_TYPES),
    ), content.MAX_EMAILS, main="address", single="email", required=True),
    ListField("links", "link", (
        Column("url", "Website", Website, type="url", hint=URL_HINT, bad_format=URL_BAD),
        Column("label", "Label", content.LinkLabel),
    ), content.MAX_LINKS, main="url", single="website"),
    ListField("socials", "social profile", (
        Column("url", "Profile address", Website, type="url", hint=URL_HINT, bad_format=URL_BAD),
        Column("network", "Network", str, choices=NETWORKS),
    ), content.MAX_SOCIALS),
    ListField("addresses", "address", (
        Column("street", "Street", content.Line),
        Column("locality", "City", content.Line),
        Column("region", "Region or state", content.Line),
        Column("postalCode", "Postal code", content.PostalCode),
        Column("country", "Country", content.Line),
        Column("type", "Type", str, choices=PLACE_TYPES),
    ), content.MAX_ADDRESSES),
)
LIST_BY_NAME = {listed.name: listed for listed in LISTS}

ECC_LABELS = {
    "L": "Low: the smallest code",
    "M": "Medium: recommended",
    "Q": "Quartile: survives some damage",
    "H": "High: survives a logo or wear",
}
ECC_CHOICES = [(level, ECC_LABELS[level]) for level in get_args(qr.Ecc)]  # the levels the API takes
# The single fields of the form: the first rows of phones, emails and links are read as lists.
SINGLE = tuple(f for f in FIELDS if f.name not in ("email", "phone", "website"))
LABELS = {f.name: f.label for f in (*FIELDS, SLUG, *MORE_FIELDS, HEADLINE, *NAME_PARTS)} | {
    "qrErrorCorrection": "Error correction", "qrSize": "PNG size",
} | {
    listed.input_name(row, column.key): (
        column.label if row == 0 and column.key == listed.main else f"{listed.label.capitalize()} {row + 1}: {column.label.lower()}"
    )
    for listed in LISTS for row in range(listed.maximum) for column in listed.columns
}


def _rows_of(form: dict[str, str], listed: ListField) -> list[dict[str, str]]:
    """A list's rows as typed (empty rows kept, for drawing the form again)."""
    try:
        count = int(form.get(f"{listed.name}-rows", "1"))
    except ValueError:
        count = 1
    rows = []
    for row in range(max(0, min(count, listed.maximum))):
        rows.append({
            column.key: form.get(listed.input_name(row, column.key), column.choices[0][0] if column.choices else "").strip()
            for column in listed.columns
        })
    return rows


def _is_empty(row: dict[str, str], listed: ListField) -> bool:
    return not any(row[column.key] for column in listed.columns if not column.choices)


def _read_card_form(form: dict[str, str], with_slug: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's values (as typed, for showing again) and the errors of each field."""
    values: dict[str, Any] = {f.name: form.get(f.name, "").strip() for f in (*SINGLE, *MORE_FIELDS, HEADLINE, *NAME_PARTS)}
    values["qrErrorCorrection"] = form.get("qrErrorCorrection", "M")
    values["qrSize"] = form.get("qrSize", "512").strip()
    for listed in LISTS:
        values[listed.name] = _rows_of(form, listed)
    if with_slug:
        values["slug"] = form.get("slug", "").strip()
    errors = {}
    for f in (*SINGLE, *MORE_FIELDS, HEADLINE, *NAME_PARTS, *((SLUG,) if with_slug else ())):
        value = values[f.name]
        if not value:
            if f.required:
                errors[f.name] = f"Enter the {f.label.lower()}"
        elif message := field_error(value, f.kind, f.bad_format):
            errors[f.name] = message
    for listed in LISTS:
        for row, typed in enumerate(values[listed.name]):
            if _is_empty(typed, listed):
                continue
            for column in listed.columns:
                name, value = listed.input_name(row, column.key), typed[column.key]
                if column.choices:
                    if value not in dict(column.choices):
                        errors[name] = "Choose one of the options"
                elif not value:
                    if column.key == listed.main:
                        errors[name] = f"Enter the {column.label.lower()}, or remove the row"
                elif message := field_error(value, column.kind, column.bad_format):
                    errors[name] = message
    if not any(not _is_empty(row, LIST_BY_NAME["emails"]) for row in values["emails"]):
        errors["email"] = "Enter the email"
    if values["qrErrorCorrection"] not in get_args(qr.Ecc):
        errors["qrErrorCorrection"] = "Choose one of the levels"
    if message := _size_error(values["qrSize"]):
        errors["qrSize"] = message
    return values, errors


def _rows_changed(form: dict[str, str], values: dict[str, Any]) -> bool:
    """An "Add another" or "Remove" button was pressed: change the rows of `values`; True if so."""
    if (listed := LIST_BY_NAME.get(form.get("add", ""))) is not None:
        rows = values[listed.name]
        if len(rows) < listed.maximum:
            rows.append({column.key: column.choices[0][0] if column.choices else "" for column in listed.columns})
        return True
    name, _, row = form.get("remove", "").rpartition("-")
    if (listed := LIST_BY_NAME.get(name)) is not None and row.isdigit():
        if int(row) < len(values[listed.name]):
            del values[listed.name][int(row)]
        return True
    return False


def _size_error(typed: str) -> str | None:
    """Why a typed PNG size is not one; None when it is. Digits only: a number field also
    sends "1e3" and "512.0", which msgspec reads as numbers but `int()` does not."""
    if not re.fullmatch(r"[0-9]{1,6}", typed):
        return WHOLE_PIXELS
    return field_error(int(typed), QrSize)


def _body(values: dict[str, Any], card: cards.Card | None, kind: type) -> Any:
    """The checked form values as the API's request body (`kind`): empty optional text is none,
    empty rows are left out, the lists replace the card's. The name's parts go along only when
    they say more than the full name: typed by hand, not what the full name splits into (now,
    or before the full name was changed)."""
    body: dict[str, Any] = {f.name: values[f.name] or None for f in (*SINGLE, *MORE_FIELDS, HEADLINE)}
    body |= {"qrErrorCorrection": values["qrErrorCorrection"], "qrSize": int(values["qrSize"])}
    for listed in LISTS:
        body[listed.name] = [
            {column.key: row[column.key] for column in listed.columns if row[column.key] or column.key == listed.main}
            for row in values[listed.name] if not _is_empty(row, listed)
        ]
    if "slug" in values and values["slug"]:
        body["slug"] = values["slug"]
    parts = content.StructuredName(**{f.name.removeprefix("name-"): values[f.name] for f in NAME_PARTS})
    derived = [content.split_full_name(values["fullName"])] + ([content.split_full_name(card.full_name)] if card else [])
    if any((parts.given, parts.family, parts.prefix, parts.middle, parts.suffix)) and parts not in derived:
        body["name"] = msgspec.structs.asdict(parts)
    return msgspec.convert(body, kind)


def _values_of(card: cards.Card) -> dict[str, Any]:
    values = {
        "fullName": card.full_name, "title": card.title or "", "organization": card.organization or "",
        "slug": card.slug, "qrErrorCorrection": card.qr_error_correction, "qrSize": str(card.qr_size),
        "pronouns": card.pronouns or "", "department": card.department or "", "accentColor": card.accent_color or "",
        "headline": card.headline or "",
    } | {f.name: getattr(card.name, f.name.removeprefix("name-")) for f in NAME_PARTS}
    for listed in LISTS:
        entries = msgspec.to_builtins(getattr(card, listed.name))
        values[listed.name] = [{column.key: entry.get(column.key) or "" for column in listed.columns} for entry in entries]
    return values


def _with_empty_rows(values: dict[str, Any]) -> dict[str, Any]:
    """The values with an empty row in each empty list (where a first entry is typed); more
    rows come with "Add another"."""
    values = dict(values)
    for listed in LISTS:
        if not values[listed.name]:
            values[listed.name] = [{column.key: column.choices[0][0] if column.choices else "" for column in listed.columns}]
    return values


# What the card operations refuse, in the console's words, by the error's code.
SAID = {
    "slug_taken": ("slug", "Taken, or used by a deleted card: choose another"),
    "slug_reserved": ("slug", "Reserved: choose another"),
    "low_contrast": ("dark", "Too little contrast with the light colour: the dark colour must be much darker"),
}


def _form_field(api_field: str | None) -> str:
    """The form's input named by an API error's field ("addresses[0]" is the row's first input)."""
    if api_field and (match := re.fullmatch(r"(\w+)\[(\d+)\](?:\.(\w+))?", api_field)) and match[1] in LIST_BY_NAME:
        listed = LIST_BY_NAME[match[1]]
        return listed.input_name(int(match[2]), match[3] or listed.columns[0].key)
    return {"name": "name-given"}.get(api_field or "", api_field or "form")


def _domain_errors(exc: Invalid | Conflict) -> dict[str, str]:
    if exc.code in SAID:
        field, message = SAID[exc.code]
        return {field: message}
    return {_form_field(item.get("field")): sentence(item.get("message", "")) for item in exc.errors or []} or {
        "form": sentence(exc.message)
    }


def _form_page(
    request: Request, *, card: cards.Card | None, values: dict, errors: dict, status: int = 200, image_errors: dict | None = None,
) -> Response:
    images = {
        kind: {"label": kind.title(), "thumbnail": cards.image_path(card, kind, thumbnail=True)} for kind in IMAGE_KINDS
    } if card else {}
    return page(
        request, "console/cards/form.html", status=status, section="cards", card=card, values=_with_empty_rows(values),
        errors=errors, fields=FIELDS, more_fields=MORE_FIELDS, headline=HEADLINE, name_parts=NAME_PARTS, lists=LISTS,
        slug_field=SLUG, ecc_choices=ECC_CHOICES, labels=LABELS,
        name_open=any(values.get(f.name) or f.name in errors for f in NAME_PARTS),
        images=images, image_errors=image_errors or {},
    )


IMAGE_KINDS: tuple[cards.ImageKind, ...] = ("photo", "logo")
# What an upload's refusal says, by the error's code (app/cards/images.py).
IMAGE_SAID = {
    "image_type": "Choose a JPEG, PNG or WebP picture. Other kinds (SVG, GIF, HEIC) cannot be used: "
                  "export or screenshot it as JPEG or PNG first.",
    "image_too_large": "That picture is larger than 10 MB. Choose a smaller one.",
    "image_too_many_pixels": "That picture has too many pixels (over 50 million). Choose a smaller one.",
    "image_damaged": "That picture could not be read: it may be incomplete or damaged. Try another.",
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
    return _form_page(request, card=None, values=values, errors={})


@post("/cards/new")
async def new_card(request: Request, db: DatabaseDep) -> Response:
    form = await form_of(request)
    values, errors = _read_card_form(form, with_slug=True)
    if _rows_changed(form, values):
        return _form_page(request, card=None, values=values, errors={})
    if not errors:
        try:
            card = await cards.create_card(
                db, request.app.state.public_cards, request.user.user_id, _body(values, None, cards.CreateCardRequest)
            )
        except (Invalid, Conflict) as exc:
            errors = _domain_errors(exc)
        else:
            return see_other(f"/app/cards/{card.card_id}", flash="card-created")
    return _form_page(request, card=None, values=values, errors=errors, status=422)


@get("/cards/{cardId:str}/edit")
async def edit_card_form(request: Request, cardId: FromPath[str], db: DatabaseDep) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    return _form_page(request, card=card, values=_values_of(card), errors={})


@post("/cards/{cardId:str}/edit")
async def edit_card(request: Request, cardId: FromPath[str], db: DatabaseDep) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    form = await form_of(request)
    values, errors = _read_card_form(form, with_slug=False)
    if _rows_changed(form, values):
        return _form_page(request, card=card, values={**values, "slug": card.slug}, errors={})
    if not errors:
        try:
            await cards.edit_card(db, request.app.state.public_cards, card, _body(values, card, cards.UpdateCardRequest))
        except (Invalid, Conflict) as exc:
            errors = _domain_errors(exc)
        else:
            return see_other(f"/app/cards/{card.card_id}", flash="card-saved")
    return _form_page(request, card=card, values={**values, "slug": card.slug}, errors=errors, status=422)


def _download_defaults(card: cards.Card) -> dict[str, str]:
    return {"format": "png", "size": str(card.qr_size), "ecc": card.qr_error_correction, "mode": "dynamic",
            "dark": "#000000", "light": "#ffffff", "border": "4"}


def _card_page(request: Request, settings: Settings, card: cards.Card, *, download: dict, errors: dict, status: int = 200) -> Response:
    scans, views, saves = request.app.state.counters.pending(card.card_id)
    return page(
        request, "console/cards/show.html", status=status, section="cards", card=card,
        short_url=cards.short_url(settings, card.slug), card_url=f"{settings.public_base_url}/p/{card.slug}",
        scan_count=card.scan_count + scans, view_count=card.view_count + views, save_count=card.save_count + saves,
        download=download, errors=errors, ecc_choices=ECC_CHOICES, left_out=_left_out(card),
    )


STATIC_NAMES = {
    "socials": "social profiles", "links": "some links", "addresses": "addresses", "headline": "headline",
    "pronouns": "pronouns", "department": "department", "emails": "other emails", "phones": "phones", "title": "job title",
    "organization": "organization",
}


def _left_out(card: cards.Card) -> list[tuple[str, list[str]]]:
    """What a static code of the card leaves out at each level, in the console's words."""
    return [
        (ECC_LABELS[level].partition(":")[0], [STATIC_NAMES.get(field, field) for field in cards.static_payload(card, level)[1]])
        for level in get_args(qr.Ecc)
    ]


@get("/cards/{cardId:str}")
async def card_page(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> Response:
    card = await cards.card_of(db, request.user.user_id, cardId)
    return _card_page(request, settings, card, download=_download_defaults(card), errors={})


@get("/cards/{cardId:str}/qr")
async def card_qr(request: Request, cardId: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> Response:
    """The download panel's GET form: the card's code drawn as asked, through the API's own code path."""
    card = await cards.card_of(db, request.user.user_id, cardId)
    asked = {key: value.strip() for key, value in request.query_params.items() if key in _download_defaults(card)}
    download = _download_defaults(card) | asked
    errors: dict[str, str] = {}
    try:
        options = msgspec.convert({k: v for k, v in asked.items() if v != ""}, cards.QrOptions, strict=False)
        image, media_type, filename, _ = await cards.qr_download(request.app.state, settings, card, options)
    except msgspec.ValidationError as exc:
        field = str(exc).rpartition("$.")[2].rstrip("`") or "form"
        errors[field] = {
            "size": WHOLE_PIXELS,
            "border": "Enter a whole number of modules from 0 to 32",
            "dark": "Choose a colour like #1a2b3c", "light": "Choose a colour like #ffffff",
        }.get(field, "Choose one of the options")
    except Invalid as exc:
        errors = _domain_errors(exc)
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


def _image_handlers(kind: cards.ImageKind) -> list:
    @post(f"/cards/{{cardId:str}}/{kind}", request_max_body_size=UPLOAD_BODY, name=f"upload-{kind}")
    async def upload_image(request: Request, cardId: FromPath[str], db: DatabaseDep) -> Response:
        card = await cards.card_of(db, request.user.user_id, cardId)
        try:
            data = await _uploaded(request)
            if data is None:
                message = "Choose a picture to upload first."
            else:
                await card_images.set_image(db, request.app.state.public_cards, card, kind, data)
                return see_other(f"/app/cards/{card.card_id}/edit", flash=f"{kind}-saved")
        except (TooLarge, Unsupported, Invalid) as exc:
            message = IMAGE_SAID.get(exc.code or "", sentence(exc.message))
        return _form_page(request, card=card, values=_values_of(card), errors={}, image_errors={kind: message}, status=422)

    @post(f"/cards/{{cardId:str}}/{kind}/delete", name=f"remove-{kind}")
    async def remove_image(request: Request, cardId: FromPath[str], db: DatabaseDep) -> Response:
        card = await cards.card_of(db, request.user.user_id, cardId)
        await card_images.delete_image(db, request.app.state.public_cards, card, kind)
        return see_other(f"/app/cards/{card.card_id}/edit", flash=f"{kind}-removed")

    return [upload_image, remove_image]


handlers = [
    cards_list, new_card_form, new_card, edit_card_form, edit_card, card_page, card_qr, delete_card_form, delete_card,
    *_image_handlers("photo"), *_image_handlers("logo"),
]
