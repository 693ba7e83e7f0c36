"""The screenshots of docs/images/signature-*.png and background-1920x1080-right.png: a live
`qrcontact serve` on 127.0.0.1 with one card (photo and logo), its email signature page in
Chromium at phone (390 px) and desktop (1440 px) width, and one of its backgrounds. Not a
test; run from the repository: `.venv/bin/python docs/scripts/signature_screenshots.py`.
The print PDFs it fetches too are left in the printed temp folder, to look at."""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

import httpx
from PIL import Image, ImageDraw
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.support.app import PASSWORD  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, log_in  # noqa: E402
from tests.support.service import Service  # noqa: E402

OUT = ROOT / "docs" / "images"
EMAIL = "ada@example.com"


def jpeg_or_png(picture: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    picture.save(out, fmt)
    return out.getvalue()


def portrait() -> bytes:
    picture = Image.new("RGB", (400, 400), (230, 200, 170))
    draw = ImageDraw.Draw(picture)
    draw.ellipse((120, 70, 280, 230), fill=(120, 80, 60))
    draw.ellipse((60, 240, 340, 520), fill=(15, 118, 110))
    return jpeg_or_png(picture, "JPEG")


def logo() -> bytes:  # square: uploads are cropped to a square
    picture = Image.new("RGB", (300, 300), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    draw.rounded_rectangle((20, 20, 280, 280), radius=48, fill=(15, 118, 110))
    draw.text((150, 150), "A", fill=(255, 255, 255), font_size=200, anchor="mm")
    return jpeg_or_png(picture, "PNG")


def main() -> None:
    data = Path(tempfile.mkdtemp())
    server = Service(data).start()
    try:
        shoot(server.url, data)
    finally:
        server.stop()


def shoot(url: str, data: Path) -> None:
    auth = httpx.post(f"{url}/v1/auth/register", json={"email": EMAIL, "password": PASSWORD, "marketingConsent": False}).json()
    headers = {"Authorization": f"Bearer {auth['accessToken']}"}
    card = httpx.post(f"{url}/v1/cards", headers=headers, json={
        "fullName": "Ada Lovelace", "title": "Head of Analytical Engines", "organization": "Acme Computing Ltd",
        "email": "ada@acme.example", "phone": "+44 20 7946 0958", "website": "https://acme.example",
        "accentColor": "#0f766e", "slug": "ada",
    }).json()
    api = f"{url}/v1/cards/{card['cardId']}"
    httpx.put(f"{api}/photo", content=portrait(), headers={**headers, "Content-Type": "image/jpeg"}).raise_for_status()
    httpx.put(f"{api}/logo", content=logo(), headers={**headers, "Content-Type": "image/png"}).raise_for_status()
    background = httpx.get(f"{api}/background.png?size=1920x1080&layout=right", headers=headers)
    (OUT / "background-1920x1080-right.png").write_bytes(background.content)
    for layout in ("card", "sheet"):
        (data / f"{layout}.pdf").write_bytes(httpx.get(f"{api}/print.pdf?layout={layout}", headers=headers).content)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name, width, height, full_page in (("phone", 390, 844, False), ("desktop", 1440, 900, True)):
            context = browser.new_context(base_url=url, viewport={"width": width, "height": height})
            page = context.new_page()
            log_in(page, EMAIL)
            page.goto(f"/app/cards/{card['cardId']}/signature")
            page.frame_locator("iframe.signature-frame").locator("img").last.wait_for()
            page.screenshot(path=str(OUT / f"signature-{name}.png"), full_page=full_page)
            page.goto(f"/app/cards/{card['cardId']}")
            page.screenshot(path=str(data / f"card-{name}.png"), full_page=True)
            context.close()
        browser.close()
    print("print PDFs and card page screenshots in", data)


if __name__ == "__main__":
    main()
