"""The public pages' HTML: the card page (app/templates/public/card.html), and the short
pages people get instead of problem documents (no such card, removed, too many requests:
message.html), as ready ASGI answers. Both extend public/base.html.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from pathlib import Path
from urllib.parse import quote

import jinja2
from litestar import Response

from app.cards.cards import image_path
from app.cards.types import Card
from app.leads import form as lead_form
from app.public.card_cache import Gone
from app.public.looks import accent_of, hex_rgb, initials, team_name
from app.static_files import static_url

TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent.parent / "templates" / "public"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)


# The one inline stylesheet of the public pages (app/templates/public/page.css). The CSP
# allows it by its hash, taken from the text the pages insert, so the two cannot drift.
PAGE_STYLE = TEMPLATES.get_template("page.css").render().strip()


def style_source(style: str) -> str:
    """The CSP source that allows exactly this inline stylesheet (a CSP3 hash-source)."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(style.encode()).digest()).decode() + "'"


CSP = (
    f"default-src 'none'; style-src {style_source(PAGE_STYLE)}; img-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# Type labels as the page shows them (SPEC §8: every field with its type label).
PHONE_LABELS = {"mobile": "Mobile", "work": "Work", "home": "Home", "fax": "Fax", "other": "Phone"}
PLACE_LABELS = {"work": "Work", "home": "Home", "other": "Other"}
NETWORK_LABELS = {
    "linkedin": "LinkedIn", "x": "X", "github": "GitHub", "instagram": "Instagram", "facebook": "Facebook",
    "youtube": "YouTube", "tiktok": "TikTok", "mastodon": "Mastodon", "bluesky": "Bluesky", "other": "Profile",
}
MAPS = "https://www.google.com/maps/search/?api=1&query="  # Google's documented Maps URL: opens the app on phones


def dial(number: str, ext: str | None = None) -> str:
    """A tel: URI's number: digits and the leading +; an extension after a pause (",")."""
    digits = "".join(ch for ch in number if ch.isdigit() or ch == "+")
    return digits + (f",{ext}" if ext else "")


# The social networks' marks on the page: their short names, drawn as text in a round badge
# (no third-party logos to license or fetch).
NETWORK_MARKS = {
    "linkedin": "in", "x": "X", "github": "GH", "instagram": "IG", "facebook": "f", "youtube": "YT",
    "tiktok": "TT", "mastodon": "M", "bluesky": "BS", "other": "@",
}


def card_rows(card: Card) -> list[dict]:
    """Every field of the card as the page lists it: its icon, type label, text and link."""
    rows = [
        {"icon": "phone", "label": PHONE_LABELS[p.type], "text": p.number + (f" ext. {p.ext}" if p.ext else ""),
         "href": "tel:" + dial(p.number, p.ext), "external": False}
        for p in card.phones
    ]
    rows += [
        {"icon": "mail", "label": PLACE_LABELS[e.type] + " email", "text": e.address,
         "href": "mailto:" + quote(e.address, safe="@+"), "external": False}
        for e in card.emails
    ]
    rows += [{"icon": "link", "label": link.label or "Website", "text": link.url, "href": link.url, "external": True}
             for link in card.links]
    rows += [
        {"icon": "pin", "label": PLACE_LABELS[a.type] + " address", "text": ", ".join(a.parts()),
         "href": MAPS + quote(", ".join(a.parts()), safe=""), "external": True}
        for a in card.addresses
    ]
    return rows


def card_view(card: Card, base_url: str, vcard_href: str, wallets: tuple[bool, bool] = (False, False)) -> dict:
    """What app/templates/public/card.html draws, as plain data; `wallets` says whether the
    Apple and the Google Wallet passes are configured (their links shown)."""
    name = card.name
    return {
        "name": card.full_name,
        "initials": initials(" ".join(part for part in (name.given, name.family) if part) or card.full_name),
        "photo_url": image_path(card, "photo"),
        "logo_url": image_path(card, "logo"),
        "team_name": team_name(card),
        "pronouns": card.pronouns,
        "role": " · ".join(part for part in (card.title, card.department, card.organization) if part),
        "headline": card.headline,
        "summary": " · ".join(part for part in (card.title, card.organization) if part) or card.full_name,
        "vcard_url": vcard_href,
        "call": "tel:" + dial(card.phones[0].number, card.phones[0].ext) if card.phones else None,
        "mail": "mailto:" + quote(card.emails[0].address, safe="@+") if card.emails else None,
        "rows": card_rows(card),
        "socials": [
            {"url": s.url, "label": NETWORK_LABELS[s.network or "other"], "mark": NETWORK_MARKS[s.network or "other"]}
            for s in card.socials
        ],
        "qr_url": f"/q/{card.slug}.svg",
        "page_url": f"{base_url}/p/{card.slug}",
        "og_image_url": f"{base_url}/p/{card.slug}/og.png?v={og_version(card)}",
        "apple_wallet_url": f"/p/{card.slug}.pkpass" if wallets[0] else None,
        "google_wallet_url": f"/p/{card.slug}/google-wallet" if wallets[1] else None,
    }


def og_version(card: Card) -> str:
    """A short mark of the card's state in the preview image's URL, so link previews that
    cache images by URL fetch the new one after an edit."""
    return hashlib.sha256(f"{card.updated_at}{card.photo_hash}{accent_of(card)}".encode()).hexdigest()[:10]


def accent_style(card: Card) -> str:
    """The page's second inline stylesheet: the card's accent colour, and the text colour
    that reads best on it (black or white, whichever contrasts more)."""
    red, green, blue = hex_rgb(accent_of(card))
    on_accent = "#000" if contrast((red, green, blue), (0, 0, 0)) >= contrast((red, green, blue), (255, 255, 255)) else "#fff"
    return f":root{{--accent:#{red:02x}{green:02x}{blue:02x};--on-accent:{on_accent}}}"


def contrast(one: tuple[int, int, int], other: tuple[int, int, int]) -> float:
    """The WCAG contrast ratio of two sRGB colours."""

    def luminance(rgb: tuple[int, int, int]) -> float:
        linear = [c / 255 / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def page_csp(accent: str) -> str:
    """The card page's CSP: the shared stylesheet and this card's accent stylesheet, by hash."""
    return CSP.replace(f"style-src {style_source(PAGE_STYLE)}", f"style-src {style_source(PAGE_STYLE)} {style_source(accent)}")


def card_page(
    card: Card, base_url: str, token: str, vcard_href: str | None = None, wallets: tuple[bool, bool] = (False, False),
) -> tuple[str, str]:
    """The card page and its CSP; `base_url` (PUBLIC_BASE_URL) makes the Open Graph links
    absolute, as link previews need; `token` is the exchange form's (app/leads/form.py);
    `vcard_href` is its Save link (answers.page_of: the visit's source in it); `wallets`
    (Apple, Google) whether the wallet passes are configured (settings.apple_wallet, .google_wallet)."""
    accent = accent_style(card)
    html = TEMPLATES.get_template("card.html").render(
        view=card_view(card, base_url, vcard_href or f"/p/{card.slug}.vcf", wallets),
        exchange=exchange_form(card, token),
        accent_style=accent,
        favicon=static_url("favicon.svg"),
        style=PAGE_STYLE,
    )
    return html, page_csp(accent)


def exchange_form(card: Card, token: str, values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
                  checked: tuple[bool, bool] = (False, False)) -> dict:
    """What app/templates/public/exchange_form.html draws: the contact exchange form under the card."""
    return {
        "action": f"/p/{card.slug}/exchange", "token": token, "honeypot": lead_form.HONEYPOT,
        "consent": lead_form.consent_text(card.full_name), "owner": card.full_name,
        "fields": values or {}, "errors": errors or {}, "consent_checked": checked[0], "send_card_checked": checked[1],
        "limits": lead_form.LIMITS,
    }


def exchange_page(status: int, card: Card, token: str, values: dict[str, str], errors: dict[str, str],
                  checked: tuple[bool, bool]) -> Response[bytes]:
    """The form again, with what was wrong said next to each field (a refused exchange POST)."""
    body = TEMPLATES.get_template("exchange.html").render(
        card=card, exchange=exchange_form(card, token, values, errors, checked), style=PAGE_STYLE,
    ).encode()
    return Answer(status, [*_PAGE_HEADERS, (b"cache-control", b"no-store")], body).response()


class Answer:
    """A public page's answer as the ASGI server takes it: status, raw headers, body."""

    __slots__ = ("status", "headers", "head", "body")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.status = status
        self.headers = [*headers, (b"content-length", str(len(body)).encode())]
        self.head = b"".join([name + b": " + value + b"\r\n" for name, value in self.headers])  # as HTTP/1.1 writes them
        self.body = body

    def response(self) -> Response[bytes]:
        """The same answer for a Litestar handler (which sets content-length itself)."""
        headers = {k.decode(): v.decode() for k, v in self.headers if k not in (b"content-type", b"content-length")}
        media_type = next((v.decode() for k, v in self.headers if k == b"content-type"), None)
        if media_type is not None:
            media_type = media_type.removesuffix("; charset=utf-8")  # Litestar adds it to text types
        return Response(self.body, status_code=self.status, headers=headers, media_type=media_type)


_PAGE_HEADERS = [(b"content-type", b"text/html; charset=utf-8")] + [
    (name.lower().encode(), value.encode()) for name, value in PAGE_HEADERS.items()
]


@functools.cache
def _message_body(title: str, text: str) -> bytes:
    """A short page (app/templates/public/message.html), rendered once: its titles and texts are the code's own."""
    return TEMPLATES.get_template("message.html").render(title=title, text=text, style=PAGE_STYLE).encode()


def page_answer(status: int, title: str, text: str, *headers: tuple[bytes, bytes]) -> Answer:
    return Answer(status, [*_PAGE_HEADERS, *headers], _message_body(title, text))


def message_page(status: int, title: str, text: str) -> Response[bytes]:
    """A short HTML page for people (not a problem document), as a Litestar response."""
    return page_answer(status, title, text).response()


NOT_FOUND = page_answer(404, "No such card", "This code does not lead to a contact card.")
GONE = page_answer(410, "Card removed", "The owner has deleted this contact card.")


def not_found(found: Gone | None) -> Answer:
    return GONE if found == "gone" else NOT_FOUND


def too_many_requests(retry_after: int) -> Answer:
    return page_answer(
        429, "Too many requests", "Please wait a moment and try again.", (b"retry-after", str(retry_after).encode())
    )
