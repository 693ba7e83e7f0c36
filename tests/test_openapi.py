"""The OpenAPI document: every endpoint is in it, named, and the docs page serves."""

from __future__ import annotations

import re

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


def test_interactive_docs_serve(client):
    response = client.get("/schema")
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
