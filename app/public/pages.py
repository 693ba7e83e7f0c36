"""The public pages' HTML: the card page (app/templates/public/card.html), and the short
pages people get instead of problem documents (no such card, removed, too many requests),
as ready ASGI answers.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from urllib.parse import quote

import jinja2
from litestar import Response

from app.cards.cards import Card
from app.public.card_cache import Gone
from app.static_files import static_url

PAGE_STYLE = """
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,sans-serif;background:#f4f5f7;color:#1d2330}
main{max-width:28rem;margin:0 auto;padding:2rem 1.25rem}
.card{background:#fff;border-radius:1rem;padding:1.5rem;box-shadow:0 1px 4px rgba(0,0,0,.08)}
h1{margin:0;font-size:1.6rem;line-height:1.2;overflow-wrap:anywhere}.role{margin:.25rem 0 1.25rem;color:#5b6473}
ul{list-style:none;margin:0 0 1.5rem;padding:0}li{border-top:1px solid #eceef2}
li a{display:block;padding:.8rem 0;color:#1a56db;text-decoration:none;overflow-wrap:anywhere}
.save{display:block;text-align:center;background:#1a56db;color:#fff;padding:.9rem;border-radius:.6rem;
font-weight:600;text-decoration:none}
footer{margin-top:1rem;text-align:center;font-size:.8rem;color:#8a93a3}
""".strip()
_STYLE_HASH = base64.b64encode(hashlib.sha256(PAGE_STYLE.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent.parent / "templates" / "public"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
)


def card_page(card: Card, base_url: str) -> str:
    """The card page; `base_url` (PUBLIC_BASE_URL) makes the Open Graph links absolute, as link previews need."""
    return TEMPLATES.get_template("card.html").render(
        card=card,
        role=", ".join(part for part in (card.title, card.organization) if part),
        mailto=quote(card.email, safe="@+"),
        dial="".join(ch for ch in card.phone or "" if ch.isdigit() or ch == "+"),
        base_url=base_url,
        favicon=static_url("favicon.svg"),
        style=PAGE_STYLE,
    )


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


def page_answer(status: int, title: str, text: str, *headers: tuple[bytes, bytes]) -> Answer:
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{title}</title>'
        f"<style>{PAGE_STYLE}</style></head><body><main><div class=\"card\"><h1>{title}</h1>"
        f'<p class="role">{text}</p></div></main></body></html>'
    )
    return Answer(status, [*_PAGE_HEADERS, *headers], body.encode())


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
