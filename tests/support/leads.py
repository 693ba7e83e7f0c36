"""The contact exchange as a visitor drives it: the token from the card page, the form posted."""

from __future__ import annotations

import re

from litestar.testing import TestClient

VISITOR = {"name": "Bob Visitor", "email": "bob@example.com", "phone": "+1 555 0100", "company": "Acme", "note": "Met at the fair",
           "consent": "yes"}


def page_token(client: TestClient, slug: str) -> str:
    """The exchange form's token, as the card page carries it."""
    page = client.get(f"/p/{slug}")
    assert page.status_code == 200, page.text
    return re.search(r'name="token" value="([^"]+)"', page.text).group(1)


def send_details(client: TestClient, slug: str, token: str | None = None, **fields):
    """Post the card page's form (the page's token unless one is given; None leaves it out)."""
    data = {**VISITOR, **fields}
    if token is not None:
        data["token"] = token
    return client.post(f"/p/{slug}/exchange", data={k: v for k, v in data.items() if v is not None}, follow_redirects=False)


def form_errors(html: str) -> list[str]:
    """The messages the exchange form shows next to its fields."""
    return re.findall(r'<p class="err"[^>]*>([^<]+)</p>', html)
