"""A card drawn for elsewhere (SPEC §10): the video-call background (PNG) and the printed
business card (PDF: one card with bleed, or an A4 sheet of ten), by Pillow. Pure
functions, no I/O; CPU-heavy (40 ms for a card to 300 ms for a 1920×1080 background), so callers
run them off the event loop (app/cards/carried.py) and import this module at first use.

The PDFs are written by Pillow's PDF writer: one image per page, whose page size is its
pixels at the chosen resolution, so an exact size in millimetres is a matter of
choosing both (PX_PER_MM below; 12 px/mm is 304.8 dpi, print quality). The pages are
JPEG at quality 95 without chroma subsampling, which keeps the QR's edges sharp. A
vector PDF library would draw crisper text, but the ones that do (reportlab, fpdf2)
add a dependency and need a TrueType font embedded for names beyond Latin-1; the QR,
which is what must work, decodes from these pages (tests/unit/test_carried.py).

The text uses the font Pillow ships (Latin scripts), as the link preview does
(app/public/og_image.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from app import qr
from app.public.looks import hex_rgb

INK = (17, 24, 39)
MUTED = (75, 85, 99)
PAPER = (255, 255, 255)
BACKGROUND_SIZES = {"1920x1080": (1920, 1080), "1280x720": (1280, 720)}

# Print geometry, in millimetres (ISO 7810 ID-1 is 85.6 × 54; the European business card 85 × 55).
CARD_MM = (85, 55)
BLEED_MM = 3
SAFE_MM = 4  # text and code stay this far inside the trim
A4_MM = (210, 297)
SHEET_GRID = (2, 5)  # ten cards, abutting, with crop marks in the margins
PX_PER_MM = 12
DPI = PX_PER_MM * 25.4


@dataclass(frozen=True, slots=True)
class Face:
    """What a card shows when carried elsewhere: its words, the code's payload and its look."""

    name: str
    role: str  # title and department
    organization: str
    contacts: tuple[str, ...]  # phone, email, website as printed
    url: str  # what the QR holds
    accent: str | None = None
    logo_jpeg: bytes | None = None  # the team's or the card's logo (app/cards/carried.py, look_of)


# --- shared parts --------------------------------------------------------------------


def qr_image(url: str, side: int, ecc: qr.Ecc, border: int = 2) -> Image.Image:
    """The code of `url` as a greyscale image of whole-pixel modules, at most `side` pixels
    square (the largest whole module size that fits). Raises qr.QrTooLarge."""
    matrix = qr.make_symbol(url, ecc).matrix
    modules = len(matrix) + 2 * border
    scale = side // modules
    if scale < 1:
        raise qr.QrTooLarge(f"the code needs at least {modules} px")
    quiet = b"\xff" * border
    rows = [quiet + bytes(0 if module else 255 for module in row) + quiet for row in matrix]
    blank = b"\xff" * modules
    small = Image.frombytes("L", (modules, modules), b"".join([blank] * border + rows + [blank] * border))
    return small.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)


def _font(size: float) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(8, round(size)))


def _fit(draw: ImageDraw.ImageDraw, text: str, width: float, size: float, smallest: float) -> tuple[str, ImageFont.FreeTypeFont]:
    """The text in the largest font from `size` down to `smallest` that fits `width`, cut with … if even that does not."""
    points = size
    while points >= smallest:
        font = _font(points)
        if draw.textlength(text, font=font) <= width:
            return text, font
        points -= max(1, size / 12)
    font = _font(smallest)
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "…", font


def _logo(jpeg: bytes, box: tuple[int, int]) -> Image.Image:
    with Image.open(io.BytesIO(jpeg)) as opened:
        logo = opened.convert("RGB")
    logo.thumbnail(box, Image.Resampling.LANCZOS)
    return logo


def _mix(colour: tuple[int, int, int], other: tuple[int, int, int], share: float) -> tuple[int, int, int]:
    """`colour` with `share` of `other` mixed in."""
    return tuple(round(a * (1 - share) + b * share) for a, b in zip(colour, other, strict=True))  # type: ignore[return-value]


# --- the video-call background -------------------------------------------------------


