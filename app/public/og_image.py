"""The card's link-preview image (`/p/{slug}/og.png`, SPEC §8): 1200×630, the photo or
the initials, the name, title and organization, and the card's QR, drawn by Pillow.

Drawing takes tens of milliseconds, so it runs off the event loop and the result is
kept with the card's other cached answers (app/public/answers.py): a card's preview is
drawn once per change of the card, not once per link unfurl. The text uses the font
Pillow ships (Latin scripts); a name in another script still gets its initials circle
and QR, with the text drawn as far as the font can.
"""

from __future__ import annotations

import io

import segno
from PIL import Image, ImageDraw, ImageFont, ImageOps

from app.public.looks import hex_rgb, initials

WIDTH, HEIGHT = 1200, 630
MARGIN = 64
PHOTO = 200  # the photo's or initials' circle, in pixels
QR_SIDE = 360
INK = (17, 24, 39)
MUTED = (75, 85, 99)
PAPER = (255, 255, 255)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, size: int, smallest: int) -> tuple[str, ImageFont.FreeTypeFont]:
    """The text in the largest font from `size` down to `smallest` that fits `width`, cut with … if even that does not."""
    for points in range(size, smallest - 1, -4):
        font = ImageFont.load_default(size=points)
        if draw.textlength(text, font=font) <= width:
            return text, font
    font = ImageFont.load_default(size=smallest)
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…", font


def _circle(image: Image.Image) -> Image.Image:
    mask = Image.new("L", image.size, 0)
    ImageDraw.Draw(mask).ellipse((0, 0, *image.size), fill=255)
    image.putalpha(mask)
    return image


def _portrait(name: str, photo_jpeg: bytes | None, accent: tuple[int, int, int]) -> Image.Image:
    if photo_jpeg is not None:
        with Image.open(io.BytesIO(photo_jpeg)) as photo:
            return _circle(ImageOps.fit(photo.convert("RGB"), (PHOTO, PHOTO)))
    disc = Image.new("RGB", (PHOTO, PHOTO), accent)
    draw = ImageDraw.Draw(disc)
    draw.text((PHOTO / 2, PHOTO / 2), initials(name), font=ImageFont.load_default(size=88), fill=PAPER, anchor="mm")
    return _circle(disc)


def _qr(url: str) -> Image.Image:
    code = segno.make(url, error="m")
    scale = max(1, QR_SIDE // code.symbol_size(scale=1, border=2)[0])
    buffer = io.BytesIO()
    code.save(buffer, kind="png", scale=scale, border=2, dark=INK, light=PAPER)
    buffer.seek(0)
    with Image.open(buffer) as drawn:
        return drawn.convert("RGB").resize((QR_SIDE, QR_SIDE), Image.Resampling.NEAREST)


def draw(name: str, subtitle: str, url: str, *, accent: str | None = None, photo_jpeg: bytes | None = None) -> bytes:
    """The 1200×630 PNG: an accent band, the portrait, name and subtitle on the left, the QR of `url` on the right."""
    colour = hex_rgb(accent)
    image = Image.new("RGB", (WIDTH, HEIGHT), PAPER)
    drawing = ImageDraw.Draw(image)
    drawing.rectangle((0, 0, WIDTH, 16), fill=colour)
    portrait = _portrait(name, photo_jpeg, colour)
    image.paste(portrait, (MARGIN, 96), portrait)
    text_width = WIDTH - 3 * MARGIN - QR_SIDE
    title, title_font = _fit(drawing, name, text_width, 72, 40)
    drawing.text((MARGIN, 96 + PHOTO + 40), title, font=title_font, fill=INK)
    if subtitle:
        line, font = _fit(drawing, subtitle, text_width, 40, 28)
        drawing.text((MARGIN, 96 + PHOTO + 40 + title_font.size + 24), line, font=font, fill=MUTED)
    image.paste(_qr(url), (WIDTH - MARGIN - QR_SIDE, (HEIGHT - QR_SIDE) // 2))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
