"""SPEC §8 "Show it in person": the console's full-screen code of a card (one tap from the
cards list), and share emails that come from the sender's name with their card attached."""

from __future__ import annotations

import html
import re

import pytest
import vobject
from litestar.testing import TestClient

from app import mail
from tests.support.app import PHONE_UA, create_card, flush_counters, register, unique_email
from tests.support.console import log_in
from tests.support.images import jpeg
from tests.support.mail import html_part, messages_to, text_part
from tests.support.qr import decode_png
from tests.support.sharing import share


@pytest.fixture
def console(client, user) -> tuple[TestClient, dict, str]:
    """A client logged in to the console as `user`, with its CSRF token."""
    return client, user, log_in(client, user["user"]["email"])


# --- the full-screen code ------------------------------------------------------------


def test_the_owner_sees_the_code_full_screen_and_it_decodes_to_the_short_link(console):
    client, user, _ = console
    card = create_card(client, user["headers"], slug="jane-in-person", fullName="Jane Doe", title="CTO",
                       organization="Acme", qrErrorCorrection="H")
    response = client.get(f"/app/cards/{card['cardId']}/show")
    assert response.status_code == 200
    page = response.text
    assert "<style" not in page and " style=" not in page and not re.search(r"<script(?![^>]*\bsrc=)", page)
    assert "unsafe-inline" not in response.headers["content-security-policy"]
    assert 'class="presenting"' in page and 'class="topbar"' not in page  # no console chrome around the code
    assert re.search(r'<h1 class="present-name">Jane Doe</h1>', page) and "CTO, Acme" in page
    assert re.search(r'<a class="button present-done" href="/app/cards">Done</a>', page)
    [src] = re.findall(r'<img class="present-qr" src="([^"]+)"', page)
    image = client.get(html.unescape(src))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    text, picture = decode_png(image.content)
    assert text == "https://qr.example.test/c/jane-in-person"
    assert picture.width >= 1000  # sharp on a phone's screen at 3x
    assert picture.convert("L").getpixel((2, 2)) == 255  # the quiet zone is white, not the card's download colours


def test_the_full_screen_code_is_one_tap_from_the_list_and_from_the_card(console):
    client, user, _ = console
    card = create_card(client, user["headers"], fullName="Ann Other")
    listed = client.get("/app/cards").text
    assert re.search(rf'<a class="button secondary tile-show" href="/app/cards/{card["cardId"]}/show">Show QR'
                     r'<span class="visually-hidden"> of Ann Other</span></a>', listed)
    shown = client.get(f"/app/cards/{card['cardId']}").text
    assert f'href="/app/cards/{card["cardId"]}/show?from=card"' in shown
    back = client.get(f"/app/cards/{card['cardId']}/show", params={"from": "card"}).text
    assert f'class="button present-done" href="/app/cards/{card["cardId"]}">Done' in back
    # Anything else goes back to the list: the parameter picks a place, never names one.
    for odd in ("https://evil.example", "//evil.example", "card2"):
        assert 'class="button present-done" href="/app/cards">Done' in client.get(
            f"/app/cards/{card['cardId']}/show", params={"from": odd}).text


def test_another_accounts_card_is_not_found(console):
    client, _, _ = console
    other = register(client)
    theirs = create_card(client, other["headers"])
    response = client.get(f"/app/cards/{theirs['cardId']}/show")
    assert response.status_code == 404 and "Jane Doe" not in response.text
    assert client.get("/app/cards/no-such-card/show").status_code == 404


def test_a_visitor_is_sent_to_the_login(client, user):
    card = create_card(client, user["headers"])
    response = client.get(f"/app/cards/{card['cardId']}/show", follow_redirects=False)
    assert response.status_code in (302, 303) and response.headers["location"].startswith("/app/login")


# --- share emails --------------------------------------------------------------------


def _shared_email(client, user, card, to: str):
    response = share(client, user, card, {"channel": "email", "to": to}, message="Good to meet you")
    assert response.status_code == 202, response.text
    [message] = messages_to(client, to)
    return message


