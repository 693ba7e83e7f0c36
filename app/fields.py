"""Field types shared by the request bodies: lengths, patterns, and what counts as bad text.

Every text field refuses control characters (C0, DEL, C1) and the Unicode line and
paragraph separators, so no value can break a header, a vCard line or a log line; and
the bidirectional controls (embeddings, overrides, isolates, the LRM, RLM and ALM marks),
so no value shows on a page or a phone in another order than the one it is stored in
(after a U+202E, a stored "exe.doc" shows as "cod.exe").

And the one neutraliser every CSV export uses (csv_cell): a value someone else typed (a
card's name, a lead's note, a cell of an imported file, a referrer) opens in a
spreadsheet as text, never as a formula.
"""

from __future__ import annotations

from typing import Annotated, Any, get_args

import msgspec

_BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = r"\x00-\x1f\x7f-\x9f\u2028\u2029" + _BIDI
_TEXT = rf"^[^{_CONTROL}]*$"
TEXT_PATTERN = _TEXT  # any text without control characters (the card's content types use it)
# At least one visible character, nothing from _CONTROL anywhere.
_NONBLANK = rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"

# Plain addresses only: no display names, quotes, brackets, commas or white space, so an
# address can go into a mail header as it is.
_ADDRESS_CHAR = r"[^\s@<>()\[\],;:\"\\" + _CONTROL + r"]"
_DOMAIN_LABEL_CHAR = r"[^\s@<>()\[\],;:\"\\." + _CONTROL + r"]"
EMAIL_PATTERN = "^" + _ADDRESS_CHAR + "+@" + _ADDRESS_CHAR + r"+\." + _DOMAIN_LABEL_CHAR + "+$"

Email = Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=EMAIL_PATTERN, examples=["jane@example.com"])]
Password = Annotated[str, msgspec.Meta(min_length=12, max_length=1024)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=_NONBLANK, examples=["Jane Doe"])]
ShortText = Annotated[str, msgspec.Meta(max_length=200, pattern=_TEXT)]
Phone = Annotated[str, msgspec.Meta(min_length=3, max_length=32, pattern=r"^\+?[0-9][0-9 ().-]*$", examples=["+1 555 123 4567"])]
# Absolute http(s) URLs with a host and no user info (which hides the real host).
Website = Annotated[
    str,
    msgspec.Meta(
        max_length=2048,
        pattern=rf"^https?://[^\s/?#@:{_CONTROL}]+(:[0-9]{{1,5}})?([/?#][^\s{_CONTROL}]*)?$",
        examples=["https://example.com"],
    ),
]
Slug = Annotated[str, msgspec.Meta(min_length=3, max_length=100, pattern=r"^[a-z0-9-]+$", examples=["jane-doe"])]
QrSize = Annotated[int, msgspec.Meta(ge=128, le=2048)]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100, pattern=_NONBLANK)]
# A share's recipient (an email address or a phone number, checked per channel) and its message.
Recipient = Annotated[str, msgspec.Meta(min_length=1, max_length=254, pattern=_NONBLANK, examples=["jane@example.com"])]
Message = Annotated[str, msgspec.Meta(max_length=500, pattern=_TEXT, examples=["Great to meet you at the conference!"])]
InviteToken = Annotated[str, msgspec.Meta(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
# The token of an emailed link (password reset, email change): new_token's 43 characters.
LinkToken = Annotated[str, msgspec.Meta(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


def limits_of(field_type: object) -> msgspec.Meta:
    """The constraints of one of the Annotated types here, so that a form states the very
    limits the API enforces (the console's minlength, maxlength and hints)."""
    return next(arg for arg in get_args(field_type) if isinstance(arg, msgspec.Meta))


# --- CSV exports ---------------------------------------------------------------------

# Spreadsheets run a cell starting with one of these as a formula (OWASP "CSV injection"):
# `=cmd|' /C calc'!A0`, `+`, `-` and `@` as much as `=`; a tab or line break before them too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def csv_cell(value: Any) -> Any:
    """A value that a spreadsheet shows as text: formula-like strings get a leading apostrophe."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
