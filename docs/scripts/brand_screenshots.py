"""The screenshots of the team brand in docs/images (brand-*.png): Team › Brand and a branded
member's public page, at phone (390 px) and desktop (1440 px) width. Not a test; run from
the repository's root with its virtualenv:

    .venv/bin/python docs/scripts/brand_screenshots.py

It starts `qrcontact serve` on a temporary folder (tests/support/service.py), sets a brand
and a team logo as an admin, makes a member's card, and drives Debian's Chromium.
"""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import httpx
from PIL import Image, ImageDraw, ImageFont
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.app import PASSWORD  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, VIEWPORTS  # noqa: E402
from tests.support.service import Service  # noqa: E402

OUT = ROOT / "docs" / "images"
BRAND = {
    "name": "Acme Studio", "accentColor": "#b4231a", "qrDark": "#1f2a44", "qrLight": "#ffffff", "logoOnCodes": True,
    "lockedFields": ["organization", "website"],
    "defaults": {"organization": "Acme Studio", "website": "https://acme.example", "phone": "+1 555 010 2030",
                 "address": {"street": "1 Main Street", "locality": "Springfield", "region": "IL", "country": "USA"}},
}


def logo_png() -> bytes:
    image = Image.new("RGB", (400, 400), "#b4231a")
    draw = ImageDraw.Draw(image)
    draw.ellipse((60, 60, 340, 340), fill="#ffffff")
    font = ImageFont.load_default(size=150)
    draw.text((200, 200), "A", fill="#b4231a", font=font, anchor="mm")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def account(api: httpx.Client, email: str) -> dict:
    response = api.post("/v1/auth/register", json={"email": email, "password": PASSWORD, "marketingConsent": False})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "data"
        data.mkdir()
        server = Service(data).start()
        try:
            api = httpx.Client(base_url=server.url, timeout=30)
            admin = account(api, "admin@acme.example")
            member = account(api, "mia@acme.example")
            api.put("/v1/team/brand", json=BRAND, headers=admin).raise_for_status()
            api.put("/v1/team/brand/logo", content=logo_png(), headers={**admin, "Content-Type": "image/png"}).raise_for_status()
            card = api.post("/v1/cards", headers=member, json={
                "fullName": "Mia Lindqvist", "email": "mia@acme.example", "title": "Product designer", "slug": "mia-lindqvist",
                "pronouns": "she/her", "headline": "I design calm tools for busy teams.",
                "socials": [{"url": "https://www.linkedin.com/in/mia"}, {"url": "https://github.com/mia"}],
            })
            card.raise_for_status()
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for size, (width, height) in VIEWPORTS.items():
                    context = browser.new_context(base_url=server.url, viewport={"width": width, "height": height})
                    page = context.new_page()
                    page.goto("/p/mia-lindqvist")
                    page.screenshot(path=OUT / f"brand-card-{size}.png", full_page=True)
                    page.goto("/app/login")
                    page.get_by_label("Email", exact=True).fill("admin@acme.example")
                    page.get_by_label("Password", exact=True).fill(PASSWORD)
                    page.get_by_role("button", name="Log in").click()
                    page.wait_for_url("**/app/cards*")
                    page.goto("/app/team/brand")
                    page.screenshot(path=OUT / f"brand-page-{size}.png", full_page=True)
                    context.close()
                browser.close()
        finally:
            server.stop()
    print("written:", *sorted(OUT.glob("brand-*.png")), sep="\n  ")


if __name__ == "__main__":
    main()
