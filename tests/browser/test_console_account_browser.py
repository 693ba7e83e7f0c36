"""The account pages in real Chromium against a live `qrcontact serve`: a forgotten password
reset by the emailed link ends the session of another browser; a password change keeps
this session and ends the other; the email change by a link; axe and screenshots of each page."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from tests.support.app import PASSWORD, unique_email
from tests.support.browser import check_page, log_in, new_page, register_account
from tests.support.mail import wait_for_link
from tests.support.service import Service

NEW_PASSWORD = "a brand new passphrase here"


def logged_in_elsewhere(browser: Browser, server: Service, email: str, password: str = PASSWORD) -> Page:
    """A second browser (its own cookies) logged in to the same account."""
    page = new_page(browser, server)
    log_in(page, email, password)
    return page


def test_a_forgotten_password_is_reset_by_email_and_the_old_session_ends(browser, console_server):
    email = register_account(console_server)
    old_session = logged_in_elsewhere(browser, console_server, email)

    page = new_page(browser, console_server)
    page.goto("/app/login")
    page.get_by_role("link", name="Forgot password?").click()
    check_page(page, "password-reset")
    page.get_by_label("Email").fill("not an address")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.locator("#email-error")).to_have_text("Enter an email address like name@example.com")
    check_page(page, "password-reset-error")
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Send me a link").click()
    expect(page.get_by_role("status")).to_contain_text("a link to choose a new password is on its way")
    check_page(page, "password-reset-sent")

    token = wait_for_link(console_server.data_dir / "outbox", console_server.url, email, "/app/password-reset/")
    page.goto(f"/app/password-reset/{token}")
    expect(page.get_by_text("At least 12 characters")).to_be_visible()
    page.get_by_label("New password").fill("short")
    page.get_by_role("button", name="Set new password").click()
    expect(page.locator("#newPassword-error")).to_have_text("Use at least 12 characters")
    check_page(page, "password-reset-new-error")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set new password").click()
    expect(page).to_have_url(re.compile(r"/app/login$"))
    expect(page.get_by_role("status")).to_contain_text("Your new password is set")
    log_in(page, email, NEW_PASSWORD)

    old_session.goto("/app/account")
    expect(old_session).to_have_url(re.compile(r"/app/login\?next=/app/account$"))
    page.goto(f"/app/password-reset/{token}")  # used: it says so, and offers a new one
    expect(page.get_by_role("heading", name="This link no longer works")).to_be_visible()
    check_page(page, "password-reset-gone")
    page.get_by_role("link", name="Send me a new link").click()
    expect(page).to_have_url(re.compile(r"/app/password-reset$"))
    old_session.context.close()
    page.context.close()


def test_a_password_change_keeps_this_session_and_ends_the_other(browser, console_server):
    email = register_account(console_server)
    other = logged_in_elsewhere(browser, console_server, email)
    page = logged_in_elsewhere(browser, console_server, email)
    page.get_by_role("link", name="Account").click()
    check_page(page, "account")
    page.get_by_label("Current password").fill("not my password")
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#currentPassword-error")).to_have_text("That is not your current password")
    expect(page.get_by_role("alert")).to_contain_text("Current password: That is not your current password")
    check_page(page, "account-error")
    page.get_by_label("Current password").fill(PASSWORD)
    page.get_by_label("New password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("status")).to_contain_text("this one stays")
    page.reload()
    expect(page.get_by_role("heading", name="Your account", exact=True)).to_be_visible()
    other.goto("/app/cards")
    expect(other).to_have_url(re.compile(r"/app/login"))

    # The email change: a link to the new address, opened in this session.
    new_email = unique_email()
    page.get_by_label("New email address").fill(new_email)
    page.get_by_label("Your password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("status")).to_contain_text("We sent a link to your new address")
    token = wait_for_link(console_server.data_dir / "outbox", console_server.url, new_email, "/app/account/email/")
    page.goto(f"/app/account/email/{token}")
    check_page(page, "account-email-confirm")
    page.get_by_role("button", name="Use the new address").click()
    expect(page.get_by_role("status")).to_have_text("Your email address is changed.")
    expect(page.locator("main")).to_contain_text(new_email)
    other.context.close()
    page.context.close()
