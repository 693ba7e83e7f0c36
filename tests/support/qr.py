"""QR codes read back with a real decoder (zxing-cpp)."""

from __future__ import annotations

import io

import zxingcpp
from PIL import Image


def decode_png(data: bytes) -> tuple[str, Image.Image]:
    image = Image.open(io.BytesIO(data))
    results = zxingcpp.read_barcodes(image.convert("L"))
    assert len(results) == 1, "expected exactly one QR code"
    return results[0].text, image
