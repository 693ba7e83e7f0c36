"""The card as a Google Wallet pass (SPEC §10): the "Save to Google Wallet" link.

The link carries the pass in a JWT (RS256, signed with the operator's service account key,
`typ` savetowallet): a generic pass class `{issuerId}.qrcontact` and the card's object
`{issuerId}.{cardId}`, with the name, title, organization, phone and email, the card's
accent colour and the QR of its short link with `?src=wallet`. Google creates or updates
them when the visitor saves the pass; nothing is sent to Google from here.
"""

from __future__ import annotations

import functools

import jwt

from app.cards.cards import image_path
from app.cards.types import Card
from app.config import Settings
from app.public.looks import accent_of, hex_rgb
from app.wallet import keys
from app.wallet.apple import scan_url

SAVE_URL = "https://pay.google.com/gp/v/save/"
CLASS_SUFFIX = "qrcontact"
LANGUAGE = "en-US"


@functools.lru_cache(maxsize=4)
def google_account(settings: Settings) -> keys.GoogleAccount:
    """The service account, read once (checked at start by app/config.py). Raises keys.Unusable."""
    assert settings.google_wallet_service_account is not None  # settings.google_wallet
    return keys.read_google_account(settings.google_wallet_service_account)


def _text(value: str) -> dict:
    return {"defaultValue": {"language": LANGUAGE, "value": value}}


def generic_object(settings: Settings, card: Card) -> dict:
    """The card as Google Wallet's genericObject."""
    issuer = settings.google_wallet_issuer_id
    modules = [
        {"id": key, "header": header, "body": value}
        for key, header, value in (
            ("title", "Title", card.title), ("organization", "Organization", card.organization),
            ("phone", "Phone", card.phones[0].number if card.phones else None),
            ("email", "Email", card.emails[0].address if card.emails else None),
        )
        if value
    ]
    red, green, blue = hex_rgb(accent_of(card))
    url = scan_url(settings, card)
    found = {
        "id": f"{issuer}.{card.card_id}",
        "classId": f"{issuer}.{CLASS_SUFFIX}",
        "state": "ACTIVE",
        "cardTitle": _text((card.brand.name if card.brand else None) or card.organization or "Contact card"),
        "header": _text(card.full_name),
        "textModulesData": modules,
        "barcode": {"type": "QR_CODE", "value": url, "alternateText": url.split("?")[0]},
        "hexBackgroundColor": f"#{red:02x}{green:02x}{blue:02x}",
        "linksModuleData": {"uris": [{"uri": f"{settings.public_base_url}/p/{card.slug}", "description": "Card page", "id": "page"}]},
    }
    if subheader := " · ".join(part for part in (card.title, card.organization) if part):
        found["subheader"] = _text(subheader)
    if (logo := image_path(card, "logo") or image_path(card, "photo")) is not None:
        found["logo"] = {"sourceUri": {"uri": settings.public_base_url + logo}}
    return found


def save_token(settings: Settings, card: Card, now: int) -> str:
    """The JWT of the save link. Raises keys.Unusable if the key file cannot be read."""
    account = google_account(settings)
    claims = {
        "iss": account.client_email,
        "aud": "google",
        "typ": "savetowallet",
        "iat": now,
        "origins": [settings.public_base_url],
        "payload": {
            "genericClasses": [{"id": f"{settings.google_wallet_issuer_id}.{CLASS_SUFFIX}"}],
            "genericObjects": [generic_object(settings, card)],
        },
    }
    headers = {"kid": account.key_id} if account.key_id else None
    return jwt.encode(claims, account.key, algorithm="RS256", headers=headers)


def save_url(settings: Settings, card: Card, now: int) -> str:
    return SAVE_URL + save_token(settings, card, now)
