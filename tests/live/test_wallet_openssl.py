"""The Apple pass's signature as another implementation checks it (SPEC §10): `openssl
smime -verify` of the detached PKCS#7 over manifest.json, trusting only the throwaway
root that stands in for Apple's WWDR certificate; a manifest changed by one byte fails.
(Here, not in tests/unit, because it runs openssl.)"""

from __future__ import annotations

import json

from litestar.testing import TestClient

from app.main import create_app
from tests.support.app import create_card, register
from tests.support.wallet import openssl_verify, unzip, wallet_settings, write_wallet_files


def test_openssl_verifies_the_pass_signature_and_refuses_a_tampered_manifest(tmp_path):
    files = write_wallet_files(tmp_path / "keys")
    with TestClient(create_app(wallet_settings(tmp_path / "data", files)), base_url="https://qr.example.test") as client:
        user = register(client)
        card = create_card(client, user["headers"], title="Engineer", organization="Acme")
        response = client.get(f"/p/{card['slug']}.pkpass")
    assert response.status_code == 200
    pkpass = unzip(response.content)

    verified = openssl_verify(tmp_path / "good", files, pkpass["signature"], pkpass["manifest.json"])
    assert verified.returncode == 0, verified.stderr
    assert "Verification successful" in verified.stderr

    tampered = json.loads(pkpass["manifest.json"])
    tampered["pass.json"] = "0" * 40
    refused = openssl_verify(tmp_path / "bad", files, pkpass["signature"], json.dumps(tampered, indent=1, sort_keys=True).encode())
    assert refused.returncode != 0 and "Verification successful" not in refused.stderr
