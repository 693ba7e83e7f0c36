"""The operator's wallet keys, read from the files the settings name: the Apple Pass Type ID
certificate, its private key and Apple's WWDR intermediate (PEM), and a Google service
account's JSON key. app/config.py reads them once at start, so a bad file stops the
service with its setting named instead of failing at a visitor's first tap; the passes
read them again through `apple_keys` / `google_account` (kept once read).

This module imports nothing of the app, so the settings can use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class Unusable(ValueError):
    """A wallet key file that cannot be used; the message names its setting."""


@dataclass(frozen=True, slots=True)
class AppleKeys:
    certificate: x509.Certificate
    key: SigningKey
    wwdr: x509.Certificate


@dataclass(frozen=True, slots=True)
class GoogleAccount:
    client_email: str
    key_id: str | None
    key: rsa.RSAPrivateKey


def read_apple_keys(cert: Path, key: Path, password: str | None, wwdr: Path) -> AppleKeys:
    """The pass certificate, its key and the WWDR certificate. Raises Unusable."""
    certificate = _certificate(cert, "APPLE_PASS_CERT")
    intermediate = _certificate(wwdr, "APPLE_WWDR_CERT")
    try:
        private = serialization.load_pem_private_key(key.read_bytes(), password.encode() if password else None)
    except TypeError:  # encrypted without a password, or a password for a key that has none
        hint = "is encrypted: set APPLE_PASS_KEY_PASSWORD" if not password else "is not encrypted: unset APPLE_PASS_KEY_PASSWORD"
        raise Unusable(f"APPLE_PASS_KEY {hint} ({key})") from None
    except ValueError:
        raise Unusable(
            f"APPLE_PASS_KEY must be a PEM private key ({key}), and APPLE_PASS_KEY_PASSWORD its passphrase if it has one"
        ) from None
    except OSError as exc:
        raise Unusable(f"APPLE_PASS_KEY cannot be read: {exc}") from None
    if not isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise Unusable(f"APPLE_PASS_KEY must be an RSA or EC key, got {type(private).__name__}")
    if private.public_key().public_numbers() != certificate.public_key().public_numbers():  # type: ignore[union-attr]
        raise Unusable("APPLE_PASS_KEY is not the private key of APPLE_PASS_CERT")
    return AppleKeys(certificate, private, intermediate)


def _certificate(path: Path, name: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        raise Unusable(
            f"{name} must be a PEM certificate ({path}); convert a .cer with "
            "openssl x509 -inform DER -in file.cer -out file.pem"
        ) from None
    except OSError as exc:
        raise Unusable(f"{name} cannot be read: {exc}") from None


def read_google_account(path: Path) -> GoogleAccount:
    """The service account's email and RSA key from its JSON key file. Raises Unusable."""
    name = "GOOGLE_WALLET_SERVICE_ACCOUNT"
    try:
        document = json.loads(path.read_bytes())
        email, pem = document["client_email"], document["private_key"]
        if not isinstance(email, str) or "@" not in email or not isinstance(pem, str):
            raise ValueError
        key = serialization.load_pem_private_key(pem.encode(), None)
    except OSError as exc:
        raise Unusable(f"{name} cannot be read: {exc}") from None
    except (ValueError, KeyError, TypeError):
        raise Unusable(
            f"{name} must be a service account's JSON key file with client_email and private_key ({path})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise Unusable(f"{name}'s private_key must be an RSA key")
    key_id = document.get("private_key_id")
    return GoogleAccount(email, key_id if isinstance(key_id, str) else None, key)
