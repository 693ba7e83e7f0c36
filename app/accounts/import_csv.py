"""Reading a bulk import's CSV file (SPEC §10; the operation is app/accounts/imports.py):
bytes in, one `Person` per row out, each with its own error or none.

What the file must be, as docs/api.md states it:
* UTF-8 (a byte order mark is allowed, since Excel's "CSV UTF-8" writes one), comma
  separated, quoted as RFC 4180 (quotes doubled, line breaks inside quotes);
* a header row naming the columns (any case, spaces, `_` and `-` ignored: `Full name`,
  `full_name` and `fullName` are one column); `email` and `fullName` are required, the
  others (COLUMNS) optional; an unknown or repeated column is refused, so no value is
  silently dropped;
* at most MAX_ROWS rows under the header (blank lines skipped).

A file that breaks one of these is refused whole (Invalid, code `csv_*`) before any row
is looked at: nothing is written. A row that breaks a column's rule, repeats an earlier
row's email or has more cells than the header gets its own error, and the others go on.
Cells are kept as typed: a cell starting with `=`, `+`, `-` or `@` is text like any
other, and every CSV export neutralises it (app/fields.py, csv_cell).
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import msgspec

from app.cards.content import Headline, Pronouns
from app.errors import Invalid
from app.fields import Email, Name, Phone, ShortText, Website, limits_of

MAX_ROWS = 1000
MAX_BYTES = 2 * 1024 * 1024  # 1,000 rows of long cells fit well below this

TEXT = "no line breaks or control characters"
# The columns, in the order the docs and the console list them: (name, type, required, what a bad value needs).
COLUMNS: list[tuple[str, Any, bool, str]] = [
    ("email", Email, True, "a plain address like jane@example.com"),
    ("fullName", Name, True, "a visible character, and no line breaks or control characters"),
    ("title", ShortText, False, TEXT),
    ("phone", Phone, False, "digits, spaces and + ( ) . - only, like +1 555 123 4567"),
    ("organization", ShortText, False, TEXT),
    ("department", ShortText, False, TEXT),
    ("website", Website, False, "an http:// or https:// address"),
    ("pronouns", Pronouns, False, TEXT),
    ("headline", Headline, False, TEXT),
]
COLUMN_NAMES = [name for name, *_ in COLUMNS]
REQUIRED = [name for name, _, required, _ in COLUMNS if required]
_BY_KEY = {name.lower(): (name, kind, need) for name, kind, _, need in COLUMNS}


class Person(msgspec.Struct):
    """One row under the header: `row` is its number as a spreadsheet shows it (the header
    is row 1 in most files), `values` its cells by column name (empty cells left out)."""

    row: int
    email: str | None
    values: dict[str, str]
    error: str | None = None


def _key(header_cell: str) -> str:
    return re.sub(r"[\s_-]", "", header_cell).lower()


def _refuse(message: str, code: str) -> Invalid:
    return Invalid(message, errors=[{"field": "body", "message": message}], code=code)


def decode(body: bytes) -> str:
    """The file as text. Raises Invalid (empty, or not UTF-8: UTF-16, Latin-1, binary)."""
    if not body.strip():
        raise _refuse("the file is empty: send a header row and one row per person", "csv_empty")
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise _refuse("the file is UTF-16: save it as CSV UTF-8 and send it again", "csv_encoding")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refuse(
            f"the file is not UTF-8 (byte {exc.start + 1} is not): save it as CSV UTF-8 and send it again", "csv_encoding"
        ) from None
    if "\x00" in text:  # UTF-16 without its mark decodes as UTF-8 full of NULs
        raise _refuse("the file has NUL bytes, so it is not UTF-8 text (UTF-16?): save it as CSV UTF-8", "csv_encoding")
    return text


def read_people(body: bytes) -> list[Person]:
    """The file's rows as people, each checked on its own. Raises Invalid when the file as
    a whole cannot be read: not UTF-8, not CSV, a bad header, no rows or too many."""
    reader = csv.reader(io.StringIO(decode(body), newline=""), strict=True)
    people: list[Person] = []
    header: list[str | None] | None = None
    seen: dict[str, int] = {}
    try:
        for number, cells in enumerate(reader, start=1):
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = _header(cells)
                continue
            if len(people) == MAX_ROWS:
                raise _refuse(f"the file has more than {MAX_ROWS} rows: split it into files of {MAX_ROWS} or fewer", "csv_too_many_rows")
            people.append(_person(number, header, cells, seen))
    except csv.Error as exc:
        raise _refuse(f"the file is not readable CSV near row {reader.line_num}: {exc}", "csv_malformed") from None
    if header is None or not people:
        raise _refuse("the file has no rows under its header", "csv_empty")
    return people


def _header(cells: list[str]) -> list[str | None]:
    names: list[str | None] = []
    unknown = []
    for cell in cells:
        known = _BY_KEY.get(_key(cell))
        if known is None and cell.strip():
            unknown.append(cell.strip()[:40])
        if known and known[0] in names:
            raise _refuse(f"the header names {known[0]} twice", "csv_header")
        names.append(known[0] if known else None)
    if unknown:
        raise _refuse(
            f"the header has columns this import does not know: {', '.join(unknown)} "
            f"(the columns are {', '.join(COLUMN_NAMES)})", "csv_header",
        )
    if missing := [name for name in REQUIRED if name not in names]:
        raise _refuse(
            f"the header row must name {' and '.join(missing)} (the first row is the header: "
            f"{', '.join(COLUMN_NAMES)})", "csv_header",
        )
    return names


def _person(number: int, header: list[str | None], cells: list[str], seen: dict[str, int]) -> Person:
    values = {name: cell.strip() for name, cell in zip(header, cells, strict=False) if name and cell.strip()}
    email = values.get("email")
    if len(cells) > len(header) and any(cell.strip() for cell in cells[len(header):]):
        return Person(number, email, values, f"has {len(cells)} cells, the header {len(header)}")
    if error := _check(values):
        return Person(number, email, values, error)
    assert email is not None  # a required column
    if (first := seen.setdefault(email.casefold(), number)) != number:
        return Person(number, email, values, f"the same email as row {first}: one card per person")
    return Person(number, email, values)


def _check(values: dict[str, str]) -> str | None:
    """What is wrong with the row's first bad cell, said for the person fixing the file."""
    for name, kind, required, need in COLUMNS:
        value = values.get(name)
        if value is None:
            if required:
                return f"{name} is empty"
            continue
        try:
            msgspec.convert(value, kind)
        except msgspec.ValidationError:
            limits = limits_of(kind)
            if limits.max_length is not None and len(value) > limits.max_length:
                return f"{name} is too long: at most {limits.max_length} characters"
            if limits.min_length is not None and len(value) < limits.min_length:
                return f"{name} is too short: at least {limits.min_length} characters"
            return f"{name} is not valid: it needs {need}"
    return None
