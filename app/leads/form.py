"""The exchange form as the card page carries it and the POST brings it back: the signed
token, the honeypot, the consent sentence, and the fields with their limits.

The token is `{issued}.{mac}`: the Unix second it was issued and an HMAC-SHA256 of the
slug and that second, keyed by a key derived from JWT_SECRET (so every process of the
service, edges included when they share JWT_SECRET, makes and checks the same tokens).
It is valid for TOKEN_LIFETIME (24 h) from its issue.

The card page is answered from memory (app/public/answers.py page_of), so the token must
not make each page unique: it is issued per TOKEN_WINDOW (an hour), its issue time the
start of the window, and the page is drawn again once per card per window. A page loaded
at the end of a window still holds a token good for 23 hours.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from typing import Annotated

import msgspec

from app.fields import Email, Name, Phone, ShortText

TOKEN_LIFETIME = 24 * 3600
TOKEN_WINDOW = 3600
# A token issued a little in the future is a clock a few seconds off between two
# processes, not a forgery: accepted up to this much ahead.
CLOCK_SKEW = 300

# The field a person never sees (hidden by the page's stylesheet, skipped by the tab
# order, autocomplete off); a bot that fills every input fills it.
HONEYPOT = "website"

LIMITS = {"name": 200, "email": 254, "phone": 32, "company": 200, "note": 2000}


def consent_text(owner_name: str) -> str:
    """The sentence next to the checkbox, stored verbatim with the lead (and shown on the page)."""
    return f"I agree that {owner_name} may keep these details and contact me about them."


@functools.cache
def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"qrcontact lead form token", hashlib.sha256).digest()


def _mac(secret: str, slug: str, issued: int) -> str:
    return hmac.new(_key(secret), f"{slug}\n{issued}".encode(), hashlib.sha256).hexdigest()


def issue_token(secret: str, slug: str, issued: int) -> str:
    """A token for the form of `slug`, issued at Unix second `issued`."""
    return f"{issued}.{_mac(secret, slug, issued)}"


def window_start(now: float) -> int:
    """The issue time of the tokens the pages carry at `now` (one per TOKEN_WINDOW)."""
    return int(now) // TOKEN_WINDOW * TOKEN_WINDOW


def token_problem(secret: str, slug: str, token: str | None, now: float) -> str | None:
    """Why the token is not good for `slug` at `now` ("missing", "bad", "expired"); None when it is."""
    if not token:
        return "missing"
    issued_text, dot, mac = token.partition(".")
    if not dot or not issued_text.isdigit() or len(issued_text) > 12 or len(mac) != 64:
        return "bad"
    issued = int(issued_text)
    # compare_digest: the time taken says nothing about how much of a guess was right.
    if not hmac.compare_digest(mac.encode(), _mac(secret, slug, issued).encode()):
        return "bad"
    if issued > now + CLOCK_SKEW:
        return "bad"
    if now - issued > TOKEN_LIFETIME:
        return "expired"
    return None


class Submitted(msgspec.Struct, frozen=True):
    """The form's fields as sent (stripped), before they are checked."""

    name: str = ""
    email: str = ""
    phone: str = ""
    company: str = ""
    note: str = ""
    consent: bool = False
    wants_card: bool = False

    @classmethod
    def of(cls, form: dict[str, str]) -> Submitted:
        return cls(
            name=form.get("name", "").strip(), email=form.get("email", "").strip(), phone=form.get("phone", "").strip(),
            company=form.get("company", "").strip(), note=form.get("note", "").strip(),
            consent=form.get("consent") == "yes", wants_card=form.get("send_card") == "yes",
        )


_FIELD_TYPES = {
    "name": Name,
    "email": Email,
    "phone": Phone,
    "company": ShortText,
    # A note may run over lines; other control characters are refused as elsewhere.
    "note": Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^[^\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]*$")],
}
MESSAGES = {
    "name": "Please give your name",
    "email": "Please give an email address like jane@example.com",
    "phone": "Please give a phone number, digits with an optional leading +",
    "company": "Please use at most 200 plain characters",
    "note": "Please keep the note under 2000 characters",
}


def field_errors(sent: Submitted) -> dict[str, str]:
    """What is wrong with each field, said for people; empty when the lead can be kept."""
    errors: dict[str, str] = {}
    for name, kind in _FIELD_TYPES.items():
        value = getattr(sent, name)
        if not value and name != "name":
            continue
        try:
            msgspec.convert(value, kind)
        except msgspec.ValidationError:
            too_long = len(value) > LIMITS[name]
            errors[name] = f"Please use at most {LIMITS[name]} characters" if too_long else MESSAGES[name]
    if not sent.email and not sent.phone and "email" not in errors:
        errors["email"] = "Please give an email address or a phone number, so they can reach you"
    if sent.wants_card and not sent.email and "email" not in errors:
        errors["email"] = "Please give your email address to get the card by email"
    if not sent.consent:
        errors["consent"] = "Please tick the box, so they may keep your details"
    return errors


def client_key(secret: str, client: str) -> str:
    """What the per-IP limit counts a client by: a keyed hash of its address (IPv6 as its
    /64, app/public/answers.py client_address), so no address is stored with a lead."""
    return hmac.new(_key(secret), f"client\n{client}".encode(), hashlib.sha256).hexdigest()[:32]