def background(face: Face, size: str, layout: str) -> bytes:
    """The PNG of `size` ("1920x1080" or "1280x720"): a dark backdrop in the accent colour and,
    on the `layout` side ("left" or "right"), a light panel with the logo, name, role,
    organization and a QR large enough to read from a phone pointed at the call."""
    width, height = BACKGROUND_SIZES[size]
    unit = height / 1080  # everything is laid out for 1080 and scaled
    accent = hex_rgb(face.accent)
    top, bottom = _mix(accent, (0, 0, 0), 0.45), _mix(accent, (0, 0, 0), 0.8)
    image = Image.composite(Image.new("RGB", (width, height), top), Image.new("RGB", (width, height), bottom),
                            Image.linear_gradient("L").resize((width, height)).point(lambda v: 255 - v))
    draw = ImageDraw.Draw(image)
    margin = round(64 * unit)
    panel_width = round(width * 0.3)
    left = margin if layout == "left" else width - margin - panel_width
    panel = (left, margin, left + panel_width, height - margin)
    draw.rounded_rectangle(panel, radius=round(28 * unit), fill=PAPER)
    pad = round(48 * unit)
    x, y = left + pad, margin + pad
    text_width = panel_width - 2 * pad
    draw.rectangle((left, margin + round(28 * unit), left + round(8 * unit), height - margin - round(28 * unit)), fill=accent)
    if face.logo_jpeg:
        logo = _logo(face.logo_jpeg, (text_width, round(88 * unit)))
        image.paste(logo, (x, y))
        y += logo.height + round(28 * unit)
    name, font = _fit(draw, face.name, text_width, 60 * unit, 34 * unit)
    draw.text((x, y), name, font=font, fill=INK, stroke_width=max(1, round(unit)), stroke_fill=INK)
    y += font.size + round(16 * unit)
    for line in (face.role, face.organization):
        if line:
            text, font = _fit(draw, line, text_width, 34 * unit, 24 * unit)
            draw.text((x, y), text, font=font, fill=MUTED)
            y += font.size + round(10 * unit)
    caption = _font(28 * unit)
    # The code takes what is left of the panel, at most 440 px at 1080 (about 12 px a module).
    room = height - margin - pad - (caption.size + round(20 * unit)) - (y + round(24 * unit))
    code = qr_image(face.url, min(text_width, room, round(440 * unit)), "Q", border=2)
    y = height - margin - pad - caption.size - round(20 * unit) - code.height
    image.paste(code, (x + (text_width - code.width) // 2, y))
    draw.text((x + text_width / 2, y + code.height + round(14 * unit)), "Scan for my contact card", font=caption,
              fill=MUTED, anchor="mt")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


# --- print ---------------------------------------------------------------------------


def _px(mm: float) -> int:
    return round(mm * PX_PER_MM)


def card_front(face: Face) -> Image.Image:
    """The front of a business card with its bleed: (85 + 2·3) × (55 + 2·3) mm, at PX_PER_MM."""
    width, height = _px(CARD_MM[0] + 2 * BLEED_MM), _px(CARD_MM[1] + 2 * BLEED_MM)
    image = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(image)
    accent = hex_rgb(face.accent)
    # The band runs into the bleed on three sides: a cut a little off still leaves no white edge.
    band = _px(BLEED_MM + 4)
    draw.rectangle((0, 0, band, height), fill=accent)
    inner = _px(BLEED_MM + SAFE_MM)
    code = qr_image(face.url, _px(24), "M", border=2)
    code_left = width - inner - code.width + _px(2)  # its own quiet zone stands in for 2 mm of the safe margin
    code_top = (height - code.height) // 2 - _px(2)
    image.paste(code, (code_left, code_top))
    words, caption = _fit(draw, "Scan to save my contact", code.width, _px(2.1), _px(1.6))
    draw.text((code_left + code.width / 2, code_top + code.height + _px(0.6)), words, font=caption, fill=MUTED, anchor="mt")
    x, y = band + _px(SAFE_MM), inner
    text_width = code_left - x - _px(2)
    if face.logo_jpeg:
        logo = _logo(face.logo_jpeg, (min(text_width, _px(30)), _px(9)))
        image.paste(logo, (x, y))
        y += logo.height + _px(2.5)
    name, font = _fit(draw, face.name, text_width, _px(4.6), _px(3))
    draw.text((x, y), name, font=font, fill=INK, stroke_width=1, stroke_fill=INK)
    y += font.size + _px(1.4)
    for line in (face.role, face.organization):
        if line:
            text, font = _fit(draw, line, text_width, _px(3), _px(2.3))
            draw.text((x, y), text, font=font, fill=MUTED)
            y += font.size + _px(0.8)
    contacts = face.contacts[:3]
    line_height = _px(3.6)
    y = height - inner - line_height * len(contacts)
    for line in contacts:
        text, font = _fit(draw, line, text_width, _px(2.7), _px(2.1))
        draw.text((x, y), text, font=font, fill=INK)
        y += line_height
    return image


def _pdf(image: Image.Image, title: str) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PDF", resolution=DPI, quality=95, subsampling=0, title=title, producer="QR Contact")
    return out.getvalue()


def card_pdf(face: Face) -> bytes:
    """One business card: a page of 91 × 61 mm, the card's 85 × 55 mm and 3 mm of bleed around it."""
    return _pdf(card_front(face), f"{face.name}: business card")


def sheet_pdf(face: Face) -> bytes:
    """An A4 page of ten cards (2 × 5, abutting, trimmed size) with crop marks in the margins."""
    sheet = Image.new("RGB", (_px(A4_MM[0]), _px(A4_MM[1])), PAPER)
    card = card_front(face)
    bleed = _px(BLEED_MM)
    trimmed = card.crop((bleed, bleed, card.width - bleed, card.height - bleed))
    columns, rows = SHEET_GRID
    left = (sheet.width - columns * trimmed.width) // 2
    top = (sheet.height - rows * trimmed.height) // 2
    for row in range(rows):
        for column in range(columns):
            sheet.paste(trimmed, (left + column * trimmed.width, top + row * trimmed.height))
    draw = ImageDraw.Draw(sheet)
    gap, length = _px(2), _px(6)
    for column in range(columns + 1):
        x = left + column * trimmed.width
        draw.line((x, top - gap - length, x, top - gap), fill=INK, width=2)
        draw.line((x, top + rows * trimmed.height + gap, x, top + rows * trimmed.height + gap + length), fill=INK, width=2)
    for row in range(rows + 1):
        y = top + row * trimmed.height
        draw.line((left - gap - length, y, left - gap, y), fill=INK, width=2)
        draw.line((left + columns * trimmed.width + gap, y, left + columns * trimmed.width + gap + length, y), fill=INK, width=2)
    return _pdf(sheet, f"{face.name}: ten business cards, A4")
