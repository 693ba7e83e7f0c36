"""The console in real Chromium against a live `qrcontact serve`: the journeys, keyboard-only
use, axe on every page (light and dark), and screenshots at phone and desktop size in
light and dark under screenshots/."""

from __future__ import annotations

import io
import re

import resvg_py
import zxingcpp
from PIL import Image
from playwright.sync_api import Page, expect

from tests.support.app import PASSWORD, unique_email
from tests.support.browser import check_page, log_in, new_page, register_account, screenshots
from tests.support.mail import wait_for_link


def test_register_log_out_log_in_and_the_error_pages(browser, console_server):
    page = new_page(browser, console_server)
    page.goto("/app/cards/new")
    expect(page).to_have_url(re.compile(r"/app/login\?next=/app/cards/new$"))
    check_page(page, "login")
    # "Create the first account" on a new service, "Create an account" after it (open registration).
    page.get_by_role("link", name=re.compile(r"^Create (an|the first) account$")).click()
    expect(page.get_by_text("At least 12 characters")).to_be_visible()
    email = unique_email()
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill("too short")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#password-error")).to_have_text("Use at least 12 characters")
    expect(page.get_by_label("Email", exact=True)).to_have_value(email)
    check_page(page, "register-error")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Send me occasional product news by email").check()
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/app/cards$"))
    expect(page.get_by_role("status")).to_contain_text("confirm your address")
    check_page(page, "cards-empty")
    # The verification email's link, from the outbox, confirms the address.
    token = wait_for_link(console_server.data_dir / "outbox", console_server.url, email, "/verify-email?token=")
    page.goto(f"/verify-email?token={token}")
    page.get_by_role("button", name="Confirm my email address").click()
    expect(page.get_by_role("heading", name="Email confirmed")).to_be_visible()
    page.get_by_role("link", name="Go to QR Contact").click()
    page.goto("/app/account")
    expect(page.get_by_text("Confirmed", exact=True)).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_have_text("You are logged out.")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong email or password.")
    check_page(page, "login-error")
    page.goto("/app/register")
    check_page(page, "register")
    log_in(page, email)
    page.goto("/app/no-such-page")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    check_page(page, "not-found")
    page.context.close()


def tab_to(page: Page, selector: str, limit: int = 40) -> None:
    """Press Tab until the element is focused (as a keyboard user would), at most `limit` times."""
    target = page.locator(selector)
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{selector} is not reachable with Tab")


def test_a_card_is_created_with_the_keyboard_only(browser, console_server):
    page = new_page(browser, console_server)
    log_in(page, register_account(console_server))
    tab_to(page, "a.button[href='/app/cards/new'] >> nth=0")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/app/cards/new$"))
    for selector, text in [("#fullName", "Kim Keyboard"), ("#email", "kim@example.com"), ("#organization", "Tab & Co")]:
        tab_to(page, selector)
        page.keyboard.type(text)
    # The script keeps the preview in step with the fields.
    expect(page.locator("#preview [data-show='fullName']")).to_have_text("Kim Keyboard")
    expect(page.locator("#preview [data-show='role']")).to_have_text("Tab & Co")
    tab_to(page, "button.primary[type='submit']")
    screenshots(page, "card-new-keyboard")  # the focus ring, as a keyboard user sees it
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Card created.")
    expect(page.get_by_role("heading", name="Kim Keyboard")).to_be_visible()
    page.context.close()


def test_create_a_card_then_download_png_and_svg(browser, console_server):
    page = new_page(browser, console_server)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    log_in(page, register_account(console_server))
    page.get_by_role("link", name="Create your first card").click()
    check_page(page, "card-new")
    page.get_by_label("Full name").fill("Jane Doe")
    page.get_by_label("Email", exact=True).fill("jane@")
    page.get_by_label("Website").fill("acme.example")
    page.get_by_role("button", name="Create card").click()
    expect(page.locator("#email-error")).to_be_visible()
    expect(page.locator("#preview [data-show='fullName']")).to_have_text("Jane Doe")  # the server's preview
    check_page(page, "card-new-errors")
    page.get_by_label("Email", exact=True).fill("jane@example.com")
    page.get_by_label("Website").fill("https://acme.example")
    page.get_by_label("Job title").fill("CTO")
    page.get_by_label("Organization").fill("Acme")
    page.get_by_label("Phone").fill("+1 555 010 2030")
    page.get_by_label("Card address").fill("jane-doe")
    page.get_by_role("button", name="Create card").click()
    expect(page.get_by_role("status")).to_have_text("Card created.")
    short_url = f"{console_server.url}/c/jane-doe"
    expect(page.locator("#short-url")).to_have_text(short_url)
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == short_url
    check_page(page, "card")

    page.get_by_label("Size in pixels").fill("400")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == "jane-doe-dynamic.png"
    png = Image.open(download.value.path())
    assert png.size == (400, 400)
    assert [r.text for r in zxingcpp.read_barcodes(png.convert("L"))] == [short_url]

    page.get_by_label("SVG").check()
    page.get_by_label("Static (not counted)").check()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == "jane-doe-static.svg"
    svg = download.value.path().read_text()
    raster = resvg_py.svg_to_bytes(svg_string=svg, background="#ffffff", skip_system_fonts=True, shape_rendering="crisp_edges")
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(bytes(raster))).convert("L"))
    assert len(decoded) == 1 and "FN:Jane Doe" in decoded[0].text and "ORG:Acme" in decoded[0].text

    page.get_by_label("Dark colour").fill("#eeeeee")
    page.get_by_role("button", name="Download").click()
    expect(page.locator("#dark-error")).to_contain_text("contrast")
    check_page(page, "card-download-error")

    page.get_by_role("link", name="Edit").click()
    check_page(page, "card-edit")
    page.get_by_label("Job title").fill("Chief Technology Officer")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Changes saved.")

    page.get_by_role("link", name="Cards", exact=True).first.click()
    check_page(page, "cards")
    page.get_by_role("searchbox").fill("acme")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("1 card matches")).to_be_visible()
    page.get_by_role("link", name=re.compile("^Jane Doe")).click()
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_text("Printed codes for this card will stop working.")).to_be_visible()
    check_page(page, "card-delete")
    page.get_by_role("button", name="Delete Jane Doe").click()
    expect(page.get_by_role("status")).to_have_text("Card deleted.")
    page.context.close()
