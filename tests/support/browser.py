"""Browser-test helpers for the console: a live `qrcontact serve`, Debian's Chromium driven
by Playwright, an axe-core check and screenshots.

The fixtures on these (`browser`, `console_server`) are module-scoped, so a module starts
one server and one browser. Playwright's own
browser download cannot work here: /usr/bin/chromium (Debian's package, which .ci/run
installs) is launched instead.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page

from tests.support import ROOT
from tests.support.app import PASSWORD, unique_email
from tests.support.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
SCREENSHOTS = ROOT / "screenshots"  # in .gitignore
VIEWPORTS = {"phone": (390, 844), "desktop": (1440, 900)}
AXE = Axe()


def new_page(browser: Browser, server: Service, **options) -> Page:
    """A page in a fresh context (its own cookies), at the desktop size, with downloads allowed."""
    width, height = VIEWPORTS["desktop"]
    context = browser.new_context(base_url=server.url, viewport={"width": width, "height": height}, accept_downloads=True, **options)
    context.set_default_timeout(15_000)
    return context.new_page()


def register_account(server: Service, email: str | None = None) -> str:
    """A new account made through the API (quicker than the form); returns its email."""
    email = email or unique_email()
    response = httpx.post(f"{server.url}/v1/auth/register", json={"email": email, "password": PASSWORD, "marketingConsent": False})
    assert response.status_code == 201, response.text
    return email


def log_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/app/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/app/cards*")


def assert_accessible(page: Page) -> None:
    """axe-core on the page as it is now: no serious or critical violation."""
    result = AXE.run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{page.url}:\n" + "\n".join(bad)


def screenshots(page: Page, name: str) -> list[Path]:
    """Full-page PNGs of the page at phone and desktop size, light and dark, under screenshots/;
    the page is left at the desktop size in light."""
    SCREENSHOTS.mkdir(exist_ok=True)
    written = []
    for size, (width, height) in VIEWPORTS.items():
        page.set_viewport_size({"width": width, "height": height})
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            path = SCREENSHOTS / f"{name}-{size}-{scheme}.png"
            page.screenshot(path=path, full_page=True)
            written.append(path)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": VIEWPORTS["desktop"][0], "height": VIEWPORTS["desktop"][1]})
    return written


def check_page(page: Page, name: str) -> None:
    """What every console page gets in a browser test: axe in light and dark, and its screenshots."""
    assert_accessible(page)
    page.emulate_media(color_scheme="dark")
    assert_accessible(page)
    page.emulate_media(color_scheme="light")
    screenshots(page, name)
