"""The share, invitations, stats and API keys pages in real Chromium against a live
`qrcontact serve`: share by email and WhatsApp and tap-ready deep links; the recipient's
click moving the invitation to clicked; a phone's scan in the stats chart; the CSV; an API
key that works until it is revoked. Axe and screenshots on every page."""

from __future__ import annotations

from urllib.parse import unquote

import httpx
from playwright.sync_api import expect

from tests.support.app import PASSWORD, PHONE_UA, unique_email
from tests.support.browser import check_page, log_in, new_page
from tests.support.waiting import wait_until

# The recipient's phone: Chromium says HeadlessChrome, which counts as a bot everywhere.
PHONE = {"user_agent": PHONE_UA, "viewport": {"width": 390, "height": 844}}


def api_account(server) -> tuple[str, dict]:
    """A new account (through the API) and its bearer headers."""
    email = unique_email()
    response = httpx.post(f"{server.url}/v1/auth/register", json={"email": email, "password": PASSWORD, "marketingConsent": False})
    assert response.status_code == 201, response.text
    return email, {"Authorization": f"Bearer {response.json()['accessToken']}"}


def test_share_follow_and_stats(browser, console_server):
    email, headers = api_account(console_server)
    card = httpx.post(f"{console_server.url}/v1/cards", json={"fullName": "Jane Doe", "email": "jane@example.com",
                                                               "organization": "Acme"}, headers=headers).json()
    page = new_page(browser, console_server)
    log_in(page, email)

    page.goto("/app/invitations")
    expect(page.get_by_role("heading", name="No invitations yet")).to_be_visible()
    check_page(page, "invitations-empty")

    page.goto(f"/app/cards/{card['cardId']}/share")
    expect(page.get_by_role("navigation", name="Breadcrumb")).to_contain_text("Jane Doe")
    check_page(page, "share")
    page.get_by_label("Phone numbers for WhatsApp").fill("12345")
    page.get_by_role("button", name="Share").click()
    expect(page.locator("#whatsapp-error")).to_contain_text("Not valid: 12345")
    check_page(page, "share-error")

    page.get_by_label("Email addresses").fill("ann@example.com, bob@example.com")
    page.get_by_label("Phone numbers for WhatsApp").fill("+44 20 7946 0958")
    page.get_by_label("Message").fill("Great to meet you at the conference!")
    page.get_by_role("button", name="Share").click()
    page.wait_for_url(f"**/app/cards/{card['cardId']}/share/*")
    expect(page.get_by_role("status")).to_contain_text("Invitations made for 3: emails go out by themselves")
    expect(page.get_by_text("Email queued")).to_have_count(2)
    whatsapp = page.get_by_role("link", name="Send on WhatsApp")
    expect(whatsapp).to_be_visible()
    link = whatsapp.get_attribute("href")
    assert link.startswith("https://wa.me/442079460958?text=")
    check_page(page, "share-result")

    # The recipient taps the link in WhatsApp, on their phone.
    tracked = unquote(link).split(" ")[-1]
    assert tracked.startswith(f"{console_server.url}/i/")
    phone = browser.new_context(base_url=console_server.url, **PHONE)
    recipient = phone.new_page()
    recipient.goto(tracked)
    assert recipient.url == f"{console_server.url}/p/{card['slug']}?src=share"

    page.goto("/app/invitations")
    row = page.get_by_role("row").filter(has_text="+442079460958")
    expect(row.locator(".status")).to_have_text("Clicked")
    # The emails go out by themselves (to .eml files: this server has no SMTP_URL).
    def emails_sent() -> bool:
        page.reload()
        return page.locator(".status-sent").count() == 2
    wait_until(emails_sent, timeout=60, what="the outbox to send both emails", every=0.2)
    check_page(page, "invitations")

    # A scan from a phone, counted by the next flush of the counters (about a second):
    # wait for the API to report it rather than for a fixed time.
    recipient.goto(f"/c/{card['slug']}")
    phone.close()

    def scanned() -> bool:
        stats = httpx.get(f"{console_server.url}/v1/cards/{card['cardId']}/stats?days=7", headers=headers).json()
        return stats["totals"]["scans"] == 1
    wait_until(scanned, timeout=60, what="the scan to be flushed", every=0.1)
    page.goto(f"/app/cards/{card['cardId']}/stats?days=7")
    expect(page.locator(".total-number").first).to_have_text("1")
    expect(page.locator(".chart-wide circle.dot-scans title").filter(has_text=": 1 scans")).to_have_count(1)
    page.get_by_text("The numbers per day").click()
    check_page(page, "stats")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename == f"{card['slug']}-stats.csv"
    csv = download.value.path().read_bytes().decode()
    assert "total,,1,2,0\r\n" in csv  # the scan, two views (the recipient's click, the scan's page), no save
    page.context.close()


def test_api_key_works_until_revoked(browser, console_server):
    email, _ = api_account(console_server)
    page = new_page(browser, console_server)
    log_in(page, email)
    page.goto("/app/account/keys")
    expect(page.get_by_text("No keys yet")).to_be_visible()
    check_page(page, "keys-empty")

    page.get_by_label("Name").fill("Build server")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text()
    expect(page.get_by_role("button", name="Copy")).to_be_visible()  # shown by the script
    check_page(page, "keys-created")
    cards = httpx.get(f"{console_server.url}/v1/cards", headers={"X-API-Key": key})
    assert cards.status_code == 200

    page.goto("/app/account/keys")
    assert key not in page.content()
    page.get_by_role("link", name="Revoke Build server").click()
    expect(page.get_by_role("heading", name="Revoke “Build server”?")).to_be_visible()
    check_page(page, "keys-revoke")
    page.get_by_role("button", name="Revoke the key").click()
    expect(page.get_by_role("status")).to_contain_text("API key revoked")
    assert httpx.get(f"{console_server.url}/v1/cards", headers={"X-API-Key": key}).status_code == 401
    page.context.close()
