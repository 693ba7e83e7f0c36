"""Cards over HTTP: CRUD, pagination, validation, slugs, and who may touch what."""

from __future__ import annotations

import sqlite3

import pytest

from tests.conftest import assert_problem, create_card, register

HOSTILE_TEXT = ["line\nbreak", "carriage\rreturn", "nul\x00byte", "sep\u2028arator", "bell\x07", "del\x7f", "c1\x85"]


def test_create_answers_the_full_card(client, user):
    card = create_card(
        client, user["headers"], fullName="Zoë Ñandú", organization="Acme", title="CTO",
        phone="+44 20 7946 0958", website="https://acme.example/team?x=1", qrErrorCorrection="Q", qrSize=300,
    )
    assert set(card) == {
        "cardId", "slug", "fullName", "organization", "title", "email", "phone", "website", "qrErrorCorrection",
        "qrSize", "createdAt", "updatedAt", "viewCount", "scanCount", "shortUrl", "cardUrl", "vcardUrl", "qrCodeUrl",
    }
    assert card["fullName"] == "Zoë Ñandú"
    assert card["shortUrl"] == f"https://qr.example.test/c/{card['slug']}"
    assert card["cardUrl"] == f"https://qr.example.test/p/{card['slug']}"
    assert card["vcardUrl"] == f"https://qr.example.test/p/{card['slug']}.vcf"
    assert card["qrCodeUrl"].startswith("data:image/png;base64,")
    assert (card["viewCount"], card["scanCount"]) == (0, 0)
    assert client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json() == card


def test_generated_slugs_are_short_and_unique(client, user):
    slugs = {create_card(client, user["headers"])["slug"] for _ in range(20)}
    assert len(slugs) == 20
    assert all(len(s) == 7 and s.isalnum() and s.islower() for s in slugs)


def test_list_is_newest_first_and_paginates_with_a_cursor(client, user):
    made = [create_card(client, user["headers"], fullName=f"Card {i}")["cardId"] for i in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/v1/cards", params=params, headers=user["headers"]).json()
        seen += [c["cardId"] for c in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))
    assert client.get("/v1/cards", headers=user["headers"]).json()["nextCursor"] is None


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"cursor": "abc"}, {"cursor": "-1"}])
def test_list_refuses_bad_paging(client, user, params):
    assert_problem(client.get("/v1/cards", params=params, headers=user["headers"]), 422)


def test_patch_changes_only_what_is_sent_and_null_clears(client, user):
    card = create_card(client, user["headers"], organization="Acme", title="CTO")
    patched = client.patch(
        f"/v1/cards/{card['cardId']}", json={"title": "CEO", "organization": None}, headers=user["headers"]
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["title"], body["organization"], body["fullName"]) == ("CEO", None, "Jane Doe")
    assert body["updatedAt"] > card["updatedAt"]


def test_patch_cannot_change_the_slug(client, user):
    card = create_card(client, user["headers"], slug="fixed-slug")
    problem = assert_problem(
        client.patch(f"/v1/cards/{card['cardId']}", json={"slug": "new-slug"}, headers=user["headers"]), 422
    )
    assert problem["errors"][0]["field"] == "slug"
    same = client.patch(f"/v1/cards/{card['cardId']}", json={"slug": "fixed-slug", "title": "X"}, headers=user["headers"])
    assert same.status_code == 200 and same.json()["slug"] == "fixed-slug"


def test_delete_retires_the_slug(client, user):
    card = create_card(client, user["headers"], slug="short-lived")
    assert client.delete(f"/v1/cards/{card['cardId']}", headers=user["headers"]).status_code == 204
    assert_problem(client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]), 404)
    assert_problem(
        client.post("/v1/cards", json={"fullName": "X", "email": "x@example.com", "slug": "short-lived"}, headers=user["headers"]),
        409,
    )


def test_taken_slug_is_a_conflict(client, user):
    create_card(client, user["headers"], slug="jane")
    other = register(client)
    problem = assert_problem(
        client.post("/v1/cards", json={"fullName": "X", "email": "x@example.com", "slug": "jane"}, headers=other["headers"]),
        409,
    )
    assert problem["errors"][0]["field"] == "slug"


