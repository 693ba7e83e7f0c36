"""The link-preview image: its size, its QR read back by zxing, the photo or the initials."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from app.public import looks, og_image
from tests.support.qr import decode_png

URL = "https://qr.example.test/c/abc234"


def _jpeg(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (512, 512), colour).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_the_preview_is_1200_by_630_and_its_qr_reads_back_as_the_short_link():
    png = og_image.draw("Dr. Robert de la Cruz Jr.", "Head of Sales · Acme", URL, accent="#0f766e")
    text, image = decode_png(png)
    assert text == URL
    assert image.size == (1200, 630) and image.format == "PNG"
    assert image.convert("RGB").getpixel((600, 4)) == (15, 118, 110)  # the accent band


def test_the_photo_is_drawn_in_its_circle_and_the_initials_without_one():
    centre = (og_image.MARGIN + og_image.PHOTO // 2, 96 + og_image.PHOTO // 2)
    with_photo = Image.open(io.BytesIO(og_image.draw("Ada Lovelace", "", URL, photo_jpeg=_jpeg((200, 40, 40)))))
    red, green, blue = with_photo.convert("RGB").getpixel(centre)
    assert red > 180 and green < 70 and blue < 70
    corner = (og_image.MARGIN + 2, 96 + 2)  # outside the circle: the paper
    assert with_photo.convert("RGB").getpixel(corner) == og_image.PAPER
    initials = Image.open(io.BytesIO(og_image.draw("Ada Lovelace", "", URL, accent="#123456")))
    assert initials.convert("RGB").getpixel((centre[0] - 80, centre[1])) == (0x12, 0x34, 0x56)


def test_a_name_too_long_for_a_line_is_cut_and_the_code_still_reads():
    text, _ = decode_png(og_image.draw("W" * 300, "x" * 500, URL))
    assert text == URL


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Dr. Robert de la Cruz Jr.", "RC"),
        ("Ada Lovelace", "AL"),
        ("Jane Doe III", "JD"),
        ("Ludwig van Beethoven", "LB"),
        ("cher", "C"),
        ("", "?"),
    ],
)
def test_initials_leave_out_titles_suffixes_and_particles(name, expected):
    assert looks.initials(name) == expected


@pytest.mark.parametrize(
    "colour, rgb",
    [("#fff", (255, 255, 255)), ("0f766e", (15, 118, 110)), ("nonsense", (37, 99, 235)), (None, (37, 99, 235))],
)
def test_accent_colours_are_read_in_both_hex_forms(colour, rgb):
    assert looks.hex_rgb(colour) == rgb
