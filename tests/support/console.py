"""The console driven through its forms with an in-process client: log in, post a form with
its CSRF token, read the errors shown next to fields."""

from __future__ import annotations

import re

from litestar.testing import TestClient

from tests.support.app import PASSWORD

ORIGIN = "https://qr.example.test"


def csrf_of(html: str) -> str:
    return re.search(r'name="_csrf_token" value="([^"]+)"', html).group(1)


def errors_of(html: str) -> dict[str, str]:
    """The messages shown next to fields: {field: message}."""
    return dict(re.findall(r'<p class="error" id="([^"]+)-error">([^<]+)</p>', html))


def log_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns a CSRF token for the session's later forms."""
    token = csrf_of(client.get("/app/login").text)
    response = client.post("/app/login", data={"_csrf_token": token, "email": email, "password": password})
    assert response.status_code == 200 and response.url.path == "/app/cards", response.text
    return token


def post_form(client: TestClient, path: str, token: str | None, **fields) -> object:
    data = {**fields, **({"_csrf_token": token} if token else {})}
    return client.post(path, data=data, follow_redirects=False)
