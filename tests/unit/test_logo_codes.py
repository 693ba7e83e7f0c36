"""Codes with the card's logo in the centre (SPEC §10): every size, format, colour and
border the download panel offers decodes with zxing at level H; the logo covers at most
20 % of the symbol; refusals are 422s naming the field."""

from __future__ import annotations

import io
import itertools
import re

import pytest
import resvg_py
import zxingcpp
from PIL import Image

from app import qr
from app.cards import logo_codes
from tests.support import images
from tests.support.app import assert_problem, create_card
from tests.support.console import log_in


@pytest.fixture
def card_with_logo(client, user):
    card = create_card(client, user["headers"], slug="logo-card")
    logo = images.jpeg((400, 300), colour=(220, 120, 20))
    response = client.put(f"/v1/cards/{card['cardId']}/logo", content=logo, headers={**user["headers"], "Content-Type": "image/jpeg"})
    assert response.status_code == 200, response.text
    return response.json()


def _decoded(body: bytes, fmt: str) -> list[str]:
    if fmt == "svg":
        body = bytes(resvg_py.svg_to_bytes(svg_string=body.decode(), background="#ffffff", skip_system_fonts=True,
                                           shape_rendering="crisp_edges"))
    return [result.text for result in zxingcpp.read_barcodes(Image.open(io.BytesIO(body)).convert("L"))]


# What the console's panel offers: sizes from the smallest, both formats, both modes, colours, borders.
PANEL = list(itertools.product((128, 256, 512, 1024, 2048), ("png", "svg"), ("dynamic", "static"), (
    ("#000000", "#ffffff"), ("#0b3d2e", "#f5f0e1"),
), (0, 4)))


def test_every_combination_the_panel_offers_decodes(client, user, card_with_logo):
    failures = []
    for size, fmt, mode, (dark, light), border in PANEL:
        response = client.get(
            f"/v1/cards/{card_with_logo['cardId']}/qr",
            params={"logo": "true", "size": size, "format": fmt, "mode": mode, "dark": dark, "light": light, "border": border},
            headers=user["headers"],
        )
        assert response.status_code == 200, response.text
        decoded = _decoded(response.content, fmt)
        expected = card_with_logo["shortUrl"] if mode == "dynamic" else None
        if len(decoded) != 1 or (expected and decoded[0] != expected) or (mode == "static" and "FN:Jane Doe" not in decoded[0]):
            failures.append((size, fmt, mode, dark, border, decoded))
    assert failures == []


def test_the_logo_is_in_the_centre_and_covers_at_most_a_fifth(client, user, card_with_logo):
    response = client.get(f"/v1/cards/{card_with_logo['cardId']}/qr", params={"logo": "true", "size": 512, "border": 4},
                          headers=user["headers"])
    image = Image.open(io.BytesIO(response.content)).convert("RGB")
    red, green, blue = image.getpixel((256, 256))
    assert red > 180 and 80 < green < 160 and blue < 80  # the orange logo
    modules = len(qr.make_symbol(card_with_logo["shortUrl"], "H").matrix)
    assert logo_codes.square_side(modules) ** 2 <= 0.2 * modules**2


def test_the_code_with_the_logo_is_drawn_at_level_h(client, user, card_with_logo):
    with_logo = client.get(f"/v1/cards/{card_with_logo['cardId']}/qr", params={"logo": "true", "ecc": "L"}, headers=user["headers"])
    results = zxingcpp.read_barcodes(Image.open(io.BytesIO(with_logo.content)).convert("L"))
    assert results[0].ec_level == "H"


@pytest.mark.parametrize("fmt", ["pdf", "eps"])
def test_print_formats_have_no_logo_version(client, user, card_with_logo, fmt):
    response = client.get(f"/v1/cards/{card_with_logo['cardId']}/qr", params={"logo": "true", "format": fmt}, headers=user["headers"])
    assert assert_problem(response, 422)["errors"][0]["field"] == "logo"


def test_a_card_without_a_logo_is_told_so(client, user):
    card = create_card(client, user["headers"])
    response = client.get(f"/v1/cards/{card['cardId']}/qr", params={"logo": "true"}, headers=user["headers"])
    body = assert_problem(response, 422)
    assert body["errors"][0]["field"] == "logo" and "no logo" in body["detail"]


def test_the_consoles_panel_offers_the_logo_and_previews_the_code(client, user, card_with_logo):
    log_in(client, user["user"]["email"])
    page = client.get(f"/app/cards/{card_with_logo['cardId']}").text
    assert 'name="logo" value="true"' in page and 'data-qr-preview="qr-preview"' in page
    preview = re.search(r'<img class="qr-preview" id="qr-preview" src="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert "size=256" in preview and "format=png" in preview
    assert _decoded(client.get(preview).content, "png") == [card_with_logo["shortUrl"]]
    download = client.get(f"/app/cards/{card_with_logo['cardId']}/qr", params={"logo": "true", "format": "svg", "size": "300"})
    assert download.status_code == 200 and b"data:image/jpeg;base64," in download.content
    assert _decoded(download.content, "svg") == [card_with_logo["shortUrl"]]
    refused = client.get(f"/app/cards/{card_with_logo['cardId']}/qr", params={"logo": "true", "format": "pdf"})
    assert refused.status_code == 422 and "PNG or SVG only" in refused.text


def test_the_panel_offers_no_logo_to_a_card_without_one(client, user):
    card = create_card(client, user["headers"])
    log_in(client, user["user"]["email"])
    assert 'name="logo"' not in client.get(f"/app/cards/{card['cardId']}").text

