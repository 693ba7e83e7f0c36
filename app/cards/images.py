"""A card's photo or logo made from an upload (SPEC §8): pure functions, no I/O.

An upload is whatever a stranger's phone or script sends, so nothing of it is kept as
sent: `process` decodes it with Pillow (only JPEG, PNG and WebP, whatever the
Content-Type claims), refuses it before decoding when its pixels would not fit in memory
(a decompression bomb: a small PNG of 20000×20000 pixels), fixes its orientation from the
EXIF tag, centre-crops it to a square and writes two new JPEGs from the pixels alone: no
EXIF (GPS included), XMP, ICC profile, comment or trailing bytes (a polyglot's zip or
HTML) survive. Colours in another space than sRGB are converted to sRGB first.

It is CPU-heavy (about the cost of decoding the upload; figures from bench/image_upload.py
in docs/performance.md): callers run it off the event loop (app/cards/card_images.py).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps

from app.cards.types import IMAGE_MAX_BYTES, IMAGE_MEDIA_TYPES
from app.errors import Invalid, TooLarge, Unsupported

MEDIA_TYPES, MAX_BYTES = IMAGE_MEDIA_TYPES, IMAGE_MAX_BYTES
# Phones take 12 to 50 MP photos; 50 MP of RGB is 150 MB while decoding (a JPEG far less:
# it is decoded at a reduced scale, see `_decode`). Anything larger is refused unread.
MAX_PIXELS = 50_000_000
SIZE = 512  # the stored image's side, at most (smaller uploads are not enlarged)
THUMBNAIL = 96
QUALITY = 85
# Pillow's name for each format we take (MPO: a JPEG with a second picture, as some phones write).
FORMATS = ("JPEG", "PNG", "WEBP")
DECODED = frozenset({"JPEG", "MPO", "PNG", "WEBP"})
SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True, slots=True)
class Processed:
    """What is stored of an upload: the square JPEG, its thumbnail, and the hash naming them."""

    image: bytes
    thumbnail: bytes
    content_hash: str
    width: int  # the stored image's side, in pixels


def process(data: bytes) -> Processed:
    """The stored image and thumbnail made from an upload. Raises TooLarge (over MAX_BYTES or
    MAX_PIXELS), Unsupported (not a JPEG, PNG or WebP) and Invalid (truncated or damaged)."""
    if len(data) > MAX_BYTES:
        raise TooLarge(f"the image is larger than {MAX_BYTES // (1024 * 1024)} MB", code="image_too_large")
    picture = _decode(data)
    picture = _as_srgb(picture)
    side = min(picture.size)
    square = ImageOps.fit(picture, (min(side, SIZE),) * 2, Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    thumbnail = square.resize((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
    image = _jpeg(square)
    return Processed(image, _jpeg(thumbnail), hashlib.sha256(image).hexdigest()[:20], square.width)


def _decode(data: bytes) -> Image.Image:
    """The upload's pixels, upright. Raises TooLarge, Unsupported and Invalid."""
    try:
        opened = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.UnidentifiedImageError:
        raise Unsupported("send a JPEG, PNG or WebP image", code="image_type") from None
    except Image.DecompressionBombError:
        raise _too_many_pixels() from None
    except Exception:  # noqa: BLE001 - Pillow raises many kinds for a damaged header
        raise _damaged() from None
    with opened:
        if opened.format not in DECODED:
            raise Unsupported("send a JPEG, PNG or WebP image", code="image_type")
        width, height = opened.size
        # Before a single pixel is decoded: a bomb is small on the wire and huge in memory.
        if width * height > MAX_PIXELS or width < 1 or height < 1:
            raise _too_many_pixels()
        if opened.format in ("JPEG", "MPO"):
            # Decode at 1/2, 1/4 or 1/8 scale when the result still covers SIZE: a 12 MP
            # photo becomes a fraction of the work and memory. The EXIF stays readable.
            opened.draft("RGB", (SIZE, SIZE))
        try:
            opened.load()
            upright = ImageOps.exif_transpose(opened)
        except Image.DecompressionBombError:
            raise _too_many_pixels() from None
        except Exception:  # noqa: BLE001 - truncated data, bad CRCs, broken EXIF: all "damaged"
            raise _damaged() from None
        return upright if upright is not None else opened


def _as_srgb(picture: Image.Image) -> Image.Image:
    """RGB pixels in sRGB: a profile converted (or dropped when it cannot be read),
    transparency flattened onto white (a logo's usual background)."""
    profile = picture.info.get("icc_profile")
    if picture.mode in ("RGBA", "LA", "PA") or (picture.mode == "P" and "transparency" in picture.info):
        rgba = picture.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        picture = flat
    elif picture.mode != "RGB":
        if picture.mode == "CMYK" and profile:
            picture = _converted(picture, profile, "CMYK") or picture.convert("RGB")
            profile = None
        else:
            picture = picture.convert("RGB")
    if profile and picture.mode == "RGB":
        picture = _converted(picture, profile, "RGB") or picture
    return picture


def _converted(picture: Image.Image, profile: bytes, mode: str) -> Image.Image | None:
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        return ImageCms.profileToProfile(picture, source, SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None  # an unreadable profile: the pixels as they are


def _jpeg(picture: Image.Image) -> bytes:
    """The pixels alone as a JPEG: a new image, so no `info` of the upload (EXIF, XMP, ICC,
    comments) can reach the encoder."""
    clean = Image.frombytes("RGB", picture.size, picture.convert("RGB").tobytes())
    out = io.BytesIO()
    clean.save(out, "JPEG", quality=QUALITY, optimize=True, progressive=True)
    return out.getvalue()


def _too_many_pixels() -> TooLarge:
    return TooLarge(f"the image has more than {MAX_PIXELS // 1_000_000} million pixels", code="image_too_many_pixels")


def _damaged() -> Invalid:
    return Invalid("the image is truncated or damaged", code="image_damaged")

