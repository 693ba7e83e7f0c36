"""What a card holds beside its name line (SPEC §8): the structured name, the typed lists
(phones, emails, addresses, links, socials), and the rules that keep the old single fields
(`fullName`, `phone`, `email`, `website`) and the new ones saying the same thing.

The rules, as docs/api.md states them for clients:

* `fullName` and `name`: given alone, either is derived from the other (`split_full_name`,
  `join_name`); given together, both are kept as sent (FN may differ from N).
* `phone` mirrors `phones[0].number`, `email` `emails[0].address`, `website` `links[0].url`.
  The list wins when both come in one request, and then the single field must be absent
  or agree with it. Sent alone, the single field replaces the first entry's number,
  address or URL (keeping its type or label; a new first entry is a mobile phone, a work
  email, a link labelled "Website"); null removes the first entry.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

from app.fields import TEXT_PATTERN, Email, Phone, Website

# --- types ---------------------------------------------------------------------------

PhoneType = Literal["mobile", "work", "home", "fax", "other"]
EmailType = Literal["work", "home", "other"]
AddressType = Literal["work", "home", "other"]
Network = Literal["linkedin", "x", "github", "instagram", "facebook", "youtube", "tiktok", "mastodon", "bluesky", "other"]

NamePart = Annotated[str, msgspec.Meta(max_length=200, pattern=TEXT_PATTERN)]  # as long as a full name
Line = Annotated[str, msgspec.Meta(max_length=200, pattern=TEXT_PATTERN)]
PostalCode = Annotated[str, msgspec.Meta(max_length=20, pattern=TEXT_PATTERN)]
Extension = Annotated[str, msgspec.Meta(min_length=1, max_length=10, pattern=r"^[0-9]+$", examples=["204"])]
LinkLabel = Annotated[str, msgspec.Meta(max_length=100, pattern=TEXT_PATTERN, examples=["Portfolio"])]
Pronouns = Annotated[str, msgspec.Meta(max_length=40, pattern=TEXT_PATTERN, examples=["she/her"])]
Headline = Annotated[str, msgspec.Meta(max_length=280, pattern=TEXT_PATTERN, examples=["I help teams ship calmer software."])]
AccentColor = Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#0b6bcb"])]

MAX_PHONES, MAX_EMAILS, MAX_ADDRESSES, MAX_LINKS, MAX_SOCIALS = 5, 5, 3, 10, 10


class StructuredName(msgspec.Struct, forbid_unknown_fields=True):
    """The vCard N: each part may be empty."""

    prefix: NamePart = ""
    given: NamePart = ""
    middle: NamePart = ""
    family: NamePart = ""
    suffix: NamePart = ""


class PhoneEntry(msgspec.Struct, forbid_unknown_fields=True):
    number: Phone
    type: PhoneType = "mobile"
    ext: Extension | None = None


class EmailEntry(msgspec.Struct, forbid_unknown_fields=True):
    address: Email
    type: EmailType = "work"


class Address(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    type: AddressType = "work"
    street: Line = ""
    locality: Line = ""
    region: Line = ""
    postal_code: PostalCode = ""
    country: Line = ""

    def parts(self) -> list[str]:
        return [part for part in (self.street, self.locality, self.region, self.postal_code, self.country) if part.strip()]


class Link(msgspec.Struct, forbid_unknown_fields=True):
    url: Website
    label: LinkLabel = ""


class Social(msgspec.Struct, forbid_unknown_fields=True):
    url: Website
    network: Network | None = None  # left out: told by the URL's host (network_of), else "other"


Phones = Annotated[list[PhoneEntry], msgspec.Meta(max_length=MAX_PHONES)]
Emails = Annotated[list[EmailEntry], msgspec.Meta(max_length=MAX_EMAILS)]
Addresses = Annotated[list[Address], msgspec.Meta(max_length=MAX_ADDRESSES)]
Links = Annotated[list[Link], msgspec.Meta(max_length=MAX_LINKS)]
Socials = Annotated[list[Social], msgspec.Meta(max_length=MAX_SOCIALS)]

# How each list is stored: a JSON array in its own column of `cards` (migration 0010). A
# Card read holds them as tuples: a card read is a value, and the card cache holds thousands
# (an empty tuple is one object for all; an empty list is 56 bytes for each).
LIST_TYPES: dict[str, type] = {
    "phones": tuple[PhoneEntry, ...], "emails": tuple[EmailEntry, ...], "addresses": tuple[Address, ...],
    "links": tuple[Link, ...], "socials": tuple[Social, ...],
}


def to_json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def from_json(text: str | None, kind: type) -> object:
    return msgspec.json.decode(text or "[]", type=kind)


# --- names ---------------------------------------------------------------------------

# Compared without dots and case: "Dr." "dr" "DR." are one prefix.
PREFIXES = frozenset("mr mrs ms miss mx dr prof sir dame rev fr hon lord lady capt col gen sr sra srta herr frau mme mlle".split())
SUFFIXES = frozenset(
    "jr sr ii iii iv v vi vii viii ix x phd md dds dmd do esq mba ma msc bsc ba bs ms cpa rn pe jd llm obe mbe cbe kc qc".split()
)
# Lowercase words that begin a family name with what follows: "de la Cruz", "van der Waals".
PARTICLES = frozenset(
    "de da di del della dello dei degli dal du des dos das do la las le lo los van von der den ter ten zu af av op "
    "bin binti bint ibn ben al el st st. y".split()
)
# Some suffixes are also ordinary words or initials ("V", "X", "Do", "Ma", "Ms", "Sr" of Spanish
# "Señor"): they count as suffixes only at the end, after a comma or with their dots.
_WEAK_SUFFIXES = frozenset({"v", "x", "do", "ma", "ms", "ba", "bs"})


def _bare(token: str) -> str:
    return token.replace(".", "").lower()


def _is_prefix(token: str) -> bool:
    return _bare(token) in PREFIXES


def _is_suffix(token: str, after_comma: bool = False) -> bool:
    bare = _bare(token.rstrip(","))
    if bare not in SUFFIXES:
        return False
    return after_comma or bare not in _WEAK_SUFFIXES or "." in token


def split_full_name(full_name: str) -> StructuredName:
    """The structured name of a full name, by the rule docs/api.md states:

    1. Commas: "Family, Given Middle" (one comma, not before a suffix) puts the family
       first; a part after a comma that is all suffixes ("Jr.", "Ph.D.", "III") is a suffix.
    2. Leading titles (Dr., Prof., Mr., Ms., Mx., ...) are the prefix; trailing generational
       or academic suffixes (Jr., Sr., II, III, IV, Ph.D., MD, Esq., ...) the suffix. Neither
       takes the last word left: "Dr." alone is a given name.
    3. One word left: the given name. Otherwise the last word is the family name, with the
       lowercase-insensitive particles before it (de, la, van, der, von, di, bin, al, ...)
       but never the first word; the first word is the given name, the rest the middle.
    """
    text = " ".join(full_name.split())
    parts = [part.strip() for part in text.split(",")]
    suffixes: list[str] = []
    while len(parts) > 1 and parts[-1] and all(_is_suffix(t, after_comma=True) for t in parts[-1].split()):
        suffixes[:0] = parts.pop().split()
    parts = [part for part in parts if part]
    inverted = len(parts) == 2
    if inverted:  # "Cruz, Robert" / "de la Cruz, Dr. Robert"
        family_words, words = parts[0].split(), parts[1].split()
    else:
        family_words, words = [], " ".join(parts).split()
    prefixes = []
    while len(words) > 1 and _is_prefix(words[0]):
        prefixes.append(words.pop(0))
    if not inverted:
        while len(words) > 1 and _is_suffix(words[-1]):
            suffixes.insert(0, words.pop())
    suffixes = [s.rstrip(",") for s in suffixes]
    if inverted:
        given, middle = (words[0], words[1:]) if words else ("", [])
        family = family_words
    elif len(words) == 1:
        given, middle, family = words[0], [], []
    elif not words:
        given, middle, family = "", [], []
    else:
        start = len(words) - 1
        while start > 1 and words[start - 1].lower() in PARTICLES:
            start -= 1
        given, middle, family = words[0], words[1:start], words[start:]
    return StructuredName(
        prefix=" ".join(prefixes), given=given, middle=" ".join(middle), family=" ".join(family), suffix=", ".join(suffixes)
    )


def join_name(name: StructuredName) -> str:
    """The full name a structured name reads as: its parts in order, spaces between."""
    return " ".join(part.strip() for part in (name.prefix, name.given, name.middle, name.family, name.suffix) if part.strip())


# --- socials -------------------------------------------------------------------------

_NETWORK_HOSTS = {
    "linkedin.com": "linkedin", "x.com": "x", "twitter.com": "x", "github.com": "github", "instagram.com": "instagram",
    "facebook.com": "facebook", "fb.com": "facebook", "youtube.com": "youtube", "youtu.be": "youtube",
    "tiktok.com": "tiktok", "bsky.app": "bluesky", "mastodon.social": "mastodon",
}


def network_of(url: str) -> str:
    """The network a profile URL belongs to, by its host ("other" when unknown)."""
    host = re.sub(r"^https?://", "", url).split("/", 1)[0].split(":", 1)[0].lower().removeprefix("www.").removeprefix("m.")
    return _NETWORK_HOSTS.get(host, "other")
