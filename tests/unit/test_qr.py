"""QR images: every format, decoded with zxing-cpp; vCards parsed with vobject."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import pytest
import resvg_py
import vobject
from PIL import Image

from app import qr
from tests.support.app import assert_problem, create_card
from tests.support.qr import decode_png

HOSTILE = {
    "fullName": "Zoë O'Brien; Jr, \\ <script>alert(1)</script>",
    "organization": "Acme; Inc, \\ & \"Partners\"",
    "title": "CTO\\nEND:VCARD",
    "email": "zoe+tag@example.com",
    "phone": "+1 (555) 010-9999",
    "website": "https://example.com/a,b;c?q=<x>",
}


def qr_of(client, user, card, **params):
    response = client.get(f"/v1/cards/{card['cardId']}/qr", params=params, headers=user["headers"])
    return response


@pytest.mark.parametrize("size", [128, 200, 333, 512, 1000, 2048])
@pytest.mark.parametrize("ecc", ["L", "M", "Q", "H"])
def test_dynamic_png_is_exact_size_and_decodes_to_the_short_url(client, user, size, ecc):
    card = create_card(client, user["headers"], slug=f"s-{size}-{ecc.lower()}")
    response = qr_of(client, user, card, size=size, ecc=ecc)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    text, image = decode_png(response.content)
    assert image.size == (size, size)
    assert text == card["shortUrl"]


def test_png_has_whole_pixel_modules_and_at_least_a_four_module_quiet_zone():
    payload = "https://qr.example.test/c/abcdefg"
    symbol = qr.make_symbol(payload, "M")
    width = len(symbol.matrix)
    for size in (128, 257, 512, 999):
        image = Image.open(io.BytesIO(qr.render(payload, qr.Drawing(size=size)))).convert("L")
        scale = size // (width + 8)
        pixels = image.load()
        # Find the top-left dark pixel: the finder pattern's corner.
        first = next((x, y) for y in range(size) for x in range(size) if pixels[x, y] == 0)
        assert first[0] >= 4 * scale and first[1] >= 4 * scale
        # Every module is a solid scale×scale block.
        left, top = first
        for my, row in enumerate(symbol.matrix):
            for mx, dark in enumerate(row):
                x, y = left + mx * scale, top + my * scale
                block = {pixels[x + dx, y + dy] for dx in range(scale) for dy in range(scale)}
                assert block == {0 if dark else 255}


def test_static_code_carries_a_vcard_that_round_trips_hostile_values(client, user):
    card = create_card(client, user["headers"], **HOSTILE)
    text, _ = decode_png(qr_of(client, user, card, mode="static", size=1024).content)
    assert text.startswith("BEGIN:VCARD\r\nVERSION:3.0\r\n") and text.endswith("END:VCARD\r\n")
    assert "\n" not in text.replace("\r\n", "")
    parsed = vobject.readOne(text)
    assert parsed.fn.value == HOSTILE["fullName"]
    assert parsed.org.value == [HOSTILE["organization"]]
    assert parsed.title.value == HOSTILE["title"]
    assert parsed.email.value == HOSTILE["email"]
    assert parsed.tel.value == HOSTILE["phone"]
    # A URL is a URI, written as it is (never backslash-escaped): vobject, which reads every
    # unknown property as text, stops at its comma, so the line itself is checked.
    assert f"item1.URL:{HOSTILE['website']}\r\n" in text
    assert parsed.url.group == "item1" and HOSTILE["website"].startswith(parsed.url.value)
    names = sorted(child.name for child in parsed.getChildren())
    assert names == ["EMAIL", "FN", "N", "ORG", "TEL", "TITLE", "URL", "VERSION", "X-ABLABEL"]


def test_payloads_are_utf8(client, user):
    card = create_card(client, user["headers"], fullName="李小龍 Ærøskøbing", organization="Ünïcødé GmbH")
    text, _ = decode_png(qr_of(client, user, card, mode="static", size=800).content)
    assert vobject.readOne(text).fn.value == "李小龍 Ærøskøbing"


def test_custom_colours_and_border_still_decode(client, user):
    card = create_card(client, user["headers"])
    response = qr_of(client, user, card, dark="#1a237e", light="fff8e1", border=8, size=400)
    text, image = decode_png(response.content)
    assert text == card["shortUrl"]
    assert image.convert("RGB").getpixel((0, 0)) == (0xFF, 0xF8, 0xE1)


def test_a_payload_too_large_for_the_size_is_422_not_500(client, user):
    long_card = {f: "W" * 200 for f in ("fullName", "organization", "title")}
    card = create_card(client, user["headers"], website="https://example.com/" + "p" * 1500, **long_card)
    problem = assert_problem(qr_of(client, user, card, mode="static", size=128, ecc="H"), 422)
    assert "too long" in problem["detail"] or "at least" in problem["detail"]
    # The same card fits at a larger size and a lower level.
    assert qr_of(client, user, card, mode="static", size=2048, ecc="L").status_code == 200


def test_svg_pdf_and_eps(client, user):
    card = create_card(client, user["headers"])
    svg = qr_of(client, user, card, format="svg", size=300)
    assert svg.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(svg.content)
    assert root.tag.endswith("svg") and float(root.get("width")) == pytest.approx(300)
    pdf = qr_of(client, user, card, format="pdf")
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF-")
    eps = qr_of(client, user, card, format="eps")
    assert eps.headers["content-type"] == "application/postscript" and eps.content.startswith(b"%!PS-Adobe")


@pytest.mark.parametrize("ecc", ["L", "H"])
def test_svg_decodes_after_rasterizing_onto_white(client, user, ecc):
    card = create_card(client, user["headers"], **HOSTILE)
    svg = qr_of(client, user, card, format="svg", mode="static", size=900, ecc=ecc).content.decode()
    png = resvg_py.svg_to_bytes(svg_string=svg, background="#ffffff", skip_system_fonts=True, shape_rendering="crisp_edges")
    text, _ = decode_png(bytes(png))
    assert vobject.readOne(text).fn.value == HOSTILE["fullName"]


@pytest.mark.parametrize("size", [128, 300, 333, 512, 1000, 2048])
@pytest.mark.parametrize("border", [1, 4])
def test_svg_background_covers_the_whole_image(size, border):
    """Rasterized with no background of its own (transparent), every edge pixel of the SVG is
    its light colour: segno's fractional scale once left the right and bottom module bare."""
    payload = "https://qr.example.test/c/abcdefg"
    light = (255, 238, 170)
    svg = qr.render(payload, qr.Drawing(format="svg", size=size, ecc="M", light="#ffeeaa", border=border))
    png = resvg_py.svg_to_bytes(svg_string=svg.decode(), skip_system_fonts=True, shape_rendering="crisp_edges")
    image = Image.open(io.BytesIO(bytes(png))).convert("RGBA")
    assert image.size == (size, size)
    last = size - 1
    edges = [(x, y) for i in range(size) for x, y in ((i, 0), (i, last), (0, i), (last, i))]
    assert {image.getpixel(xy) for xy in edges} == {(*light, 255)}
    text, _ = decode_png(bytes(png))
    assert text == payload


