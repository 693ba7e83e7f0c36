"""The OpenAPI document: every endpoint is in it, named, and the docs page serves."""

from __future__ import annotations

import re

import pytest

SPEC_OPERATIONS = {
    ("post", "/v1/auth/register"), ("post", "/v1/auth/login"), ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/logout"), ("get", "/v1/me"), ("patch", "/v1/me"), ("delete", "/v1/me"),
    ("get", "/v1/me/export"), ("post", "/v1/api-keys"), ("get", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{keyId}"), ("post", "/v1/cards"), ("get", "/v1/cards"),
    ("get", "/v1/cards/{cardId}"), ("patch", "/v1/cards/{cardId}"), ("delete", "/v1/cards/{cardId}"),
    ("get", "/v1/cards/{cardId}/qr"), ("get", "/c/{slug}"), ("head", "/c/{slug}"), ("get", "/p/{name}"),
    ("get", "/q/{name}"), ("get", "/health"),
    # sharing and statistics
    ("post", "/v1/auth/verify-email"), ("get", "/v1/cards/{cardId}/stats"), ("post", "/v1/cards/{cardId}/share"),
    ("get", "/v1/cards/{cardId}/invitations"), ("get", "/v1/viral/k-factor"), ("get", "/i/{token}"),
    ("head", "/i/{token}"), ("get", "/i/{token}/open.gif"), ("get", "/verify-email"), ("post", "/verify-email"),
    # photo and logo
    ("put", "/v1/cards/{cardId}/photo"), ("delete", "/v1/cards/{cardId}/photo"), ("put", "/v1/cards/{cardId}/logo"),
    ("delete", "/v1/cards/{cardId}/logo"), ("get", "/p/{slug}/{file}"), ("head", "/p/{slug}/{file}"),
    # events
    ("get", "/v1/events"), ("get", "/v1/events/stream"),
    # webhooks (SPEC §9)
    ("post", "/v1/webhooks"), ("get", "/v1/webhooks"), ("get", "/v1/webhooks/{webhookId}"),
    ("patch", "/v1/webhooks/{webhookId}"), ("delete", "/v1/webhooks/{webhookId}"), ("post", "/v1/webhooks/{webhookId}/test"),
    ("post", "/v1/webhooks/{webhookId}/rotate-secret"), ("get", "/v1/webhooks/{webhookId}/deliveries"),
    ("post", "/v1/webhooks/{webhookId}/deliveries/{deliveryId}/retry"),
    # the card carried everywhere (SPEC §10)
    ("get", "/v1/cards/{cardId}/signature"), ("get", "/v1/cards/{cardId}/background.png"), ("get", "/v1/cards/{cardId}/print.pdf"),
}


def test_every_endpoint_is_documented_with_an_operation_id(client):
    document = client.get("/schema/openapi.json").json()
    operations = {
        (method, path): op for path, item in document["paths"].items() for method, op in item.items()
        if method in ("get", "post", "patch", "delete", "head", "put")
    }
    missing = {key for key in SPEC_OPERATIONS if key not in {(m, p.rstrip("/") or "/") for m, p in operations}}
    assert not missing
    ids = [op["operationId"] for op in operations.values()]
    assert all(ids) and len(ids) == len(set(ids))
    assert set(document["components"]["securitySchemes"]) == {"BearerToken", "ApiKey"}


def test_path_parameters_are_named_as_in_the_spec(client):
    """SPEC §5: {cardId} and {keyId}, camelCase like the bodies, in the paths and their parameters."""
    document = client.get("/schema/openapi.json").json()
    names = set()
    for path, item in document["paths"].items():
        in_path = set(re.findall(r"{([^}]+)}", path))
        names |= in_path
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
                assert declared == in_path, (method, path)
    assert {"cardId", "keyId"} <= names
    assert not [name for name in names if "_" in name]
    assert "/v1/cards/{cardId}/invitations" in document["paths"]
    assert "/v1/api-keys/{keyId}" in document["paths"]


ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.mark.parametrize("path", ["/schema", "/schema/swagger"])
def test_interactive_docs_work_offline(client, path):
    """SPEC §5: the docs page loads everything it needs from the service itself, never a CDN."""
    response = client.get(path)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", response.text)
    assert {url.rsplit(".", 1)[-1] for url in urls} == {"js", "css", "png"}
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url  # same origin
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].split(";")[0] == ASSET_TYPES["." + url.rsplit(".", 1)[-1]]
        assert len(asset.content) > 500 or url.startswith("/app/static/docs."), url  # docs.js: a few lines
    assert "SwaggerUIBundle" in client.get("/schema/assets/swagger-ui-bundle.js").text
    assert not re.search(r"https?://", " ".join(urls))


@pytest.mark.parametrize(
    "path",
    [
        "/schema/assets/index.html", "/schema/assets/swagger-ui-bundle.js.map", "/schema/assets/..%2f__init__.py",
        "/schema/assets/swagger-ui-standalone-preset.js",  # the standalone layout is not used
    ],
)
def test_only_the_docs_assets_are_served(client, path):
    assert client.get(path).status_code == 404


@pytest.mark.parametrize(
    "path", ["/schema", "/schema/swagger", "/schema/openapi.json", "/schema/assets/swagger-ui.css", "/schema/nothing"]
)
def test_docs_send_a_csp_of_their_own_assets_and_are_never_framed(client, path):
    """Like the console: only this origin's files, nothing inline, no frame may hold the page."""
    response = client.get(path)
    csp = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert csp["frame-ancestors"] == "'none'" and csp["default-src"] == "'none'"
    assert csp["script-src"] == csp["style-src"] == "'self'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert not re.search(r"https?:|\*", response.headers["content-security-policy"])
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_docs_page_has_nothing_inline(client):
    page = client.get("/schema").text
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page)  # every script is a file
    assert not re.search(r"\son[a-z]+\s*=", page)  # no event handler attributes
    # The OAuth2 redirect page (an inline script) is not served: the API has no OAuth2 flow.
    assert client.get("/schema/oauth2-redirect.html").status_code == 404
