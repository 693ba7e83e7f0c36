"""The team brand (SPEC §10): who may read and change it, what it refuses (422s naming the
field), the defaults new cards start with, locked fields, and the brand worn at once by
every member's public page, codes, cache and an edge's copy."""

from __future__ import annotations

import io

import pytest
import zxingcpp
from PIL import Image

from app.edge import local_copy
from app.sharing import sharing
from app.wallet import apple, google
from tests.support import images
from tests.support.app import assert_problem, create_card, register
from tests.support.console import csrf_of, errors_of, log_in, post_form
from tests.support.db import query

BRAND = {
    "name": "Acme Studio", "accentColor": "#b4231a", "qrDark": "#1f2a44", "qrLight": "#fffdf5", "logoOnCodes": True,
    "lockedFields": ["organization", "phone"],
    "defaults": {"organization": "Acme Studio", "website": "https://acme.example", "phone": "+1 555 010 2030",
                 "address": {"street": "1 Main St", "locality": "Springfield", "country": "US"}},
}


@pytest.fixture
def team(client) -> tuple[dict, dict]:
    """The admin (the first account) and a member."""
    return register(client), register(client)


def put_brand(client, who: dict, **changes):
    return client.put("/v1/team/brand", json={**BRAND, **changes}, headers=who["headers"])


def put_logo(client, who: dict, body: bytes, content_type: str = "image/png"):
    return client.put("/v1/team/brand/logo", content=body, headers={**who["headers"], "Content-Type": content_type})


def test_who_may_read_and_change_it(client, team):
    admin, member = team
    assert client.get("/v1/team/brand").status_code == 401
    unset = client.get("/v1/team/brand", headers=member["headers"]).json()
    assert unset["name"] is None and unset["lockedFields"] == [] and unset["qrDark"] == "#000000"
    assert_problem(put_brand(client, member), 403)
    assert_problem(put_logo(client, member, images.png((64, 64))), 403)
    assert_problem(client.delete("/v1/team/brand/logo", headers=member["headers"]), 403)
    saved = put_brand(client, admin)
    assert saved.status_code == 200, saved.text
    assert client.get("/v1/team/brand", headers=member["headers"]).json() == saved.json()
    logo = put_logo(client, admin, images.png((300, 200)))
    assert logo.status_code == 200 and logo.json()["logoUrl"]
    image = client.get("/v1/team/brand/logo", headers=member["headers"])
    assert image.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(image.content)).size == (200, 200)
    assert client.delete("/v1/team/brand/logo", headers=admin["headers"]).json()["logoUrl"] is None


REFUSED = [  # (changes, the field the 422 names)
    ({"accentColor": "red"}, "accentColor"),
    ({"qrDark": "#12345"}, "qrDark"),
    ({"qrDark": "#eeeeee", "qrLight": "#ffffff"}, "qrDark"),
    ({"lockedFields": ["fullName"]}, "lockedFields"),
    ({"defaults": {"website": "javascript:alert(1)"}}, "defaults.website"),
    ({"defaults": {"colour": "#000000"}}, "colour"),
    ({"defaults": {"address": {"street": " "}}}, "defaults.address"),
    ({"name": "x" * 201}, "name"),
]


def test_refusals_name_the_field(client):
    admin = register(client)
    for changes, field in REFUSED:
        body = assert_problem(put_brand(client, admin, **changes), 422)
        assert field in str(body["errors"]), (changes, body)
    assert client.get("/v1/team/brand", headers=admin["headers"]).json()["updatedAt"] is None  # nothing half-written


def test_defaults_start_new_cards_and_locked_fields_hold(client, team):
    admin, member = team
    put_brand(client, admin)
    card = create_card(client, member["headers"], fullName="Mia Member", email="mia@example.com")
    assert card["organization"] == "Acme Studio" and card["website"] == "https://acme.example"
    assert card["phones"] == [{"number": "+1 555 010 2030", "type": "work", "ext": None}]
    assert card["addresses"][0]["locality"] == "Springfield"
    for body, field in (
        ({"organization": "Other Inc"}, "organization"),
        ({"phone": "+1 555 999 0000"}, "phone"),
        ({"phones": [{"number": "+1 555 999 0000"}]}, "phone"),
    ):
        refused = assert_problem(client.patch(f"/v1/cards/{card['cardId']}", json=body, headers=member["headers"]), 422)
        assert refused["errors"][0]["field"] == field, refused
    refused = client.post("/v1/cards", json={"fullName": "M", "email": "m@example.com", "organization": "Other"},
                          headers=member["headers"])
    assert assert_problem(refused, 422)["errors"][0]["field"] == "organization"
    # Unlocked fields stay the member's; an admin may change a locked one.
    assert client.patch(f"/v1/cards/{card['cardId']}", json={"website": "https://mia.example"},
                        headers=member["headers"]).status_code == 200
    own = create_card(client, admin["headers"], organization="Admin Co")
    assert own["organization"] == "Admin Co"
    # A new locked default reaches every card at once, the API's view included.
    put_brand(client, admin, defaults={**BRAND["defaults"], "organization": "Acme Studio Ltd"})
    again = client.get(f"/v1/cards/{card['cardId']}", headers=member["headers"]).json()
    assert again["organization"] == "Acme Studio Ltd" and again["website"] == "https://mia.example"
    # A locked logo: members keep the team's.
    put_brand(client, admin, lockedFields=["logo"])
    refused = put_json_logo = client.put(f"/v1/cards/{card['cardId']}/logo", content=images.png((64, 64)),
                                         headers={**member["headers"], "Content-Type": "image/png"})
    assert assert_problem(put_json_logo, 422)["errors"][0]["field"] == "logo", refused.text


