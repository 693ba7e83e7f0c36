"""Codes with the logo in the centre (SPEC §10): the card's logo on a light square over the
middle of the symbol, at error correction H.

The square covers LOGO_SHARE of the symbol's area (the quiet zone not counted): the
modules under it are lost, and level H restores up to 30 % of the codewords, so a
little under half of that is spent on the logo and the rest is left for print and
camera. The three finder patterns are in the corners, never under the centre. Drawn for
PNG and SVG, the formats a phone's or a designer's reader takes; PDF and EPS stay plain
(there is no way here to prove a reader decodes them, and print has its own PDF).
"""

from __future__ import annotations

import base64
import io
import math

from PIL import Image

from app import qr

LOGO_SHARE = 0.12  # of the symbol's area, padding included: at most 20 % (SPEC §10)
LOGO_FORMATS = ("png", "svg")


def square_side(modules: int) -> int:
    """The light square's side in modules: odd, so that it sits on the centre module."""
    side = int(math.sqrt(LOGO_SHARE) * modules)
    return side if side % 2 else side - 1


def render(payload: str, drawing: qr.Drawing, logo_jpeg: bytes) -> bytes:
    """`payload` drawn as `drawing` says at level H, with the logo in the centre. Raises QrTooLarge."""
    drawing = qr.Drawing(drawing.format, drawing.size, "H", drawing.dark, drawing.light, drawing.border)
    plain = qr.render(payload, drawing)
    modules = len(qr.make_symbol(payload, "H").matrix)
    if drawing.format == "png":
        return _png(plain, modules, drawing, logo_jpeg)
    return _svg(plain, modules, drawing, logo_jpeg)


def _png(plain: bytes, modules: int, drawing: qr.Drawing, logo_jpeg: bytes) -> bytes:
    with Image.open(io.BytesIO(plain)) as drawn:
        image = drawn.convert("RGB")
    size = drawing.size
    scale = size // (modules + 2 * drawing.border)  # as qr._png lays the modules out
    offset = (size - scale * modules) // 2
    side = square_side(modules)
    start = offset + (modules - side) // 2 * scale
    square = side * scale
    image.paste(qr.parse_colour(drawing.light), (start, start, start + square, start + square))
    pad = max(1, scale // 2)
    with Image.open(io.BytesIO(logo_jpeg)) as logo:
        fitted = logo.convert("RGB").resize((square - 2 * pad, square - 2 * pad), Image.Resampling.LANCZOS)
    image.paste(fitted, (start + pad, start + pad))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _svg(plain: bytes, modules: int, drawing: qr.Drawing, logo_jpeg: bytes) -> bytes:
    # The SVG's viewBox is in modules, the quiet zone included (qr._svg).
    side = square_side(modules)
    start = drawing.border + (modules - side) // 2
    pad = 0.5
    encoded = base64.b64encode(logo_jpeg).decode("ascii")
    overlay = (
        f'<rect x="{start}" y="{start}" width="{side}" height="{side}" fill="{drawing.light}"/>'
        f'<image x="{start + pad}" y="{start + pad}" width="{side - 2 * pad}" height="{side - 2 * pad}" '
        f'preserveAspectRatio="xMidYMid meet" href="data:image/jpeg;base64,{encoded}"/>'
    ).encode()
    return plain.replace(b"</svg>", overlay + b"</svg>")
