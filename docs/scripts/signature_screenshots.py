"""The screenshots of docs/images/signature-*.png and background-1920x1080-right.png: a live
`qrcontact serve` on 127.0.0.1 with one card (photo and logo), its email signature page in
Chromium at phone (390 px) and desktop (1440 px) width, and one of its backgrounds. Not a
test; run from the repository: `.venv/bin/python docs/scripts/signature_screenshots.py`.
The print PDFs it fetches too are left in the printed temp folder, to look at."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image, ImageDraw
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images"
EMAIL, PASSWORD = "ada@example.com", "correct horse battery staple"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]


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
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DATA_DIR": str(data), "HOST": "127.0.0.1", "PORT": str(port), "PUBLIC_BASE_URL": url,
           "JWT_SECRET": "screenshots-" + "s" * 40, "REPLICA_URL": f"file://{data / 'replica'}"}
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
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            for name, width, height, full_page in (("phone", 390, 844, False), ("desktop", 1440, 900, True)):
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"{url}/app/login")
                page.fill("#email", EMAIL)
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url("**/app/cards")
                page.goto(f"{url}/app/cards/{card['cardId']}/signature")
                page.frame_locator("iframe.signature-frame").locator("img").last.wait_for()
                page.screenshot(path=str(OUT / f"signature-{name}.png"), full_page=full_page)
                page.goto(f"{url}/app/cards/{card['cardId']}")
                page.screenshot(path=str(data / f"card-{name}.png"), full_page=True)
                page.close()
            browser.close()
        print("print PDFs and card page screenshots in", data)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
