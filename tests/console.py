"""In-process helpers for console pages: the CSRF token of a form page and a signed-in client."""

from __future__ import annotations

import html
import re

from litestar.testing import TestClient

from tests.conftest import PASSWORD

ORIGIN = "https://qr.example.test"  # the TestClient's base URL: our own origin


def csrf_token(client: TestClient, path: str) -> str:
    """The CSRF token in the form of the page at `path` (and its cookie, now in the client)."""
    response = client.get(path)
    assert response.status_code == 200, response.text
    return html.unescape(re.search(r'name="_csrf_token" value="([^"]+)"', response.text).group(1))


def post_form(client: TestClient, path: str, data: dict, *, form_page: str | None = None, **options):
    """POST a console form as a browser does: with the token from its page and our Origin."""
    token = csrf_token(client, form_page or path)
    headers = {"Origin": ORIGIN, **options.pop("headers", {})}
    return client.post(path, data={**data, "_csrf_token": token}, headers=headers, follow_redirects=False, **options)


def console_login(client: TestClient, email: str) -> None:
    response = post_form(client, "/app/login", {"email": email, "password": PASSWORD}, form_page="/app/login")
    assert response.status_code == 303, response.text


def error_of(page: str, field: str) -> str | None:
    """The error message shown next to a field (the `<p id="{field}-error">`), or None."""
    found = re.search(rf'<p class="error" id="{field}-error">(.*?)</p>', page, re.S)
    return html.unescape(found.group(1)) if found else None
