"""The public card page as SPEC §8 draws it: the photo or the initials, one-tap actions,
the accent colour under the CSP, "Show QR", the link preview image (og.png), and the
vCard carrying the photo, through both doors."""

from __future__ import annotations

import base64
import hashlib
import io
import re

import pytest
import vobject
from PIL import Image

from tests.support import images
from tests.support.app import PHONE_UA, create_card
from tests.support.qr import decode_png


def _put_photo(client, user, card, picture: bytes) -> dict:
    response = client.put(
        f"/v1/cards/{card['cardId']}/photo", content=picture, headers={**user["headers"], "Content-Type": "image/jpeg"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _fast(client, url: str) -> bytes | None:
    """What the HTTP server's fast path answers (None: left to Litestar)."""
    return client.app.state.fast_path.answer(b"GET", url.encode(), [(b"user-agent", PHONE_UA.encode())], ("127.0.0.1", 5000), [])


def test_the_page_draws_initials_actions_rows_and_show_qr(client, user):
    card = create_card(client, user["headers"], fullName="Dr. Robert de la Cruz Jr.", phone="+1 555 010 2030",
                       title="CTO", organization="Acme", pronouns="he/him")
    page = client.get(f"/p/{card['slug']}", headers={"User-Agent": PHONE_UA}).text
    assert '<div class="photo initials" aria-hidden="true">RC</div>' in page
    assert '<a class="action primary" href="/p/' in page and ">Save contact</a>" in page
    assert '<a class="action" href="tel:+15550102030">' in page and '<a class="action" href="mailto:jane@example.com">' in page
    assert "<summary>" in page and "Show QR" in page and f'src="/q/{card["slug"]}.svg"' in page
    assert '<meta name="twitter:card" content="summary_large_image">' in page
    og = re.search(r'<meta property="og:image" content="([^"]+)"', page).group(1)
    assert og.startswith(f"https://qr.example.test/p/{card['slug']}/og.png?v=")


@pytest.mark.parametrize("accent, on_accent", [("#0f766e", "#fff"), ("#ffd400", "#000"), (None, "#fff")])
def test_the_accent_colour_is_allowed_by_the_csp_by_its_hash(client, user, accent, on_accent):
    card = create_card(client, user["headers"], **({"accentColor": accent} if accent else {}))
    response = client.get(f"/p/{card['slug']}")
    styles = re.findall(r"<style>(.*?)</style>", response.text, flags=re.S)
    assert len(styles) == 2
    accent_style = next(style for style in styles if style.startswith(":root{--accent"))
    assert accent_style.endswith(f"--on-accent:{on_accent}}}") and (accent or "#2563eb") in accent_style
    csp = response.headers["content-security-policy"]
    for style in styles:
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert "'unsafe-inline'" not in csp


def test_the_page_shows_the_photo_and_the_preview_image_draws_it_with_the_qr(client, user):
    card = _put_photo(client, user, create_card(client, user["headers"], fullName="Ada Lovelace"),
                      images.jpeg((600, 600), colour=(200, 40, 40)))
    page = client.get(f"/p/{card['slug']}").text
    assert f'<img class="photo" src="{card["photoUrl"].removeprefix("https://qr.example.test")}"' in page
    response = client.get(f"/p/{card['slug']}/og.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "public, max-age=86400"
    text, image = decode_png(response.content)
    assert text == card["shortUrl"] and image.size == (1200, 630)
    red, green, blue = image.convert("RGB").getpixel((64 + 100, 96 + 100))  # the photo's circle
    assert red > 160 and green < 90 and blue < 90
    assert client.get(f"/p/{card['slug']}/og.png").content == response.content  # drawn once, then from memory
    assert client.get("/p/nosuchcard/og.png").status_code == 404


@pytest.mark.parametrize("version", [3, 4])
def test_the_vcard_carries_the_photo_through_both_doors(client, user, version):
    picture = images.jpeg((600, 600), colour=(30, 160, 90))
    card = _put_photo(client, user, create_card(client, user["headers"]), picture)
    url = f"/p/{card['slug']}.vcf" + ("?v=4" if version == 4 else "")
    stored = client.get(card["photoUrl"].removeprefix("https://qr.example.test")).content
    by_litestar = client.get(url, headers={"User-Agent": PHONE_UA}).text
    parsed = vobject.readOne(by_litestar)
    if version == 3:
        assert parsed.photo.params["ENCODING"] == ["b"] and parsed.photo.params["TYPE"] == ["JPEG"]
        assert parsed.photo.value == stored
    else:  # a data: URI (RFC 6350 6.2.4); vobject cuts URI values at ";", so the unfolded line is read
        unfolded = by_litestar.replace("\r\n ", "").split("\r\n")
        assert "PHOTO:data:image/jpeg;base64," + base64.b64encode(stored).decode() in unfolded
    assert all(len(line.encode()) <= 75 for line in by_litestar.split("\r\n"))
    if version == 3:  # a .vcf without a query is answered by the fast path once the photo is in memory
        raw = _fast(client, url)
        assert raw is not None and raw.partition(b"\r\n\r\n")[2].decode() == by_litestar


def test_a_vcard_whose_photo_is_not_in_memory_is_left_to_litestar_then_answered_fast(client, user):
    card = _put_photo(client, user, create_card(client, user["headers"]), images.jpeg((300, 300)))
    # Nothing has read the photo since the upload: it is not in memory yet.
    url = f"/p/{card['slug']}.vcf"
    client.get(f"/p/{card['slug']}")  # the card itself in memory
    assert _fast(client, url) is None
    assert "PHOTO;ENCODING=b;TYPE=JPEG:" in client.get(url).text
    assert _fast(client, url) is not None


def test_a_new_photo_gives_a_new_vcard_and_preview(client, user):
    card = _put_photo(client, user, create_card(client, user["headers"]), images.jpeg((300, 300), colour=(10, 10, 200)))
    first_vcf = client.get(f"/p/{card['slug']}.vcf").text
    first_og = client.get(f"/p/{card['slug']}/og.png").content
    _put_photo(client, user, card, images.jpeg((300, 300), colour=(250, 250, 10)))
    assert client.get(f"/p/{card['slug']}.vcf").text != first_vcf
    again = client.get(f"/p/{card['slug']}/og.png").content
    assert again != first_og
    assert Image.open(io.BytesIO(again)).size == (1200, 630)
