"""The card as a stranger meets it (SPEC §8), in Chromium: the owner gives the card a photo
from a file chooser, a phone scans the code, the public page (axe-clean, light and dark,
phone and desktop) saves the contact, the visitor leaves details back, and the owner finds
the lead in the console."""

from __future__ import annotations

import re
import time

import httpx
import vobject
from playwright.sync_api import expect

from tests.support import images
from tests.support.app import PASSWORD, PHONE_UA, unique_email
from tests.support.browser import assert_accessible, check_page, log_in, new_page, register_account
from tests.support.waiting import wait_until


def test_photo_scan_page_save_and_details_back(browser, console_server, tmp_path):
    owner = new_page(browser, console_server)
    owner_email = register_account(console_server)
    log_in(owner, owner_email)
    owner.get_by_role("link", name="Create your first card").click()
    owner.get_by_label("Full name").fill("Dr. Robert de la Cruz Jr.")
    owner.get_by_label("Email", exact=True).fill("rob@example.com")
    owner.get_by_label("Job title").fill("CTO")
    owner.get_by_label("Organization").fill("Acme")
    owner.get_by_label("Phone").fill("+1 555 010 2030")
    owner.get_by_label("Card address").fill("rob-cruz")
    owner.get_by_label("Accent colour").fill("#0f766e")
    owner.get_by_role("button", name="Create card").click()
    expect(owner.get_by_role("status")).to_have_text("Card created.")
    owner.get_by_role("link", name="Edit").first.click()
    photo = tmp_path / "me.jpg"
    photo.write_bytes(images.jpeg((900, 700), colour=(180, 90, 40)))
    owner.set_input_files("#photo-file", str(photo))  # what a phone's camera roll hands the file input
    owner.locator("#photo-file").locator("xpath=..").get_by_role("button", name="Upload").click()
    expect(owner.get_by_alt_text("The card's photo")).to_be_visible()

    # A phone scans the code: the short link leads to the page, counted with its source.
    visitor = browser.new_context(base_url=console_server.url, viewport={"width": 390, "height": 844}, user_agent=PHONE_UA,
                                  accept_downloads=True).new_page()
    visitor.goto("/c/rob-cruz")
    assert visitor.url.endswith("/p/rob-cruz?src=qr")
    expect(visitor.get_by_role("heading", level=1)).to_have_text("Dr. Robert de la Cruz Jr.")
    expect(visitor.get_by_alt_text("Photo of Dr. Robert de la Cruz Jr.")).to_be_visible()
    visitor.get_by_text("Show QR").click()
    expect(visitor.get_by_alt_text("QR code of Dr. Robert de la Cruz Jr.'s card")).to_be_visible()
    # The card's accent colour, not the default blue: its stylesheet comes after the page's.
    save = visitor.get_by_role("link", name="Save contact")
    assert save.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(15, 118, 110)"
    check_page(visitor, "public-card")

    with visitor.expect_download() as download:
        visitor.get_by_role("link", name="Save contact").click()
    saved = vobject.readOne(download.value.path().read_text())
    assert (saved.n.value.family, saved.n.value.given, saved.n.value.suffix) == ("de la Cruz", "Robert", "Jr.")
    assert saved.tel.params["TYPE"] == ["CELL"] and saved.tel.value == "+1 555 010 2030"
    assert saved.photo.params["TYPE"] == ["JPEG"] and saved.photo.value.startswith(b"\xff\xd8")  # a JPEG

    visitor.goto("/p/rob-cruz")
    visitor.get_by_label("Your name").fill("Grace Hopper")
    visitor.locator("#x-email").fill("grace@example.com")
    visitor.locator("#x-note").fill("Met at the booth")
    visitor.locator("#x-consent").check()
    sent_at = time.monotonic()
    visitor.get_by_role("button", name="Send").click()
    expect(visitor.get_by_role("heading", level=1)).to_contain_text("Sent")

    owner.goto("/app/leads")
    expect(owner.get_by_text("Grace Hopper")).to_be_visible()
    assert time.monotonic() - sent_at < 2  # the lead is there at once, not after a batch

    # The owner's email about the lead (no SMTP_URL here: the outbox writes .eml files).
    def owner_told() -> bool:
        outbox = console_server.data_dir / "outbox"
        return any(owner_email in text and "Grace Hopper" in text
                   for text in (path.read_text(errors="replace") for path in outbox.glob("*.eml")))

    wait_until(owner_told, timeout=30, what="the owner's email about the lead")


def test_the_email_signature_is_previewed_and_copied_as_rich_text(browser, console_server):
    """SPEC §10: from the card page to its signature (axe-clean, the card page too), the
    preview framed with its images loaded, and "Copy signature" putting HTML and plain text
    on the clipboard."""
    email = unique_email()
    token = httpx.post(f"{console_server.url}/v1/auth/register",
                       json={"email": email, "password": PASSWORD, "marketingConsent": False}).json()["accessToken"]
    card = httpx.post(f"{console_server.url}/v1/cards", headers={"Authorization": f"Bearer {token}"},
                      json={"fullName": "Ada Lovelace", "email": "ada@example.com", "title": "Engineer"}).json()
    page = new_page(browser, console_server, permissions=["clipboard-read", "clipboard-write"])
    log_in(page, email)
    page.goto(f"/app/cards/{card['cardId']}")
    assert_accessible(page)  # with its "Take it everywhere" links
    page.get_by_role("link", name="Email signature").click()
    page.wait_for_url("**/signature")
    frame = page.frame_locator("iframe.signature-frame")
    expect(frame.get_by_text("My contact card")).to_be_visible()
    # The QR, from PUBLIC_BASE_URL: its width once it has loaded (0 if it failed to).
    loaded_width = frame.locator("img").last.evaluate("""image => image.complete ? image.naturalWidth : new Promise(
        done => { image.onload = image.onerror = () => done(image.naturalWidth); })""")
    assert loaded_width > 0
    assert_accessible(page)
    page.get_by_role("button", name="Copy signature").click()
    expect(page.get_by_role("status")).to_have_text(re.compile("^Copied"))
    copied = page.evaluate("""async () => {
        const [item] = await navigator.clipboard.read();
        return {html: await (await item.getType("text/html")).text(), text: await (await item.getType("text/plain")).text()};
    }""")
    assert "src=signature" in copied["html"] and "<table" in copied["html"]
    assert copied["text"].startswith("Ada Lovelace\n") and "?src=signature" in copied["text"]
