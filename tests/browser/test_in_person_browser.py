"""SPEC §8 "Show it in person" in real Chromium at a phone's size: one tap from the cards list
to the card's code full screen (white, as large as the screen allows, the name under it),
decoded by a real reader from the screenshot, and "Done" back to the list."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.support.app import PASSWORD, unique_email
from tests.support.browser import check_page, log_in, new_page
from tests.support.qr import decode_png

PHONE = {"viewport": {"width": 390, "height": 844}}


def test_one_tap_from_the_list_to_the_code_full_screen_and_back(browser, console_server):
    email = unique_email()
    response = httpx.post(f"{console_server.url}/v1/auth/register",
                          json={"email": email, "password": PASSWORD, "marketingConsent": False})
    headers = {"Authorization": f"Bearer {response.json()['accessToken']}"}
    card = httpx.post(f"{console_server.url}/v1/cards", headers=headers, json={
        "fullName": "Jane Doe", "email": "jane@example.com", "title": "CTO", "organization": "Acme", "slug": "jane-shows"}).json()
    page = new_page(browser, console_server)
    log_in(page, email)
    page.set_viewport_size(PHONE["viewport"])

    page.get_by_role("link", name="Show QR of Jane Doe").click()
    page.wait_for_url(f"**/app/cards/{card['cardId']}/show")
    code = page.get_by_role("img", name=f"QR code leading to {console_server.url}/c/jane-shows")
    expect(code).to_be_visible()
    page.wait_for_function("document.querySelector('.present-qr').complete")
    box = code.bounding_box()
    assert round(box["width"]) == round(box["height"]) == 351  # min(90vw, 80vh) of 390 x 844
    expect(page.get_by_role("heading", name="Jane Doe")).to_be_in_viewport()
    expect(page.get_by_role("link", name="Done")).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollHeight") == 844  # the whole page fits a phone's screen
    page.emulate_media(color_scheme="dark")
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 255, 255)"  # white in dark mode too
    text, _ = decode_png(page.screenshot())
    assert text == f"{console_server.url}/c/jane-shows"
    page.emulate_media(color_scheme="light")
    check_page(page, "card-in-person")

    page.get_by_role("link", name="Done").click()
    page.wait_for_url("**/app/cards")
    expect(page.get_by_role("heading", name="Your cards")).to_be_visible()
    check_page(page, "cards-list-show-qr")
