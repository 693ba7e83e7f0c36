"""QR images: how a code is drawn, and the render cache (a card's vCard is app/cards/vcard.py).

A rendered image is fully determined by its payload and drawing options, so the cache
is keyed by exactly those: when a card changes, its static payload changes and the old
image can never be served again (it ages out of the LRU). Dynamic codes encode only the
short URL, so they survive card edits in the cache, as they do on paper.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import itertools
import struct
import time
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

from cachetools import LRUCache
from prometheus_client import Counter, Histogram

from app.ops import tally

if TYPE_CHECKING:
    import segno

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
# Looked up on every cached image a scanner fetches: tallies, folded in before each scrape.
_QR_HITS, _QR_MISSES = tally.Counted(CACHE_HITS.labels("qr")), tally.Counted(CACHE_MISSES.labels("qr"))


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
    # PDF and EPS: the code's printed side in millimetres, quiet zone included (size is then
    # not used). Without it a PDF page was `size` points wide: 512 px made an 18 cm page.
    mm: float | None = None


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


class Symbol(NamedTuple):
    """A QR symbol: its modules (rows of 0 and 1, quiet zone not included), version and mask."""

    matrix: tuple[bytearray, ...]
    version: int
    mask: int


def _segno(payload: str, ecc: Ecc, mask: int | None) -> segno.QRCode:
    import segno  # here, not at start: only a cache miss draws, and idle memory matters more than its 25 ms once

    try:
        return segno.make(payload, error=ecc, mask=mask, boost_error=False, micro=False, encoding="utf-8")
    except segno.DataOverflowError:
        raise QrTooLarge(f"the content is too long for a QR code at error correction {ecc}") from None


def make_symbol(payload: str, ecc: Ecc) -> Symbol:
    """The QR symbol for a UTF-8 payload, with the mask segno itself would choose. Raises QrTooLarge.

    segno spends most of its time choosing the mask: it masks and scores the symbol
    eight times, module by module, in Python (about 15 ms of 20 for a version 11
    vCard). Here segno encodes once with mask 0, and the eight candidates are scored as
    whole symbols: every row (and every column) laid end to end in one big int, so
    masking is one XOR and each penalty rule a few shifts and a bit count. The rules are
    ISO 18004's, computed as segno computes them, so the same mask wins (tests/unit/test_qr.py
    compares the two).
    """
    symbol = _segno(payload, ecc, mask=0)
    layout = _layout(symbol.version)
    rows_encoded = int(b"".join(symbol.matrix).translate(_DIGITS), 2)
    cols_encoded = int(bytes(itertools.chain.from_iterable(zip(*symbol.matrix, strict=True))).translate(_DIGITS), 2)
    # Mask 0 taken off, format and version modules blank: what segno scores.
    rows = rows_encoded & layout.keep ^ layout.mask_rows[0]
    cols = cols_encoded & layout.keep_t ^ layout.mask_cols[0]
    masks = zip(layout.mask_rows, layout.mask_cols, strict=True)
    scores = [_penalty(rows ^ mask_rows, cols ^ mask_cols, layout) for mask_rows, mask_cols in masks]
    best = scores.index(min(scores))  # the first of equals, as in segno
    if best == 0:
        return Symbol(symbol.matrix, symbol.version, 0)
    # The version information does not depend on the mask: it comes back as encoded.
    final = rows ^ layout.mask_rows[best] | rows_encoded & ~layout.keep & layout.all
    bits = format(final, layout.digits).encode().translate(_BITS)
    width = layout.width
    matrix = tuple(bytearray(bits[i : i + width]) for i in range(0, len(bits), width))
    _put_format_info(matrix, ecc, best)
    return Symbol(matrix, symbol.version, best)


def render(payload: str, drawing: Drawing) -> bytes:
    """The image bytes of `payload` drawn as `drawing` says. Raises QrTooLarge."""
    symbol = make_symbol(payload, drawing.ecc)
    if drawing.format == "png":
        return _png(symbol.matrix, drawing)
    # segno's writers draw only its own symbols, so it encodes once more with the mask
    # already chosen (no scoring).
    code = _segno(payload, drawing.ecc, mask=symbol.mask)
    style = {"border": drawing.border, "dark": drawing.dark, "light": drawing.light}
    if drawing.format == "svg":
        return _svg(code, drawing.size, style)
    # PDF and EPS take fractional scales, in points (1/72 inch). EPS is written as text.
    side = drawing.mm * 72 / 25.4 if drawing.mm else drawing.size
    out = io.StringIO() if drawing.format == "eps" else io.BytesIO()
    code.save(out, kind=drawing.format, scale=side / (len(symbol.matrix) + 2 * drawing.border), **style)
    image = out.getvalue()
    return image.encode("ascii") if isinstance(image, str) else image


def _svg(code: segno.QRCode, size: int, style: dict) -> bytes:
    """The code as an SVG of `size`×`size` pixels, drawn in modules and sized by its viewBox.

    Drawn at segno's fractional scales instead, the light background was a module short
    on the right and at the bottom: segno sizes it as `width // scale`, and 512 // (512 / 37)
    is 36.0 in floating point.
    """
    out = io.BytesIO()
    code.save(out, kind="svg", scale=1, omitsize=True, **style)  # viewBox="0 0 n n", no width or height
    return out.getvalue().replace(b"<svg ", f'<svg width="{size}" height="{size}" '.encode(), 1)


# --- mask choice ---------------------------------------------------------------------

_DIGITS = bytes.maketrans(b"\x00\x01", b"01")  # modules 0/1 to the digits int(..., 2) reads
_BITS = bytes.maketrans(b"01", b"\x00\x01")
_FINDER_LIKE = "1011101"
# ISO 18004 table 10, as segno writes them: i is the row, j the column.
_MASKS = (
    lambda i, j: (i + j) % 2 == 0,
    lambda i, j: i % 2 == 0,
    lambda i, j: j % 3 == 0,
    lambda i, j: (i + j) % 3 == 0,
    lambda i, j: (i // 2 + j // 3) % 2 == 0,
    lambda i, j: (i * j) % 2 + (i * j) % 3 == 0,
    lambda i, j: ((i * j) % 2 + (i * j) % 3) % 2 == 0,
    lambda i, j: ((i + j) % 2 + (i * j) % 3) % 2 == 0,
)
_ECC_BITS = {"L": 1, "M": 0, "Q": 3, "H": 2}


class _Layout(NamedTuple):
    """One version's geometry, as big ints: row-major (module (i, j) at digit i * width + j,
    the first digit the highest bit) and, for columns, the same of the transposed symbol."""

    width: int
    digits: str  # format spec writing a whole symbol as 0/1 digits
    all: int  # every module
    keep: int  # every module but the format, dark and version modules
    keep_t: int
    mask_rows: list[int]  # per mask: the data modules it flips
    mask_cols: list[int]
    same_line: int  # modules with a left neighbour in their line (row, or column when transposed)
    below: int  # modules with a left neighbour and one above


def alignment_positions(version: int) -> list[int]:
    """Centre rows (and columns) of the alignment patterns, ISO 18004 annex E."""
    if version == 1:
        return []
    count = version // 7 + 2
    size = 17 + 4 * version
    step = 26 if version == 32 else (version * 4 + count * 2 + 1) // (count * 2 - 2) * 2
    return [6] + [size - 7 - k * step for k in reversed(range(count - 1))]


@functools.cache
def _layout(version: int) -> _Layout:
    """Which modules are data and which are left blank while scoring, and what each mask flips."""
    size = 17 + 4 * version
    data = [[True] * size for _ in range(size)]
    blank = [[False] * size for _ in range(size)]  # 0 while scoring: format, dark and version modules

    def block(top: int, left: int, height: int, width: int, grid=data, value=False) -> None:
        for i in range(max(top, 0), min(top + height, size)):
            for j in range(max(left, 0), min(left + width, size)):
                grid[i][j] = value

    for top, left in ((0, 0), (0, size - 8), (size - 8, 0)):  # finders with their separators
        block(top, left, 8, 8)
    block(6, 0, 1, size)  # timing patterns
    block(0, 6, size, 1)
    centres = alignment_positions(version)
    corners = {(centres[0], centres[0]), (centres[0], centres[-1]), (centres[-1], centres[0])} if centres else set()
    for i in centres:
        for j in centres:
            if (i, j) not in corners:
                block(i - 2, j - 2, 5, 5)
    for grid, value in ((data, False), (blank, True)):  # format information and the dark module
        block(8, 0, 1, 9, grid, value)
        block(0, 8, 9, 1, grid, value)
        block(8, size - 8, 1, 8, grid, value)
        block(size - 8, 8, 8, 1, grid, value)
    blank[6][8] = blank[8][6] = False  # where the format strips cross the timing patterns
    if version >= 7:  # version information
        for grid, value in ((data, False), (blank, True)):
            block(0, size - 11, 6, 3, grid, value)
            block(size - 11, 0, 3, 6, grid, value)

    def big(test) -> int:
        return int("".join("1" if test(i, j) else "0" for i in range(size) for j in range(size)), 2)

    return _Layout(
        width=size,
        digits=f"0{size * size}b",
        all=big(lambda i, j: True),
        keep=big(lambda i, j: not blank[i][j]),
        keep_t=big(lambda i, j: not blank[j][i]),
        mask_rows=[big(lambda i, j: data[i][j] and dark(i, j)) for dark in _MASKS],  # noqa: B023 (big() calls it at once)
        mask_cols=[big(lambda i, j: data[j][i] and dark(j, i)) for dark in _MASKS],  # noqa: B023 (likewise)
        same_line=big(lambda i, j: j > 0),
        below=big(lambda i, j: i > 0 and j > 0),
    )


def _penalty(rows: int, cols: int, layout: _Layout) -> int:
    """ISO 18004 7.8.3 penalty score (N1 + N2 + N3 + N4), computed the way segno computes it.

    `rows` and `cols` are one masked symbol, row-major and transposed. Shifting right by
    one lines each module up with its left neighbour, by `width` with the one above.
    """
    width = layout.width
    score = 0
    for modules in (rows, cols):
        # N1: a run of L >= 5 same-coloured modules in a line scores L - 2. A run is L - 1
        # "same as the left neighbour" bits; `four` keeps those ending four in a row, so a run
        # leaves L - 4 of them, and each run's first one (its start) adds the other 2.
        same = ~(modules ^ (modules >> 1)) & layout.same_line
        four = same & (same >> 1) & (same >> 2) & (same >> 3)
        score += four.bit_count() + 2 * (four & ~(four >> 1)).bit_count()
        # N3: 40 for each 1011101 with four light modules on one side, or at an edge;
        # few enough to walk through as text, exactly as segno does line by line.
        text = format(modules, layout.digits)
        found = text.find(_FINDER_LIKE)
        while found != -1:
            column = found % width
            if column > width - 7:  # runs over the end of its line: not a real match
                found = text.find(_FINDER_LIKE, found + 1)
                continue
            start = found - column
            after = found + 7
            if (
                column in (0, width - 7)
                or "1" not in text[max(found - 4, start):found]
                or "1" not in text[after:min(after + 4, start + width)]
            ):
                score += 40
            else:
                after = found + 4  # segno looks again from the middle of the pattern
            found = text.find(_FINDER_LIKE, after)
    # N2: 3 for every 2x2 block of one colour.
    above = rows >> width
    block = ~(rows ^ (rows >> 1)) & ~(above ^ (above >> 1)) & ~(rows ^ above) & layout.below
    score += 3 * block.bit_count()
    # N4: 10 for every full 5 % the dark share is away from half.
    score += 10 * int(abs(rows.bit_count() / width**2 * 100 - 50) / 5)
    return score


def _put_format_info(matrix: tuple[bytearray, ...], ecc: Ecc, mask: int) -> None:
    """Write the 15 format bits (error level, mask, BCH code) and the dark module, ISO 18004 7.9."""
    data = _ECC_BITS[ecc] << 3 | mask
    remainder = data
    for _ in range(10):
        remainder = (remainder << 1) ^ ((remainder >> 9) * 0x537)
    bits = ((data << 10) | remainder) ^ 0x5412
    row_eight = matrix[8]
    skip_v = skip_h = 0
    for i in range(8):
        vbit, hbit = (bits >> i) & 1, (bits >> (14 - i)) & 1
        if i == 6:  # step over the timing pattern
            skip_v, skip_h = 1, 1
        matrix[i + skip_v][8] = vbit
        row_eight[i + skip_h] = hbit
        row_eight[-1 - i] = vbit
        matrix[-1 - i][8] = hbit
    matrix[-8][8] = 1


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


# What an entry of QrCache costs besides its image and payload: the key tuple, the Drawing
# and its colour strings, the bytes object's header, and the cache's three dict slots and
# its LRU link, with the spare slots of dicts kept half empty (measured with tracemalloc
# filling a 2 MiB cache with 20,000 tiny images: about 800 bytes).
ENTRY_OVERHEAD = 900


class QrCache:
    """Rendered images by (payload, drawing), bounded by the memory they take: each entry
    is counted as its image, its payload and ENTRY_OVERHEAD, so that the bound holds for
    many small images as for few large ones (tests/unit/test_qr.py measures it)."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        # Values are (image, the bytes it is counted for).
        self._images: LRUCache[tuple[str, Drawing], tuple[bytes, int]] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda entry: entry[1]
        )

    def get(self, payload: str, drawing: Drawing) -> bytes | None:
        entry = self._images.get((payload, drawing))
        if entry is None:
            _QR_MISSES.n += 1
            return None
        _QR_HITS.n += 1
        return entry[0]

    def cached(self, payload: str, drawing: Drawing) -> bytes | None:
        """Like get, but a miss is not counted: whoever then draws the image counts it (with get)."""
        entry = self._images.get((payload, drawing))
        if entry is None:
            return None
        _QR_HITS.n += 1
        return entry[0]

    def put(self, payload: str, drawing: Drawing, image: bytes) -> None:
        size = len(image) + len(payload.encode()) + ENTRY_OVERHEAD
        if size <= self._images.maxsize:
            self._images[(payload, drawing)] = (image, size)

    def __len__(self) -> int:
        return len(self._images)

    @property
    def counted_bytes(self) -> int:
        """What the entries are counted for: at most the bound given."""
        return self._images.currsize


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