def test_public_page_code_cache_and_copy_wear_it_at_once(client, team, settings):
    admin, member = team
    card = create_card(client, member["headers"], slug="mia-card", fullName="Mia Member", email="mia@example.com")
    plain = client.get("/p/mia-card").text  # cached before the brand exists
    assert "Acme Studio" not in plain
    put_brand(client, admin)
    put_logo(client, admin, images.png((300, 300), colour=(200, 30, 30)))
    page = client.get("/p/mia-card").text
    assert "--accent:#b4231a" in page and '<p class="team">Acme Studio</p>' in page
    logo_path = page.split('<img class="logo" src="', 1)[1].split('"', 1)[0]
    assert client.get(logo_path).headers["content-type"] == "image/jpeg"
    # The card's own accent wins, unless the team locks it.
    client.patch(f"/v1/cards/{card['cardId']}", json={"accentColor": "#0b6bcb"}, headers=member["headers"])
    assert "--accent:#0b6bcb" in client.get("/p/mia-card").text
    put_brand(client, admin, lockedFields=["accentColor"])
    assert "--accent:#b4231a" in client.get("/p/mia-card").text
    # Downloads take the team's code colours and logo (logoOnCodes), and still decode.
    code = client.get(f"/v1/cards/{card['cardId']}/qr", params={"size": 512}, headers=member["headers"])
    picture = Image.open(io.BytesIO(code.content)).convert("RGB")
    assert [result.text for result in zxingcpp.read_barcodes(picture)] == [card["shortUrl"]]
    assert picture.getpixel((256, 256))[0] > 150 and picture.getpixel((256, 256))[1] < 90  # the red logo in the middle
    assert picture.getpixel((2, 2)) == (0xff, 0xfd, 0xf5)  # qrLight
    assert client.get(f"/v1/cards/{card['cardId']}/qr", params={"size": 512, "logo": "false"},
                      headers=member["headers"]).content != code.content
    # An edge's copy (the same file here) serves the brand with the card, and a brand change
    # moves every card in the change sequence the edges follow.
    found = local_copy.read_card(settings.database_path, "mia-card")
    assert found.brand.name == "Acme Studio" and found.brand.accent_locked
    assert local_copy.read_image(settings.database_path, found.id, "logo", False, team=True)[0] == found.brand.logo_hash
    create_card(client, admin["headers"], slug="admin-card")
    before = local_copy.copy_position(settings.database_path)
    put_brand(client, admin, name="Acme", lockedFields=["accentColor"])
    assert sorted(slug for (slug,) in query(settings, "SELECT slug FROM card_changes WHERE seq > ?", (before,))) == [
        "admin-card", "mia-card"]
    assert '<p class="team">Acme</p>' in client.get("/p/admin-card").text
    # Wallet passes and share emails wear it too.
    found = local_copy.read_card(settings.database_path, "mia-card")
    assert apple.pass_json(settings, found)["backgroundColor"] == "rgb(180, 35, 26)"
    assert apple.pass_json(settings, found)["logoText"] == "Acme"
    assert google.generic_object(settings, found)["hexBackgroundColor"] == "#b4231a"
    email = sharing.invitation_email(settings, found, "bo@example.com", "token", None, "mia@example.com")
    html = email.get_body(("html",)).get_content()
    assert "background:#b4231a" in html and f"/p/mia-card/logo-{found.brand.logo_hash}.jpg" in html


def test_console_brand_page(client, team):
    admin, member = team
    token = log_in(client, admin["user"]["email"])
    assert "Members cannot change" in client.get("/app/team/brand").text
    refused = post_form(client, "/app/team/brand", token, name="Acme", accentColor="blue", qrDark="#ffffff", qrLight="#ffffff")
    assert refused.status_code == 422 and errors_of(refused.text) == {"accentColor": "Choose a colour like #1a56db"}
    refused = post_form(client, "/app/team/brand", token, name="Acme", qrDark="#eeeeee", qrLight="#ffffff")
    assert refused.status_code == 422 and "qrDark" in errors_of(refused.text)
    saved = post_form(client, "/app/team/brand", token, name="Acme", accentColor="#b4231a", qrDark="#000000",
                      qrLight="#ffffff", organization="Acme", **{"lock-organization": "yes"})
    assert saved.status_code == 303, saved.text
    assert client.get("/v1/team/brand", headers=admin["headers"]).json()["lockedFields"] == ["organization"]
    card = create_card(client, member["headers"])
    client.get("/app/logout")
    log_in(client, member["user"]["email"])
    assert client.get("/app/team/brand").status_code == 403
    form = client.get(f"/app/cards/{card['cardId']}/edit").text
    assert 'name="organization" type="text" value="Acme" readonly' in form.replace("\n    ", "")
    assert csrf_of(form)
