"""A card as a vCard (SPEC §8): 3.0 by default (what iOS imports best), 4.0 on request
(RFC 6350), and the text a static code holds.

What importers are given, and why:
* `N` from the structured name (family; given; middle; prefix; suffix), `FN` as written.
* Phones typed as both iOS and Android's importers map them: mobile → CELL, work →
  WORK,VOICE, home → HOME,VOICE, fax → FAX, other → VOICE. An extension is written
  " x204" after the number: a TEL value is not structured text, so a ";ext=" would be
  read as a component separator by 3.0 parsers; libphonenumber (Android, Google
  Contacts) takes "x" as the extension mark and iOS keeps it as typed. In 4.0 a number
  in international form is a `tel:` URI (RFC 3966), where ";ext=" is the standard form.
* Addresses as `ADR` with all 7 components (PO box and extended address left empty).
* URLs (the website and every link, labelled with iOS's `X-ABLabel` in 3.0) and
  `X-SOCIALPROFILE;TYPE=<network>` (what iOS writes and reads; Android keeps it as a
  custom field) are URIs, so they are written as they are, never backslash-escaped.
* `NOTE` from the headline, `ORG` with the department as its second component.
* Every text value escaped (RFC 6350 §3.4), every line folded at 75 octets without
  splitting a UTF-8 sequence (§3.2), CRLF line ends.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Literal

import msgspec

from app.cards.content import PhoneEntry

if TYPE_CHECKING:
    from app.cards.types import Card  # which imports this module

Version = Literal[3, 4]

TEL_TYPES = {
    3: {"mobile": "CELL", "work": "WORK,VOICE", "home": "HOME,VOICE", "fax": "FAX", "other": "VOICE"},
    4: {"mobile": "cell", "work": "work,voice", "home": "home,voice", "fax": "fax", "other": "voice"},
}
PLACE_TYPES = {3: {"work": "WORK", "home": "HOME"}, 4: {"work": "work", "home": "home"}}
FOLD_AT = 75  # octets per line, CRLF not counted (RFC 6350 §3.2, RFC 2425 §5.8.1)


def escape(value: str) -> str:
    """RFC 6350 §3.4 text escaping: backslash, comma, semicolon and newline."""
    return (
        value.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace(";", "\\;")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def structured(*components: str) -> str:
    """A structured value (N, ADR, ORG): each component escaped, joined by semicolons."""
    return ";".join(escape(c or "") for c in components)


def fold(line: str) -> str:
    """One content line folded into lines of at most 75 octets, each continuation starting with a
    space, never inside a UTF-8 sequence."""
    data = line.encode()
    if len(data) <= FOLD_AT:
        return line
    pieces, start, limit = [], 0, FOLD_AT
    while start < len(data):
        end = min(start + limit, len(data))
        while end < len(data) and (data[end] & 0xC0) == 0x80:  # a continuation byte: step back
            end -= 1
        pieces.append(data[start:end].decode())
        start, limit = end, FOLD_AT - 1  # the leading space counts
    return "\r\n ".join(pieces)


def _tel(phone: PhoneEntry, version: Version) -> str:
    kind = TEL_TYPES[version][phone.type]
    if version == 4 and phone.number.startswith("+"):
        digits = "".join(ch if ch.isdigit() else "-" for ch in phone.number[1:] if ch.isdigit() or ch in " -.")
        uri = "tel:+" + "-".join(part for part in digits.split("-") if part)
        if phone.ext:
            uri += f";ext={phone.ext}"
        return f"TEL;VALUE=uri;TYPE={kind}:{uri}"
    number = phone.number + (f" x{phone.ext}" if phone.ext else "")
    return f"TEL;TYPE={kind}:{escape(number)}"


def content_lines(card: Card, version: Version = 3) -> list[str]:
    """The card's properties as content lines (a labelled URL is two), in the order they are written."""
    name = card.name
    lines = [
        "N:" + structured(name.family, name.given, name.middle, name.prefix, name.suffix),
        "FN:" + escape(card.full_name),
    ]
    if card.organization or card.department:
        lines.append("ORG:" + structured(card.organization or "", *([card.department] if card.department else [])))
    if card.title:
        lines.append("TITLE:" + escape(card.title))
    if version == 4 and card.pronouns:
        lines.append("PRONOUNS:" + escape(card.pronouns))  # RFC 9554
    lines.extend(_tel(phone, version) for phone in card.phones)
    for email in card.emails:
        place = PLACE_TYPES[version].get(email.type)
        if version == 3:
            lines.append(f"EMAIL;TYPE=INTERNET{',' + place if place else ''}:{escape(email.address)}")
        else:
            lines.append(f"EMAIL{';TYPE=' + place if place else ''}:{escape(email.address)}")
    for address in card.addresses:
        place = PLACE_TYPES[version].get(address.type)
        value = structured("", "", address.street, address.locality, address.region, address.postal_code, address.country)
        lines.append(f"ADR{';TYPE=' + place if place else ''}:{value}")
    for i, link in enumerate(card.links, start=1):
        if version == 3 and link.label:
            # iOS shows a URL's label from an item group; other importers take the plain URL.
            lines += [f"item{i}.URL:{link.url}", f"item{i}.X-ABLabel:{escape(link.label)}"]
        else:
            lines.append(f"URL:{link.url}")
    lines.extend(f"X-SOCIALPROFILE;TYPE={social.network}:{social.url}" for social in card.socials)
    if card.headline:
        lines.append("NOTE:" + escape(card.headline))
    return lines


def vcard(card: Card, version: Version = 3, photo_jpeg: bytes | None = None) -> str:
    """The card as a vCard of `version`, with the photo when given; CRLF line ends, folded lines."""
    lines = content_lines(card, version)
    if photo_jpeg is not None:
        encoded = base64.b64encode(photo_jpeg).decode("ascii")
        lines.append(f"PHOTO;ENCODING=b;TYPE=JPEG:{encoded}" if version == 3 else f"PHOTO:data:image/jpeg;base64,{encoded}")
    return assemble(lines, version)


def assemble(lines: list[str], version: Version) -> str:
    body = ["BEGIN:VCARD", f"VERSION:{version}.0", *lines, "END:VCARD"]
    return "".join(fold(line) + "\r\n" for line in body)


# --- static codes --------------------------------------------------------------------

# Bytes a QR code of version 40 holds in byte mode, by error correction (ISO 18004 table 7).
QR_BYTES = {"L": 2953, "M": 2331, "Q": 1663, "H": 1273}
# What a static code gives up first when the whole card does not fit: the lists' later
# entries before their first, what a phone can do without before how to reach the person.
LEAVE_OUT_ORDER = ("socials", "links", "addresses", "headline", "pronouns", "department", "emails", "phones", "title", "organization")


def static_text(card: Card, ecc: str) -> tuple[str, list[str]]:
    """The vCard 3.0 a static code at level `ecc` holds (never a photo), and the fields left
    out so that it fits, in LEAVE_OUT_ORDER: a list gives up its entries from the last.
    The name and the first email always stay."""
    capacity = QR_BYTES[ecc]
    left_out: list[str] = []
    text = vcard(card)
    for field in LEAVE_OUT_ORDER:
        while len(text.encode()) > capacity:
            value = getattr(card, field)
            keep = 1 if field == "emails" else 0
            if isinstance(value, tuple) and len(value) > keep:
                card = msgspec.structs.replace(card, **{field: value[:-1]})
            elif value and not isinstance(value, tuple):
                card = msgspec.structs.replace(card, **{field: None})
            else:
                break
            if field not in left_out:
                left_out.append(field)
            text = vcard(card)
    return text, left_out
