"""The screenshots of docs/images/stats-countries-*.png: a card's stats in the console with
the visitors' countries, for scans that came through a proxy on this machine.

A live `qrcontact serve` on 127.0.0.1 with TRUSTED_PROXIES=127.0.0.1/32 (no Cloudflare, no
Fly, no GEOIP_DATABASE_PATH: the offline `iptocc` table). This script stands in for the
proxy (Caddy or nginx as docs/operations.md sets them up): it connects from 127.0.0.1 and
forwards each phone's address in `X-Forwarded-For`, public addresses registered in five
countries. Then Chromium logs in and takes the card's stats page at phone (390 px) and
desktop (1440 px) width. Not a test; run from the repository:

    .venv/bin/python docs/scripts/countries_screenshot.py
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images"
EMAIL, PASSWORD = "mia@example.com", "correct horse battery staple"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
# Addresses of well-known networks, by where the regional registries list them, and how
# many scans each sends.
VISITORS = {"81.2.69.142": 9, "8.8.8.8": 6, "5.9.0.1": 4, "133.1.0.1": 2, "1.1.1.1": 1}


def main() -> None:
    data = Path(tempfile.mkdtemp())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATA_DIR": str(data), "HOST": "127.0.0.1", "PORT": str(port), "PUBLIC_BASE_URL": url,
           "JWT_SECRET": "screenshots-" + "s" * 40, "REPLICA_URL": f"file://{data / 'replica'}",
           "TRUSTED_PROXIES": "127.0.0.1/32"}
    server = subprocess.Popen([str(ROOT / ".venv/bin/qrcontact"), "serve"], env=env, stdout=open(data / "serve.log", "w"),
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        auth = httpx.post(f"{url}/v1/auth/register", json={"email": EMAIL, "password": PASSWORD, "marketingConsent": False}).json()
        headers = {"Authorization": f"Bearer {auth['accessToken']}"}
        card = httpx.post(f"{url}/v1/cards", headers=headers, json={
            "fullName": "Mia Lindqvist", "title": "Product designer", "organization": "Acme Studio",
            "email": "mia@acme.example", "slug": "mia",
        }).json()
        for address, scans in VISITORS.items():
            for _ in range(scans):
                answer = httpx.get(f"{url}/c/mia", headers={"User-Agent": PHONE, "X-Forwarded-For": address})
                assert answer.status_code == 302, answer.text
        stats_url = f"{url}/v1/cards/{card['cardId']}/stats"
        for _ in range(100):  # the counts are written by the next flush, within a second
            countries = httpx.get(stats_url, headers=headers).json().get("countries", [])
            if sum(item["scans"] for item in countries) >= sum(VISITORS.values()):
                break
            time.sleep(0.1)
        print("countries:", countries)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for name, width, height in (("phone", 390, 844), ("desktop", 1440, 900)):
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"{url}/app/login")
                page.fill("#email", EMAIL)
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url("**/app/cards")
                page.goto(f"{url}/app/cards/{card['cardId']}/stats?days=7")
                page.get_by_text("Countries").first.scroll_into_view_if_needed()
                page.screenshot(path=str(OUT / f"stats-countries-{name}.png"), full_page=True)
                page.close()
            browser.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
