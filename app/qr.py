"""QR images and vCards: what a code encodes, how it is drawn, and the render cache.

A rendered image is fully determined by its payload and drawing options, so the cache
is keyed by exactly those: when a card changes, its static payload changes and the old
image can never be served again (it ages out of the LRU). Dynamic codes encode only the
short URL, so they survive card edits in the cache, as they do on paper.
"""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Literal

import segno
from cachetools import LRUCache
from prometheus_client import Counter, Histogram

Format = Literal["png", "svg", "pdf", "eps"]
Mode = Literal["dynamic", "static"]
Ecc = Literal["L", "M", "Q", "H"]

MEDIA_TYPES: dict[str, str] = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "eps": "application/postscript",
}
CACHE_BYTES = 32 * 1024 * 1024

QR_GENERATIONS = Counter("qr_generations", "QR images rendered (cache misses)", ["format", "mode"])
QR_DURATION = Histogram(
    "qr_generation_duration_seconds",
    "Time to render one QR image",
    ["format"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
CACHE_HITS = Counter("cache_hits", "Cache lookups that found an entry", ["cache"])
CACHE_MISSES = Counter("cache_misses", "Cache lookups that found nothing", ["cache"])


class QrTooLarge(ValueError):
    """The payload does not fit a QR code at the requested size or error-correction level."""


@dataclass(frozen=True, slots=True)
class Drawing:
    """How to draw a code: everything besides the payload that changes the image."""

    format: Format = "png"
    size: int = 512
    ecc: Ecc = "M"
    dark: str = "#000000"
    light: str = "#ffffff"
    border: int = 4


# --- vCard ---------------------------------------------------------------------------


def escape_vcard_text(value: str) -> str:
    """RFC 6350 §3.4 text escaping: backslash, comma, semicolon and newline."""
    return (
        value.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace(";", "\\;")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def vcard(
    full_name: str,
    email: str,
    organization: str | None = None,
    title: str | None = None,
    phone: str | None = None,
    website: str | None = None,
) -> str:
    """A vCard 3.0 with CRLF line ends; every value escaped so none can add a property."""
    # N is required by vCard 3.0; treating the last word as the family name is the
    # common guess, and FN keeps the name exactly as the owner wrote it.
    given, _, family = full_name.strip().rpartition(" ")
    if not given:
        given, family = family, ""
    e = escape_vcard_text
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"N:{e(family)};{e(given)};;;", f"FN:{e(full_name)}"]
    if organization:
        lines.append(f"ORG:{e(organization)}")
    if title:
        lines.append(f"TITLE:{e(title)}")
    lines.append(f"EMAIL;TYPE=INTERNET:{e(email)}")
    if phone:
        lines.append(f"TEL;TYPE=CELL:{e(phone)}")
    if website:
        lines.append(f"URL:{e(website)}")
    lines.append("END:VCARD")
    return "\r\n".join(lines) + "\r\n"


# --- drawing -------------------------------------------------------------------------


def parse_colour(value: str) -> tuple[int, int, int]:
    """'#RRGGBB', 'RRGGBB', '#RGB' or 'RGB' to an RGB tuple. Raises ValueError."""
    digits = value.removeprefix("#")
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    if len(digits) != 6 or any(ch not in "0123456789abcdefABCDEF" for ch in digits):
        raise ValueError(f"{value!r} is not a hex colour like #1a2b3c")
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def contrast_ratio(dark: tuple[int, int, int], light: tuple[int, int, int]) -> float:
    """WCAG contrast ratio of light over dark; below 1 means the colours are inverted."""

    def luminance(rgb: tuple[int, int, int]) -> float:
        def channel(c: int) -> float:
            s = c / 255
            return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

        r, g, b = (channel(c) for c in rgb)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    return (luminance(light) + 0.05) / (luminance(dark) + 0.05)


def make_symbol(payload: str, ecc: Ecc) -> segno.QRCode:
    """The QR symbol for a UTF-8 payload. Raises QrTooLarge."""
    try:
        return segno.make(payload, error=ecc, boost_error=False, micro=False, encoding="utf-8")
    except segno.DataOverflowError:
        raise QrTooLarge(f"the content is too long for a QR code at error correction {ecc}") from None


def render(payload: str, drawing: Drawing) -> bytes:
    """The image bytes of `payload` drawn as `drawing` says. Raises QrTooLarge."""
    symbol = make_symbol(payload, drawing.ecc)
    if drawing.format == "png":
        return _png(symbol.matrix, drawing)
    # Vector formats take fractional scales; size is then pixels (SVG) or points (PDF, EPS).
    # EPS is written as text, the others as bytes.
    out = io.StringIO() if drawing.format == "eps" else io.BytesIO()
    scale = drawing.size / (len(symbol.matrix) + 2 * drawing.border)
    symbol.save(out, kind=drawing.format, scale=scale, border=drawing.border, dark=drawing.dark, light=drawing.light)
    image = out.getvalue()
    return image.encode("ascii") if isinstance(image, str) else image


def _png(matrix: tuple[bytearray, ...], drawing: Drawing) -> bytes:
    """An exactly size×size 1-bit PNG with whole-pixel modules.

    segno's own PNG writer can only add whole modules of quiet zone, so the image
    would rarely be the exact size asked for; here the largest whole scale that keeps
    the minimum border is chosen and the quiet zone widened to fill the rest.
    """
    width = len(matrix)
    size = drawing.size
    scale = size // (width + 2 * drawing.border)
    if scale < 1:
        minimum = width + 2 * drawing.border
        raise QrTooLarge(f"this code needs at least {minimum} px at error correction {drawing.ecc}")
    margin = size - scale * width
    left = margin // 2
    top = margin // 2
    row_bytes = (size + 7) // 8
    pad_bits = row_bytes * 8 - size
    blank = b"\x00" + bytes(row_bytes)
    on, off = "1" * scale, "0" * scale
    lines = [blank] * top
    for row in matrix:
        bits = "0" * left + "".join(on if m else off for m in row) + "0" * (size - left - scale * width + pad_bits)
        line = b"\x00" + int(bits, 2).to_bytes(row_bytes, "big")
        lines.extend([line] * scale)
    lines.extend([blank] * (size - len(lines)))
    palette = bytes(parse_colour(drawing.light)) + bytes(parse_colour(drawing.dark))
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 1, 3, 0, 0, 0)),
            _chunk(b"PLTE", palette),
            _chunk(b"IDAT", zlib.compress(b"".join(lines), 6)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# --- cache ---------------------------------------------------------------------------


class QrCache:
    """Rendered images by (payload, drawing), bounded by total bytes."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self._images: LRUCache[tuple[str, Drawing], bytes] = LRUCache(maxsize=max_bytes, getsizeof=len)

    def get(self, payload: str, drawing: Drawing) -> bytes | None:
        image = self._images.get((payload, drawing))
        (CACHE_MISSES if image is None else CACHE_HITS).labels("qr").inc()
        return image

    def put(self, payload: str, drawing: Drawing, image: bytes) -> None:
        if len(image) <= self._images.maxsize:
            self._images[(payload, drawing)] = image

    def __len__(self) -> int:
        return len(self._images)


def render_counted(payload: str, drawing: Drawing, mode: Mode) -> bytes:
    """`render`, timed and counted in the metrics. Raises QrTooLarge."""
    started = time.perf_counter()
    image = render(payload, drawing)
    QR_DURATION.labels(drawing.format).observe(time.perf_counter() - started)
    QR_GENERATIONS.labels(drawing.format, mode).inc()
    return image


async def cached_image(cache: QrCache, payload: str, drawing: Drawing, mode: Mode) -> bytes:
    """The image from the cache, or rendered off the event loop and cached. Raises QrTooLarge."""
    image = cache.get(payload, drawing)
    if image is None:
        image = await asyncio.to_thread(render_counted, payload, drawing, mode)
        cache.put(payload, drawing, image)
    return image
