"""The OpenAPI document: every endpoint is in it, named, and the docs page serves."""

from __future__ import annotations

SPEC_OPERATIONS = {
    ("post", "/v1/auth/register"), ("post", "/v1/auth/login"), ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/logout"), ("get", "/v1/me"), ("patch", "/v1/me"), ("delete", "/v1/me"),
    ("get", "/v1/me/export"), ("post", "/v1/api-keys"), ("get", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{key_id}"), ("post", "/v1/cards"), ("get", "/v1/cards"),
    ("get", "/v1/cards/{card_id}"), ("patch", "/v1/cards/{card_id}"), ("delete", "/v1/cards/{card_id}"),
    ("get", "/v1/cards/{card_id}/qr"), ("get", "/c/{slug}"), ("head", "/c/{slug}"), ("get", "/p/{name}"),
    ("get", "/q/{name}"), ("get", "/health"),
    # sharing and statistics
    ("post", "/v1/auth/verify-email"), ("get", "/v1/cards/{card_id}/stats"), ("post", "/v1/cards/{card_id}/share"),
    ("get", "/v1/cards/{card_id}/invitations"), ("get", "/v1/viral/k-factor"), ("get", "/i/{token}"),
    ("head", "/i/{token}"), ("get", "/i/{token}/open.gif"), ("get", "/verify-email"), ("post", "/verify-email"),
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


def test_interactive_docs_serve(client):
    response = client.get("/schema")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