def test_rendered_images_come_from_the_cache(client, user):
    card = create_card(client, user["headers"])
    before = qr.QR_GENERATIONS.labels("png", "static")._value.get()
    first = qr_of(client, user, card, mode="static", size=640).content
    second = qr_of(client, user, card, mode="static", size=640).content
    assert first == second
    assert qr.QR_GENERATIONS.labels("png", "static")._value.get() == before + 1


def test_a_card_change_changes_its_static_code(client, user):
    card = create_card(client, user["headers"], title="Engineer")
    old, _ = decode_png(qr_of(client, user, card, mode="static").content)
    client.patch(f"/v1/cards/{card['cardId']}", json={"title": "Director"}, headers=user["headers"])
    new, _ = decode_png(qr_of(client, user, card, mode="static").content)
    assert "TITLE:Engineer" in old and "TITLE:Director" in new


def test_qr_code_url_is_the_dynamic_png_at_qr_size(client, user):
    import base64

    card = create_card(client, user["headers"], qrSize=256, qrErrorCorrection="H")
    png = base64.b64decode(card["qrCodeUrl"].removeprefix("data:image/png;base64,"))
    text, image = decode_png(png)
    assert text == card["shortUrl"] and image.size == (256, 256)


@pytest.mark.parametrize("ecc", ["L", "M", "Q", "H"])
def test_our_mask_choice_is_segnos(ecc):
    """make_symbol scores the masks its own (faster) way; segno must agree on the mask and on
    every module, from version 1 to the forties, with and without version information."""
    import random

    import segno

    rng = random.Random(ecc)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 -:;,/.ÄöÜ李"
    versions = set()
    for length in (1, 12, 30, 60, 100, 160, 230, 330, 450, 600, 800, 1000, 1300, 1700, 2200):
        payload = "".join(rng.choice(alphabet) for _ in range(length))
        try:
            theirs = segno.make(payload, error=ecc, boost_error=False, micro=False, encoding="utf-8")
        except segno.DataOverflowError:
            continue
        ours = qr.make_symbol(payload, ecc)
        versions.add(theirs.version)
        assert (ours.version, ours.mask) == (theirs.version, theirs.mask), length
        assert [bytes(row) for row in ours.matrix] == [bytes(row) for row in theirs.matrix], length
    assert min(versions) <= 2 and max(versions) >= 30, sorted(versions)


def test_alignment_positions_follow_the_standard_table():
    from segno import consts

    assert [tuple(qr.alignment_positions(v)) for v in range(2, 41)] == list(consts.ALIGNMENT_POS)


@pytest.mark.parametrize("image_bytes", [0, 300, 3000])
def test_the_qr_cache_takes_no_more_memory_than_its_bound(image_bytes):
    """Counted by image bytes only, the "32 MiB" cache took 71-108 MiB: keys and each entry's
    own cost count too. Measured with tracemalloc, small images and distinct drawings (the worst case)."""
    import tracemalloc

    bound = 2 * 1024 * 1024
    tracemalloc.start()
    try:
        cache = qr.QrCache(max_bytes=bound)
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20_000):
            drawing = qr.Drawing(size=100 + n % 900, dark=f"#{n:06x}", light=f"#{n + 1:06x}")
            cache.put(f"https://qr.example.com/c/card-{n:06d}", drawing, bytes([n % 256]) * image_bytes)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache.counted_bytes <= bound
    assert len(cache) < 20_000  # it was full
    assert used <= bound
