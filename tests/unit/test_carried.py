"""The card carried everywhere (SPEC §10): the email signature (HTML that mail programs
keep, and plain text, links tracked with src=signature), the video-call backgrounds
(sizes read with Pillow, their QR decoded with zxing at both sizes and layouts), the
print PDFs (page sizes read with pypdf from the MediaBox; the QR decoded from the page's
own image, which pypdf extracts: Pillow writes each page as one image), the QR PDF at a
print size in millimetres, and the console's pages and links. One app for the module."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import pypdf
import pytest
import zxingcpp
from litestar.testing import TestClient
from PIL import Image

from app.cards import carried
from app.main import create_app
from tests.support import images
from tests.support.app import assert_problem, create_card, make_settings, register
from tests.support.console import ORIGIN, errors_of, log_in
from tests.support.wallet import wallet_settings, write_wallet_files

MM = 72 / 25.4  # points in a millimetre
CARD = {
    "fullName": 'Ada "<b>" Lovelace & Co', "title": "Head of Engines", "department": "R&D", "organization": "Acme Computing",
    "phone": "+44 20 7946 0958", "website": "https://acme.example/", "accentColor": "#0f766e", "slug": "ada-carried",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("carried"))
    with TestClient(create_app(settings), base_url=ORIGIN) as client:
        owner, stranger = register(client), register(client)
        card = create_card(client, owner["headers"], **CARD)
        for kind in ("photo", "logo"):
            response = client.put(f"/v1/cards/{card['cardId']}/{kind}", content=images.jpeg((300, 300), colour=(200, 40, 40)),
                                  headers={**owner["headers"], "Content-Type": "image/jpeg"})
            assert response.status_code == 200, response.text
            card = response.json()
        yield client, owner, stranger, card


def _get(world, path: str, **params):
    client, owner, _, card = world
    return client.get(f"/v1/cards/{card['cardId']}/{path}", params=params, headers=owner["headers"])


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_the_signature_is_a_table_with_inline_styles_and_tracked_links(world):
    client, _, _, card = world
    body = _get(world, "signature").json()
    html, text = body["html"], body["text"]
    parsed = _Tags()
    parsed.feed(html)
    tags = [tag for tag, _ in parsed.tags]
    assert tags[0] == "table" and set(tags) <= {"table", "tr", "td", "a", "img"}
    # What Gmail and Outlook drop: no <style>, no classes, no flex or grid.
    assert not [attrs for _, attrs in parsed.tags if "class" in attrs]
    assert not re.search(r"display:\s*(flex|grid)", html)
    tracked = f"{card['shortUrl']}?src=signature"
    hrefs = [attrs["href"] for tag, attrs in parsed.tags if tag == "a"]
    assert hrefs.count(tracked) == 3  # the photo, "My contact card" and the QR
    assert "tel:+442079460958" in hrefs and "mailto:jane@example.com" in hrefs and "https://acme.example/" in hrefs
    sources = [attrs["src"] for tag, attrs in parsed.tags if tag == "img"]
    assert sources == [card["photoUrl"].replace(".jpg", "-96.jpg"), f"https://qr.example.test/q/{card['slug']}.png"]
    for source in sources:  # every image is absolute and served
        assert client.get(source.removeprefix("https://qr.example.test")).status_code == 200
    assert all("style" in attrs for tag, attrs in parsed.tags if tag in ("table", "td", "a", "img"))
    assert CARD["fullName"] in "".join(parsed.text)  # escaped in the HTML, read back whole
    assert "<b>" not in html
    assert text.splitlines() == [
        CARD["fullName"], "Head of Engines, R&D", "Acme Computing", "Mobile: +44 20 7946 0958", "Email: jane@example.com",
        "Web: acme.example", f"My contact card: {tracked}",
    ]
    # The link counts as its own source: the scan redirect carries it on to the page.
    followed = client.get(tracked.removeprefix("https://qr.example.test"), follow_redirects=False)
    assert followed.status_code == 302 and followed.headers["location"] == f"/p/{card['slug']}?src=signature"


@pytest.mark.parametrize("size", ["1920x1080", "1280x720"])
@pytest.mark.parametrize("layout", ["left", "right"])
def test_backgrounds_have_their_size_and_a_code_that_decodes_on_their_side(world, size, layout):
    _, _, _, card = world
    response = _get(world, "background.png", size=size, layout=layout)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "PNG" and f"{image.width}x{image.height}" == size
    found = zxingcpp.read_barcodes(image.convert("L"))
    assert [result.text for result in found] == [card["shortUrl"]]
    centre = (found[0].position.top_left.x + found[0].position.bottom_right.x) / 2
    assert (centre < image.width / 3) if layout == "left" else (centre > image.width * 2 / 3)
    side = found[0].position.bottom_right.x - found[0].position.top_left.x
    assert side >= image.height * 0.3  # large enough to read from a phone pointed at the call


def _pages(pdf: bytes) -> list[pypdf.PageObject]:
    return list(pypdf.PdfReader(io.BytesIO(pdf)).pages)


def test_the_business_card_is_85_by_55_mm_with_3_mm_bleed_and_its_code_decodes(world):
    _, _, _, card = world
    response = _get(world, "print.pdf", layout="card")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    [page] = _pages(response.content)
    width, height = float(page.mediabox.width) / MM, float(page.mediabox.height) / MM
    assert (round(width, 3), round(height, 3)) == (91, 61)
    [picture] = page.images
    assert picture.image.size == (91 * 12, 61 * 12)  # 12 px a millimetre: 304.8 dpi
    assert [result.text for result in zxingcpp.read_barcodes(picture.image.convert("L"))] == [card["shortUrl"]]


def test_the_sheet_is_an_a4_page_of_ten_cards_whose_codes_all_decode(world):
    _, _, _, card = world
    [page] = _pages(_get(world, "print.pdf", layout="sheet").content)
    assert (round(float(page.mediabox.width) / MM, 3), round(float(page.mediabox.height) / MM, 3)) == (210, 297)
    [picture] = page.images
    found = zxingcpp.read_barcodes(picture.image.convert("L"))
    assert [result.text for result in found] == [card["shortUrl"]] * 10


def test_pictures_are_kept_by_what_they_show(world):
    client, owner, _, card = world
    first = _get(world, "background.png", size="1280x720", layout="left").content
    assert _get(world, "background.png", size="1280x720", layout="left").content is not first  # a new response...
    key_count = len(carried._pictures)
    assert _get(world, "background.png", size="1280x720", layout="left").content == first and len(carried._pictures) == key_count
    edited = client.patch(f"/v1/cards/{card['cardId']}", json={"title": "Chief Engineer"}, headers=owner["headers"])
    assert edited.status_code == 200
    assert _get(world, "background.png", size="1280x720", layout="left").content != first  # ...drawn again after an edit
    client.patch(f"/v1/cards/{card['cardId']}", json={"title": CARD["title"]}, headers=owner["headers"])


@pytest.mark.parametrize(
    "fmt, params, side_mm",
    [("pdf", {}, 30), ("pdf", {"mm": 50}, 50), ("pdf", {"mm": 10, "size": 2048}, 10), ("eps", {"mm": 25}, 25)],
)
def test_the_qr_pdf_and_eps_are_sized_in_millimetres(world, fmt, params, side_mm):
    response = _get(world, "qr", format=fmt, **params)
    assert response.status_code == 200, response.text
    if fmt == "pdf":
        [page] = _pages(response.content)
        sides = float(page.mediabox.width) / MM, float(page.mediabox.height) / MM
    else:
        box = re.search(rb"%%BoundingBox: 0 0 ([\d.]+) ([\d.]+)", response.content)
        sides = float(box[1]) / MM, float(box[2]) / MM
    assert sides == pytest.approx((side_mm, side_mm), abs=0.01)


@pytest.mark.parametrize(
    "path, params, status",
    [
        ("background.png", {"size": "800x600"}, 422), ("background.png", {"layout": "top"}, 422),
        ("print.pdf", {"layout": "poster"}, 422), ("qr", {"format": "pdf", "mm": 5}, 400), ("qr", {"format": "pdf", "mm": 1001}, 400),
    ],
)
def test_bad_variants_are_refused_with_a_problem(world, path, params, status):
    response = _get(world, path, **params)
    assert response.status_code in (400, 422)
    assert_problem(response, response.status_code)


@pytest.mark.parametrize("path", ["signature", "background.png", "print.pdf"])
def test_only_the_owner_gets_them(world, path):
    client, _, stranger, card = world
    assert_problem(client.get(f"/v1/cards/{card['cardId']}/{path}", headers=stranger["headers"]), 404)
    assert_problem(client.get(f"/v1/cards/{card['cardId']}/{path}"), 401)


def test_the_console_shows_the_signature_in_a_sandboxed_frame_and_links_everything(world):
    client, owner, _, card = world
    log_in(client, owner["user"]["email"])
    base = f"/app/cards/{card['cardId']}"
    page = client.get(f"{base}/signature").text
    assert 'sandbox title="Preview of the email signature"' in page and f'src="{base}/signature/preview"' in page
    assert 'data-copy-rich="signature-html"' in page and 'id="signature-text"' in page
    preview = client.get(f"{base}/signature/preview")
    policy = preview.headers["content-security-policy"]
    assert "style-src 'unsafe-inline'" in policy and "img-src https://qr.example.test" in policy and "sandbox" in policy
    assert "script-src" not in policy and "frame-ancestors 'self'" in policy
    assert f"{card['shortUrl']}?src=signature" in preview.text
    shown = client.get(base).text
    for href in (f"{base}/signature", f"{base}/background.png?size=1920x1080&amp;layout=left",
                 f"{base}/print.pdf?layout=card", f"{base}/print.pdf?layout=sheet"):
        assert f'href="{href}"' in shown
    assert "Apple Wallet" not in shown and "Google Wallet" not in shown  # not configured: no buttons
    for path in ("background.png?size=1280x720&layout=right", "print.pdf?layout=card"):
        download = client.get(f"{base}/{path}")
        assert download.status_code == 200 and download.headers["content-disposition"].startswith("attachment")
    # The download panel's print size: in the form, and said next to the field when out of range.
    assert 'name="mm"' in shown and 'value="30"' in shown
    pdf = client.get(f"{base}/qr", params={"format": "pdf", "mm": "42"})
    [page] = _pages(pdf.content)
    assert round(float(page.mediabox.width) / MM, 3) == 42
    refused = client.get(f"{base}/qr", params={"format": "pdf", "mm": "5"})
    assert refused.status_code == 422 and errors_of(refused.text) == {"mm": "Enter a whole number of millimetres from 10 to 1000"}


def test_a_member_card_wears_the_team_brand_when_carried(world):
    """Last in the module: it sets the team's brand. The stranger is a member (the owner, the
    first account, is the admin); their card has no accent or logo of its own."""
    client, admin, member, _ = world
    card = create_card(client, member["headers"], fullName="Grace Hopper", email="grace@example.com")
    path = f"/v1/cards/{card['cardId']}"
    plain = client.get(f"{path}/background.png", params={"size": "1280x720"}, headers=member["headers"]).content
    assert "#2563eb" in client.get(f"{path}/signature", headers=member["headers"]).json()["html"]  # the default accent
    assert client.put("/v1/team/brand", json={"accentColor": "#b4231a"}, headers=admin["headers"]).status_code == 200
    logo = client.put("/v1/team/brand/logo", content=images.jpeg((200, 200), colour=(20, 20, 160)),
                      headers={**admin["headers"], "Content-Type": "image/jpeg"})
    assert logo.status_code == 200, logo.text
    html = client.get(f"{path}/signature", headers=member["headers"]).json()["html"]
    assert "#b4231a" in html and "#2563eb" not in html
    branded = client.get(f"{path}/background.png", params={"size": "1280x720"}, headers=member["headers"]).content
    image = Image.open(io.BytesIO(branded)).convert("RGB")
    blue = [n for n, (r, g, b) in image.getcolors(1 << 16) if abs(r - 20) + abs(g - 20) + abs(b - 160) < 16]
    assert branded != plain and sum(blue) > 1000  # the team logo, drawn (a JPEG's colours, give or take)
    assert [result.text for result in zxingcpp.read_barcodes(image.convert("L"))] == [card["shortUrl"]]


def test_the_card_page_offers_the_wallets_when_they_are_configured(tmp_path, app_of):
    settings = wallet_settings(tmp_path / "data", write_wallet_files(tmp_path / "keys"))
    with TestClient(app_of(settings), base_url=ORIGIN) as client:
        owner = register(client)
        card = create_card(client, owner["headers"], slug="ada-wallets")
        log_in(client, owner["user"]["email"])
        shown = client.get(f"/app/cards/{card['cardId']}").text
    assert 'href="https://qr.example.test/p/ada-wallets.pkpass"' in shown and "Add to Apple Wallet" in shown
    assert 'href="https://qr.example.test/p/ada-wallets/google-wallet"' in shown and "Save to Google Wallet" in shown
