"""The card form of the console: its fields (FIELDS, MORE_FIELDS, NAME_PARTS, the lists in
LISTS), reading a submitted form into values and errors (`read_card_form`, `rows_changed`),
the values as the API's request body (`request_body`) or of a card (`values_of`), what the
card operations refuse in the form's words (`domain_errors`), and what a static code leaves
out (`left_out`). The pages that use it are app/console/cards.py.

The card's lists (phones, emails, addresses, links, socials) are rows of inputs that work
without JavaScript: each list shows its rows (one empty row when it has none), an "Add another" button
(a submit named `add`) draws the form again with one more row, a "Remove" button (a submit
named `remove`) draws it without that row; neither saves. Empty rows are ignored. The
first row's main input keeps the single field's name (`phone`, `email`, `website`: the
API's mirror of the first entry), so a form with one row of each reads as it always did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, get_args

import msgspec

from app import qr
from app.cards import cards, content
from app.cards.types import Card
from app.console.web import field_error, sentence
from app.errors import Conflict, Invalid
from app.fields import Email, Name, Phone, QrSize, ShortText, Slug, Website, limits_of

WHOLE_PIXELS = f"Enter a whole number of pixels from {limits_of(QrSize).ge} to {limits_of(QrSize).le}"


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


def read_card_form(form: dict[str, str], with_slug: bool) -> tuple[dict[str, Any], dict[str, str]]:
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


def rows_changed(form: dict[str, str], values: dict[str, Any]) -> bool:
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


def request_body(values: dict[str, Any], card: Card | None, kind: type) -> Any:
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


def values_of(card: Card) -> dict[str, Any]:
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


def with_empty_rows(values: dict[str, Any]) -> dict[str, Any]:
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


def domain_errors(exc: Invalid | Conflict) -> dict[str, str]:
    if exc.code in SAID:
        field, message = SAID[exc.code]
        return {field: message}
    return {_form_field(item.get("field")): sentence(item.get("message", "")) for item in exc.errors or []} or {
        "form": sentence(exc.message)
    }


STATIC_NAMES = {
    "socials": "social profiles", "links": "some links", "addresses": "addresses", "headline": "headline",
    "pronouns": "pronouns", "department": "department", "emails": "other emails", "phones": "phones", "title": "job title",
    "organization": "organization",
}


def left_out(card: Card) -> list[tuple[str, list[str]]]:
    """What a static code of the card leaves out at each level, in the console's words."""
    return [
        (ECC_LABELS[level].partition(":")[0], [STATIC_NAMES.get(field, field) for field in cards.static_payload(card, level)[1]])
        for level in get_args(qr.Ecc)
    ]