INVALID_CARDS = [
    ({"fullName": "", "email": "a@example.com"}, "fullName"),
    ({"fullName": "   ", "email": "a@example.com"}, "fullName"),
    ({"fullName": "x" * 201, "email": "a@example.com"}, "fullName"),
    ({"email": "a@example.com"}, "fullName"),
    ({"fullName": "A"}, "email"),
    ({"fullName": "A", "email": "no-at-sign"}, "email"),
    ({"fullName": "A", "email": "a@example.com\nBcc: b@example.com"}, "email"),
    ({"fullName": "A", "email": "a@example.com", "website": "javascript:alert(1)"}, "website"),
    ({"fullName": "A", "email": "a@example.com", "website": "data:text/html,<script>"}, "website"),
    ({"fullName": "A", "email": "a@example.com", "website": "ftp://example.com"}, "website"),
    ({"fullName": "A", "email": "a@example.com", "website": "//example.com"}, "website"),
    ({"fullName": "A", "email": "a@example.com", "website": "https://user@evil.example"}, "website"),
    ({"fullName": "A", "email": "a@example.com", "website": "https://e.com/" + "a" * 2048}, "website"),
    ({"fullName": "A", "email": "a@example.com", "phone": "call me"}, "phone"),
    ({"fullName": "A", "email": "a@example.com", "slug": "ab"}, "slug"),
    ({"fullName": "A", "email": "a@example.com", "slug": "Upper"}, "slug"),
    ({"fullName": "A", "email": "a@example.com", "slug": "../etc"}, "slug"),
    ({"fullName": "A", "email": "a@example.com", "slug": "a/b/c"}, "slug"),
    ({"fullName": "A", "email": "a@example.com", "slug": "x" * 101}, "slug"),
    ({"fullName": "A", "email": "a@example.com", "qrSize": 127}, "qrSize"),
    ({"fullName": "A", "email": "a@example.com", "qrSize": 2049}, "qrSize"),
    ({"fullName": "A", "email": "a@example.com", "qrErrorCorrection": "X"}, "qrErrorCorrection"),
    ({"fullName": "A", "email": "a@example.com", "viewCount": 99}, None),
] + [({"fullName": "A", "email": "a@example.com", field: value}, field) for field in ("fullName", "organization", "title") for value in HOSTILE_TEXT]


@pytest.mark.parametrize("body, field", INVALID_CARDS)
def test_invalid_cards_are_refused_and_nothing_is_stored(client, settings, user, body, field):
    problem = assert_problem(client.post("/v1/cards", json=body, headers=user["headers"]), 422)
    if field:
        assert field in {e["field"] for e in problem["errors"]}, problem
    assert sqlite3.connect(settings.database_path).execute("SELECT count(*) FROM cards").fetchone()[0] == 0


@pytest.mark.parametrize("slug", ["admin", "api", "health", "metrics", "schema"])
def test_reserved_slugs_are_refused(client, user, slug):
    problem = assert_problem(
        client.post("/v1/cards", json={"fullName": "A", "email": "a@example.com", "slug": slug}, headers=user["headers"]),
        422,
    )
    assert problem["errors"][0]["field"] == "slug"


@pytest.mark.parametrize("field, value", [(f, v) for f in ("fullName", "title") for v in HOSTILE_TEXT[:4]])
def test_patch_refuses_control_characters(client, user, field, value):
    card = create_card(client, user["headers"])
    assert_problem(client.patch(f"/v1/cards/{card['cardId']}", json={field: value}, headers=user["headers"]), 422)
    assert client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json() == card


def test_malformed_and_wrongly_typed_bodies_are_4xx(client, user):
    for body, content_type in [(b"{not json", "application/json"), (b"[]", "application/json"), (b"fullName=A", "text/plain")]:
        response = client.post("/v1/cards", content=body, headers={**user["headers"], "Content-Type": content_type})
        assert 400 <= response.status_code < 500, (body, response.status_code)
        assert response.headers["content-type"].startswith("application/problem+json")


CARD_ROUTES = [
    ("GET", "/v1/cards/{id}"),
    ("PATCH", "/v1/cards/{id}"),
    ("DELETE", "/v1/cards/{id}"),
    ("GET", "/v1/cards/{id}/qr"),
]


@pytest.mark.parametrize("method, path", CARD_ROUTES)
@pytest.mark.parametrize("who, status", [("owner", 200), ("stranger", 404), ("anonymous", 401)])
def test_card_permissions(client, user, method, path, who, status):
    card = create_card(client, user["headers"])
    headers = {"owner": user["headers"], "stranger": register(client)["headers"], "anonymous": {}}[who]
    json = {"title": "Changed"} if method == "PATCH" else None
    response = client.request(method, path.format(id=card["cardId"]), headers=headers, json=json)
    expected = 204 if (method == "DELETE" and status == 200) else status
    assert response.status_code == expected, response.text
    if who != "owner":
        # The owner's card is untouched.
        assert client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"]).json() == card


@pytest.mark.parametrize("method, path", [("GET", "/v1/cards"), ("POST", "/v1/cards"), ("GET", "/v1/me"), ("GET", "/v1/api-keys")])
def test_api_needs_credentials(client, method, path):
    assert_problem(client.request(method, path, json={}), 401)
