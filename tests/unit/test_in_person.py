"""SPEC §8 "Show it in person": the console's full-screen code of a card (one tap from the
cards list), and share emails that come from the sender's name with their card attached."""

from __future__ import annotations

import html
import re

import pytest
from litestar.testing import TestClient

from tests.support.app import create_card, register
from tests.support.console import log_in
from tests.support.qr import decode_png


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
