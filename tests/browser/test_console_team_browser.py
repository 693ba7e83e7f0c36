"""The team admin's pages in real Chromium against a live `qrcontact serve` with
REGISTRATION=invite: the admin invites someone, who registers through the emailed link;
the admin deactivates them; their login fails and their card still scans. Axe and
screenshots of every team page, and the 403 page a member gets."""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.app import PASSWORD, PHONE_UA, unique_email
from tests.support.browser import VIEWPORTS, assert_accessible, check_page, log_in, new_page, register_account
from tests.support.db import query
from tests.support.mail import wait_for_link
from tests.support.service import Service
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def console_server(tmp_path_factory) -> Iterator[Service]:
    """`qrcontact serve` where only an invitation lets a second account in."""
    service = Service(tmp_path_factory.mktemp("team") / "data", REPLICA_URL="off", REGISTRATION="invite").start()
    yield service
    service.stop()


def scan_count(server: Service, slug: str) -> int:
    database = SimpleNamespace(database_path=server.data_dir / "qrcontact.db")
    return query(database, "SELECT scan_count FROM cards WHERE slug = ?", (slug,))[0][0]


def test_an_invited_user_registers_is_deactivated_and_their_card_still_scans(browser, console_server):
    admin_email = register_account(console_server)  # the first account may always register: the admin
    admin = new_page(browser, console_server)
    log_in(admin, admin_email)
    admin.get_by_role("link", name="Team").click()
    expect(admin.get_by_text("No invitation is waiting")).to_be_visible()
    check_page(admin, "team")

    invited = unique_email()
    admin.get_by_label("Email", exact=True).fill("not an address")
    admin.get_by_role("button", name="Send invitation").click()
    expect(admin.locator("#email-error")).to_be_visible()
    check_page(admin, "team-error")
    admin.get_by_label("Email", exact=True).fill(invited)
    admin.get_by_role("button", name="Send invitation").click()
    expect(admin.get_by_role("status")).to_have_text("Invitation sent.")
    expect(admin.locator("aside")).to_contain_text(invited)

    # The invited person opens the link in their own browser and registers.
    token = wait_for_link(console_server.data_dir / "outbox", console_server.url, invited, "/app/register?invite=")
    person = new_page(browser, console_server)
    person.goto(f"/app/register?invite={token}")
    person.get_by_label("Email", exact=True).fill(invited)
    person.get_by_label("Password", exact=True).fill(PASSWORD)
    person.get_by_role("button", name="Create account").click()
    expect(person).to_have_url(re.compile(r"/app/cards$"))
    expect(person.get_by_role("link", name="Team")).to_have_count(0)  # not an admin
    person.goto("/app/team")
    expect(person.get_by_role("heading", name="Not allowed")).to_be_visible()
    check_page(person, "team-forbidden")
    login = httpx.post(f"{console_server.url}/v1/auth/login", json={"email": invited, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
    card = httpx.post(f"{console_server.url}/v1/cards", json={"fullName": "Ivy Invited", "email": invited, "slug": "ivy"},
                      headers=headers)
    assert card.status_code == 201, card.text

    # The admin finds them, looks at the growth and system pages, and deactivates them.
    admin.reload()
    admin.get_by_role("searchbox").fill(invited.split("@")[0])
    admin.get_by_role("button", name="Search").click()
    admin.get_by_role("link", name=invited).click()
    expect(admin.get_by_role("heading", name=invited)).to_be_visible()
    check_page(admin, "team-user")
    admin.get_by_label("Hand cards to").select_option(label=admin_email)
    admin.get_by_role("button", name="Continue…").click()
    expect(admin.get_by_text("Printed codes keep working")).to_be_visible()
    check_page(admin, "team-transfer")
    admin.get_by_role("link", name="Cancel").click()
    admin.get_by_role("link", name="Deactivate…").click()
    expect(admin.get_by_text("They can no longer log in.")).to_be_visible()
    check_page(admin, "team-deactivate")
    admin.get_by_role("button", name=f"Deactivate {invited}").click()
    expect(admin.get_by_role("status")).to_contain_text("Their cards keep working.")
    expect(admin.get_by_role("button", name="Reactivate")).to_be_visible()

    # Their session is over and their login fails; their printed code still answers and counts.
    person.goto("/app/cards")
    expect(person).to_have_url(re.compile(r"/app/login$"))
    person.get_by_label("Email", exact=True).fill(invited)
    person.get_by_label("Password", exact=True).fill(PASSWORD)
    person.get_by_role("button", name="Log in").click()
    expect(person.get_by_role("alert")).to_contain_text("Wrong email or password.")
    scan = httpx.get(f"{console_server.url}/c/ivy", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    assert scan.status_code == 302 and scan.headers["location"].endswith("/p/ivy?src=qr")
    wait_until(lambda: scan_count(console_server, "ivy") == 1, what="the scan to be counted")

    admin.get_by_role("link", name="Team", exact=True).first.click()
    admin.get_by_role("link", name="Growth").click()
    expect(admin.locator("svg.growth-chart")).to_be_visible()
    check_page(admin, "team-growth")
    width, height = VIEWPORTS["phone"]
    admin.set_viewport_size({"width": width, "height": height})
    assert_accessible(admin)  # on a phone the chart and the table scroll sideways: each region takes the keyboard
    admin.set_viewport_size({"width": VIEWPORTS["desktop"][0], "height": VIEWPORTS["desktop"][1]})
    admin.get_by_role("link", name="System").click()
    expect(admin.get_by_role("heading", name="Database")).to_be_visible()
    check_page(admin, "team-system")
    person.context.close()
    admin.context.close()
