"""Throwaway wallet keys for the pass tests: a root certificate standing in for Apple's
WWDR intermediate, a Pass Type ID certificate signed by it with its key, and a Google
service account's JSON key file; written as the operator would give them (PEM files), and
settings that name them."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import zipfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from app.config import Settings
from tests.support.app import make_settings

PASS_TYPE_ID = "pass.test.qrcontact.card"
TEAM_ID = "ABCDE12345"
ISSUER_ID = "3388000000012345678"
CLIENT_EMAIL = "wallet@qrcontact-test.iam.gserviceaccount.com"


@dataclass(frozen=True)
class WalletFiles:
    folder: Path
    root: Path  # the stand-in for Apple's WWDR certificate (and the CA openssl verifies with)
    cert: Path
    key: Path
    service_account: Path
    google_public_key: rsa.RSAPublicKey

    def env(self) -> dict[str, str]:
        """The environment that configures both wallets."""
        return {
            "APPLE_PASS_TYPE_ID": PASS_TYPE_ID, "APPLE_TEAM_ID": TEAM_ID, "APPLE_PASS_CERT": str(self.cert),
            "APPLE_PASS_KEY": str(self.key), "APPLE_WWDR_CERT": str(self.root),
            "GOOGLE_WALLET_ISSUER_ID": ISSUER_ID, "GOOGLE_WALLET_SERVICE_ACCOUNT": str(self.service_account),
        }


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test")])


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: rsa.RSAPrivateKey, password: str | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def write_wallet_files(folder: Path) -> WalletFiles:
    """A root CA, a pass certificate it signed with the key, and a service account key file, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    root_key, pass_key, google_key = _key(), _key(), _key()
    root = (
        x509.CertificateBuilder().subject_name(_name("Test WWDR G4")).issuer_name(_name("Test WWDR G4"))
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    certificate = (
        x509.CertificateBuilder().subject_name(_name(f"Pass Type ID: {PASS_TYPE_ID}")).issuer_name(root.subject)
        .public_key(pass_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    files = WalletFiles(
        folder, folder / "root.pem", folder / "pass_cert.pem", folder / "pass_key.pem", folder / "service_account.json",
        google_key.public_key(),
    )
    files.root.write_bytes(_pem(root))
    files.cert.write_bytes(_pem(certificate))
    files.key.write_bytes(key_pem(pass_key))
    files.service_account.write_text(json.dumps({
        "type": "service_account", "project_id": "qrcontact-test", "private_key_id": "k1",
        "private_key": key_pem(google_key).decode(), "client_email": CLIENT_EMAIL, "client_id": "1",
    }))
    (folder / "pass_key_encrypted.pem").write_bytes(key_pem(pass_key, "s3cret"))
    (folder / "other_key.pem").write_bytes(key_pem(root_key))
    return files


def wallet_settings(data_dir: Path, files: WalletFiles, **overrides) -> Settings:
    """Settings with both wallets configured from `files`."""
    return make_settings(
        data_dir, apple_pass_type_id=PASS_TYPE_ID, apple_team_id=TEAM_ID, apple_pass_cert=files.cert,
        apple_pass_key=files.key, apple_wwdr_cert=files.root, google_wallet_issuer_id=ISSUER_ID,
        google_wallet_service_account=files.service_account, **overrides,
    )


def unzip(pkpass: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(BytesIO(pkpass)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def openssl_verify(folder: Path, files: WalletFiles, signature: bytes, manifest: bytes) -> subprocess.CompletedProcess:
    """`openssl smime -verify` of the detached signature over the manifest, trusting only the test root."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "signature").write_bytes(signature)
    (folder / "manifest.json").write_bytes(manifest)
    return subprocess.run(  # noqa: S603 - a fixed program and our own files
        ["openssl", "smime", "-verify", "-binary", "-inform", "DER", "-in", str(folder / "signature"),
         "-content", str(folder / "manifest.json"), "-CAfile", str(files.root), "-purpose", "any", "-out", "/dev/null"],
        capture_output=True, text=True, timeout=30, check=False,
    )
