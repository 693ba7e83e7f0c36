"""Images for the upload tests, made with Pillow (and a PNG written by hand for the bombs):
plain ones, ones carrying metadata, and hostile ones."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image, ImageCms

# What an upload carries besides the pixels, as Pillow reads it back.
METADATA_KEYS = ("exif", "icc_profile", "xmp", "XML:com.adobe.xmp", "comment", "photoshop")


def encoded(picture: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    picture.save(out, fmt, **options)
    return out.getvalue()


def halves(size: tuple[int, int] = (400, 200)) -> Image.Image:
    """Red on the left half, blue on the right: an orientation fix shows in where they end up."""
    picture = Image.new("RGB", size, (220, 20, 20))
    picture.paste((20, 20, 220), (size[0] // 2, 0, size[0], size[1]))
    return picture


def jpeg(size: tuple[int, int] = (800, 600), colour=(40, 120, 200), **options) -> bytes:
    return encoded(Image.new("RGB", size, colour), "JPEG", **options)


def truncated_jpeg() -> bytes:
    """The first half of a noisy 1200×900 JPEG: a header that reads, pixels that stop."""
    whole = encoded(Image.effect_noise((1200, 900), 80).convert("RGB"), "JPEG", quality=95)
    return whole[: len(whole) // 2]


def png(size: tuple[int, int] = (800, 600), colour=(200, 60, 40)) -> bytes:
    return encoded(Image.new("RGB", size, colour), "PNG")


def jpeg_with_gps() -> bytes:
    """A JPEG whose EXIF says where it was taken (and who made the camera), with an XMP packet
    and an ICC profile besides."""
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0), 3: "E", 4: (2.0, 17.0, 40.0)}  # GPSInfo
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return encoded(halves((640, 480)), "JPEG", exif=exif, xmp=xmp, icc_profile=icc, comment=b"secret place")


def jpeg_rotated() -> bytes:
    """A 400×200 landscape (red left, blue right) whose EXIF Orientation is 6: shown turned a
    quarter clockwise, as a 200×400 portrait with red on top."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(halves((400, 200)), "JPEG", exif=exif, quality=95)


def png_bomb(width: int, height: int) -> bytes:
    """A 1-bit PNG of width×height black pixels: a few kilobytes that decode to width×height bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" + b"\0" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row * 100) for _ in range(height // 100)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def gif() -> bytes:
    return encoded(Image.new("P", (64, 64), 3), "GIF")


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><script>alert(1)</script><rect width="64" height="64"/></svg>'
