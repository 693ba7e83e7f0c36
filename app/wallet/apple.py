"""The card as an Apple Wallet pass (SPEC §10): a `.pkpass`, the zip Wallet opens.

It holds pass.json (a generic pass: the name, title · organization, phone and email, the
card's colours, and the QR of the card's short link with `?src=wallet`, so a scan of the
pass counts as one from the wallet), the images (icon.png is required; logo.png from the
card's logo; thumbnail.png from its photo), manifest.json (the SHA-1 of every other file)
and `signature`: a detached PKCS#7 (DER) over manifest.json, signed with the operator's
Pass Type ID certificate and carrying Apple's WWDR intermediate, as Wallet checks it.

Building one takes a few milliseconds of Pillow and a signature: app/public/card_files.py
builds it off the event loop, once per state of the card.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import zipfile

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from PIL import Image, ImageDraw, ImageFont, ImageOps

from app.cards.cards import short_url
from app.cards.types import Card
from app.config import Settings
from app.public.looks import accent_of, hex_rgb, initials, team_name
from app.public.pages import contrast
from app.wallet import keys

MEDIA_TYPE = "application/vnd.apple.pkpass"
SOURCE = "wallet"  # the src of the pass's code: its scans count with this source (app/public/counters.py)
RGB = tuple[int, int, int]
# Wallet's image sizes in points (@2x doubles them); the logo at most 160×50.
ICON, THUMBNAIL, LOGO = (29, 29), (90, 90), (160, 50)


@functools.lru_cache(maxsize=4)
def apple_keys(settings: Settings) -> keys.AppleKeys:
    """The operator's certificate, key and WWDR certificate, read once (checked at start by
    app/config.py). Raises keys.Unusable if the files have changed into something unusable."""
    assert settings.apple_pass_cert and settings.apple_pass_key and settings.apple_wwdr_cert  # settings.apple_wallet
    return keys.read_apple_keys(
        settings.apple_pass_cert, settings.apple_pass_key, settings.apple_pass_key_password, settings.apple_wwdr_cert
    )


def scan_url(settings: Settings, card: Card) -> str:
    """What the pass's QR holds: the card's counted short link, marked as a scan from a wallet."""
    return f"{short_url(settings, card.slug)}?src={SOURCE}"


def colours(accent: str | None) -> dict[str, RGB]:
    """The pass's background (the card's accent), its text in black or white, whichever reads
    better on it, and its labels a little softer when they still read (WCAG AA, 4.5:1)."""
    background = hex_rgb(accent)
    black, white = (0, 0, 0), (255, 255, 255)
    foreground = black if contrast(background, black) >= contrast(background, white) else white
    softer = tuple(round(0.8 * f + 0.2 * b) for f, b in zip(foreground, background, strict=True))
    label = softer if contrast(softer, background) >= 4.5 else foreground  # type: ignore[arg-type]
    return {"backgroundColor": background, "foregroundColor": foreground, "labelColor": label}  # type: ignore[dict-item]


def css_rgb(rgb: RGB) -> str:
    return f"rgb({rgb[0]}, {rgb[1]}, {rgb[2]})"


def pass_json(settings: Settings, card: Card) -> dict:
    """pass.json: a generic pass of the card."""
    role = " · ".join(part for part in (card.title, card.organization) if part)
    fields = {
        "primaryFields": [{"key": "name", "label": "NAME", "value": card.full_name}],
        "secondaryFields": [{"key": "role", "label": "TITLE", "value": role}] if role else [],
        "auxiliaryFields": [],
        "backFields": [],
    }
    if card.phones:
        phone = card.phones[0]
        fields["auxiliaryFields"].append({"key": "phone", "label": "PHONE", "value": phone.number})
    if card.emails:
        fields["auxiliaryFields"].append({"key": "email", "label": "EMAIL", "value": card.emails[0].address})
    fields["backFields"] = [
        *[{"key": f"phone{i}", "label": "Phone", "value": p.number} for i, p in enumerate(card.phones)],
        *[{"key": f"email{i}", "label": "Email", "value": e.address} for i, e in enumerate(card.emails)],
        *[{"key": f"link{i}", "label": link.label or "Website", "value": link.url} for i, link in enumerate(card.links)],
        {"key": "page", "label": "Card", "value": f"{settings.public_base_url}/p/{card.slug}"},
    ]
    url = scan_url(settings, card)
    return {
        "formatVersion": 1,
        "passTypeIdentifier": settings.apple_pass_type_id,
        "serialNumber": card.card_id,
        "teamIdentifier": settings.apple_team_id,
        "organizationName": card.organization or card.full_name,
        "description": f"Contact card of {card.full_name}",
        **({"logoText": logo_text} if (logo_text := team_name(card) or card.organization) else {}),
        **{name: css_rgb(rgb) for name, rgb in colours(accent_of(card)).items()},
        "generic": fields,
        "barcodes": [{"format": "PKBarcodeFormatQR", "message": url, "messageEncoding": "iso-8859-1", "altText": url.split("?")[0]}],
    }


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _icon(name: str, accent: RGB, ink: RGB, side: int) -> Image.Image:
    """The initials on the accent colour: the icon Wallet shows in notifications."""
    image = Image.new("RGB", (side, side), accent)
    ImageDraw.Draw(image).text(
        (side / 2, side / 2), initials(name), font=ImageFont.load_default(size=side * 0.45), fill=ink, anchor="mm"
    )
    return image


def _fit_inside(jpeg: bytes, box: tuple[int, int]) -> Image.Image:
    with Image.open(io.BytesIO(jpeg)) as opened:
        image = opened.convert("RGB")
    image.thumbnail(box, Image.Resampling.LANCZOS)
    return image


def images(card: Card, photo_jpeg: bytes | None, logo_jpeg: bytes | None) -> dict[str, bytes]:
    """The pass's images, at 1x and 2x: icon (required), logo (the card's logo), thumbnail (its photo)."""
    palette = colours(accent_of(card))
    files: dict[str, bytes] = {}
    for scale, suffix in ((1, ""), (2, "@2x")):
        side = ICON[0] * scale
        if logo_jpeg is not None:
            icon = ImageOps.pad(_fit_inside(logo_jpeg, (side, side)), (side, side), color=(255, 255, 255))
        else:
            icon = _icon(card.full_name, palette["backgroundColor"], palette["foregroundColor"], side)
        files[f"icon{suffix}.png"] = _png(icon)
        if logo_jpeg is not None:
            files[f"logo{suffix}.png"] = _png(_fit_inside(logo_jpeg, (LOGO[0] * scale, LOGO[1] * scale)))
        if photo_jpeg is not None:
            with Image.open(io.BytesIO(photo_jpeg)) as photo:
                thumbnail = ImageOps.fit(photo.convert("RGB"), (THUMBNAIL[0] * scale, THUMBNAIL[1] * scale))
            files[f"thumbnail{suffix}.png"] = _png(thumbnail)
    return files


def manifest(files: dict[str, bytes]) -> bytes:
    """manifest.json: the SHA-1 of every file of the pass (SHA-1 is what Wallet asks for)."""
    digests = {name: hashlib.sha1(body, usedforsecurity=False).hexdigest() for name, body in files.items()}
    return json.dumps(digests, indent=1, sort_keys=True).encode()


def signature(manifest_json: bytes, signer: keys.AppleKeys) -> bytes:
    """The detached PKCS#7 signature (DER) of the manifest, with the WWDR certificate in it."""
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(manifest_json)
        .add_signer(signer.certificate, signer.key, hashes.SHA256())
        .add_certificate(signer.wwdr)
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary])
    )


def build(settings: Settings, card: Card, photo_jpeg: bytes | None, logo_jpeg: bytes | None) -> bytes:
    """The .pkpass of the card. Raises keys.Unusable if the operator's keys cannot be read."""
    files = {"pass.json": json.dumps(pass_json(settings, card), ensure_ascii=False, indent=1).encode()}
    files.update(images(card, photo_jpeg, logo_jpeg))
    files["manifest.json"] = manifest(files)
    files["signature"] = signature(files["manifest.json"], apple_keys(settings))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return buffer.getvalue()
