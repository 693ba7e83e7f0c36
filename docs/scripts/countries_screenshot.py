"""The screenshots of docs/images/stats-countries-*.png: a card's stats in the console with
the visitors' countries, for scans that came through a proxy on this machine.

A live `qrcontact serve` on 127.0.0.1 (tests/support/service.py) with TRUSTED_PROXIES=127.0.0.1/32 (no Cloudflare, no
Fly, no GEOIP_DATABASE_PATH: the offline `iptocc` table). This script stands in for the
proxy (Caddy or nginx as docs/operations.md sets them up): it connects from 127.0.0.1 and
forwards each phone's address in `X-Forwarded-For`, public addresses registered in five
countries. Then Chromium logs in and takes the card's stats page at phone (390 px) and
desktop (1440 px) width. Not a test; run from the repository:

    .venv/bin/python docs/scripts/countries_screenshot.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.app import PASSWORD, PHONE_UA  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, log_in  # noqa: E402
from tests.support.service import Service  # noqa: E402

OUT = ROOT / "docs" / "images"
EMAIL = "mia@example.com"
# Addresses of well-known networks, by where the regional registries list them, and how
# many scans each sends.
VISITORS = {"81.2.69.142": 9, "8.8.8.8": 6, "5.9.0.1": 4, "133.1.0.1": 2, "1.1.1.1": 1}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        server = Service(Path(folder), TRUSTED_PROXIES="127.0.0.1/32").start()
        try:
            shoot(server.url)
        finally:
            server.stop()


def shoot(url: str) -> None:
    api = httpx.Client(base_url=url, timeout=30)
    auth = api.post("/v1/auth/register", json={"email": EMAIL, "password": PASSWORD, "marketingConsent": False}).json()
    headers = {"Authorization": f"Bearer {auth['accessToken']}"}
    card = api.post("/v1/cards", headers=headers, json={
        "fullName": "Mia Lindqvist", "title": "Product designer", "organization": "Acme Studio",
        "email": "mia@acme.example", "slug": "mia",
    }).json()
    for address, scans in VISITORS.items():
        for _ in range(scans):
            answer = api.get("/c/mia", headers={"User-Agent": PHONE_UA, "X-Forwarded-For": address})
            assert answer.status_code == 302, answer.text
    for _ in range(100):  # the counts are written by the next flush, within a second
        countries = api.get(f"/v1/cards/{card['cardId']}/stats", headers=headers).json().get("countries", [])
        if sum(item["scans"] for item in countries) >= sum(VISITORS.values()):
            break
        time.sleep(0.1)
    print("countries:", countries)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, width, height in (("phone", 390, 844), ("desktop", 1440, 900)):
            context = browser.new_context(base_url=url, viewport={"width": width, "height": height})
            page = context.new_page()
            log_in(page, EMAIL)
            page.goto(f"/app/cards/{card['cardId']}/stats?days=7")
            page.get_by_text("Countries").first.scroll_into_view_if_needed()
            page.screenshot(path=str(OUT / f"stats-countries-{name}.png"), full_page=True)
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
