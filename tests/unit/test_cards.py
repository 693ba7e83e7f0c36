"""Cards over HTTP: CRUD, pagination and slugs. Hostile input and who may touch what: test_hostile.py."""

from __future__ import annotations

import pytest

from tests.support.app import assert_problem, create_card, register


def test_create_answers_the_full_card(client, user):
    card = create_card(
        client, user["headers"], fullName="Zoë Ñandú", organization="Acme", title="CTO",
        phone="+44 20 7946 0958", website="https://acme.example/team?x=1", qrErrorCorrection="Q", qrSize=300,
    )
    assert set(card) == {
        "cardId", "slug", "fullName", "organization", "title", "email", "phone", "website", "qrErrorCorrection",
        "qrSize", "createdAt", "updatedAt", "viewCount", "scanCount", "saveCount", "shortUrl", "cardUrl", "vcardUrl", "qrCodeUrl",
        "photoUrl", "logoUrl",
        "name", "pronouns", "headline", "department", "phones", "emails", "addresses", "links", "socials", "accentColor",
    }
    assert card["photoUrl"] is None and card["logoUrl"] is None  # set by PUT /v1/cards/{cardId}/photo|logo
    assert card["fullName"] == "Zoë Ñandú"
    assert card["shortUrl"] == f"https://qr.example.test/c/{card['slug']}"
    assert card["cardUrl"] == f"https://qr.example.test/p/{card['slug']}"
    assert card["vcardUrl"] == f"https://qr.example.test/p/{card['slug']}.vcf"
    assert card["qrCodeUrl"].startswith("data:image/png;base64,")
    assert (card["viewCount"], card["scanCount"], card["saveCount"]) == (0, 0, 0)
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


LISTS = ["/v1/cards", "/v1/cards/{cardId}/invitations"]
BAD_PAGING = [
    {"limit": 0}, {"limit": 101}, {"limit": "x"}, {"cursor": "abc"}, {"cursor": "-1"}, {"cursor": ""},
    {"cursor": "1.5"}, {"cursor": " 1"}, {"cursor": "9999999999999999999"}, {"cursor": "9" * 40},
]


def _list_url(client, user, template: str) -> str:
    """A list with five items: five cards, or five invitations of one card."""
    if "{cardId}" not in template:
        for i in range(5):
            create_card(client, user["headers"], fullName=f"Card {i}")
        return template
    card = create_card(client, user["headers"])
    body = {"recipients": [{"channel": "sms", "to": f"+1555010010{i}"} for i in range(5)]}
    assert client.post(f"/v1/cards/{card['cardId']}/share", json=body, headers=user["headers"]).status_code == 202
    return template.format(cardId=card["cardId"])


@pytest.mark.parametrize("template", LISTS)
def test_every_list_pages_alike_and_refuses_bad_paging(client, user, template):
    """One pagination for every list: the same limits, the same cursor, a 4xx for any bad one."""
    url = _list_url(client, user, template)
    for params in BAD_PAGING:
        assert_problem(client.get(url, params=params, headers=user["headers"]), 422)
    # The largest cursor there is: a page from the start.
    assert len(client.get(url, params={"cursor": "9" * 18}, headers=user["headers"]).json()["items"]) == 5
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = client.get(url, params=params, headers=user["headers"])
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2
        seen += page["items"]
        if (cursor := page["nextCursor"]) is None:
            break
    assert len(seen) == 5 and len({str(item) for item in seen}) == 5


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