def test_a_share_email_comes_from_the_senders_name_with_their_card_attached(client, user, settings):
    card = create_card(client, user["headers"], slug="jane-shares", fullName="Jane Doe", title="CTO", organization="Acme",
                       email="jane.card@example.com", phone="+1 555 010 2030")
    photo = client.put(f"/v1/cards/{card['cardId']}/photo", content=jpeg((300, 300)),
                       headers={**user["headers"], "Content-Type": "image/jpeg"})
    assert photo.status_code == 200, photo.text
    photo_url = photo.json()["photoUrl"]
    assert re.fullmatch(r"https://qr\.example\.test/p/jane-shares/photo-[0-9a-f]+\.jpg", photo_url)

    message = _shared_email(client, user, card, "friend@example.com")
    [sender] = message["From"].addresses
    assert sender.display_name == "Jane Doe" and sender.addr_spec == mail.sender(settings).addr_spec
    [reply_to] = message["Reply-To"].addresses
    assert reply_to.addr_spec == user["user"]["email"]  # the owner's account, not the card's address
    assert reply_to.display_name == "Jane Doe"

    body = html_part(message)
    assert f'<img src="{photo_url}"' in body
    assert "Jane Doe" in body and ">CTO</p>" in body and ">Acme</p>" in body and "Good to meet you" in body
    assert "Jane Doe (CTO, Acme) shared their contact card with you." in text_part(message)

    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "text/vcard" and attachment.get_filename() == "jane-shares.vcf"
    parsed = vobject.readOne(attachment.get_content())
    assert parsed.fn.value == "Jane Doe" and parsed.version.value == "3.0"
    assert parsed.email.value == "jane.card@example.com" and parsed.org.value == ["Acme"] and parsed.title.value == "CTO"
    assert parsed.tel.value == "+1 555 010 2030"


def test_a_share_email_without_a_photo_or_role_has_no_image_but_the_pixel(client, user):
    card = create_card(client, user["headers"], fullName="Bo Plain")
    message = _shared_email(client, user, card, unique_email())
    body = html_part(message)
    assert re.findall(r"<img [^>]*>", body) == [re.search(r'<img src="https://qr\.example\.test/i/[^"]+/open\.gif"[^>]*>', body)[0]]
    assert message["From"].addresses[0].display_name == "Bo Plain"
    assert vobject.readOne(next(message.iter_attachments()).get_content()).fn.value == "Bo Plain"


def test_a_name_too_long_for_one_header_line_falls_back_to_the_services_own_from(client, user, settings):
    # Folding could split a quoted name into two addresses: the service's own From is kept instead.
    name = "Dr. Maximiliana, Wilhelmina-Theodora von Hohenzollern-Sigmaringen und Ober-Niederhausen"
    card = create_card(client, user["headers"], fullName=name)
    message = _shared_email(client, user, card, unique_email())
    assert [a.addr_spec for a in message["From"].addresses] == [mail.sender(settings).addr_spec]
    assert message["From"].addresses[0].display_name == mail.sender(settings).display_name


def test_the_card_page_gives_its_nfc_link_and_a_tap_counts_as_nfc(client, user):
    card = create_card(client, user["headers"])
    log_in(client, user["user"]["email"])
    page = client.get(f"/app/cards/{card['cardId']}").text
    nfc = re.search(r'<code id="nfc-url">([^<]+)</code>', page).group(1)
    assert nfc == card["shortUrl"] + "?src=nfc" and "How to write it to a tag" in page
    tapped = client.get(nfc.removeprefix("https://qr.example.test"), headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    assert tapped.status_code == 302 and tapped.headers["location"].endswith("?src=nfc")
    flush_counters(client)
    sources = client.get(f"/v1/cards/{card['cardId']}/stats", headers=user["headers"]).json()["sources"]
    assert {row["name"]: row["scans"] for row in sources}["nfc"] == 1
