"""Wallet passes (SPEC §10): the Apple .pkpass (its manifest, pass.json and PKCS#7 signature
with the WWDR certificate, checked against a throwaway certificate chain), the Google
Wallet save link's RS256 JWT, the page's links, 404 and no links when not configured, the
settings checked at start, and a scan of the pass's code counted as from the wallet.
(openssl's own check of the signature is in tests/live/test_wallet_openssl.py: no
subprocess in this tier.)"""

from __future__ import annotations

import hashlib
import io
import json
from urllib.parse import urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from litestar.testing import TestClient
from PIL import Image

from app.config import ConfigError, Settings
from app.public.pages import contrast
from app.wallet import apple
from tests.support import images
from tests.support.app import PHONE_UA, create_card, flush_counters, register
from tests.support.db import query
from tests.support.wallet import CLIENT_EMAIL, ISSUER_ID, PASS_TYPE_ID, TEAM_ID, unzip, wallet_settings, write_wallet_files

BASE = "https://qr.example.test"
CARD = {
    "fullName": "Ada Lovelace", "title": "Analyst", "organization": "Engines Ltd", "email": "ada@example.com",
    "phone": "+44 20 7946 0000", "accentColor": "#1e3a8a", "slug": "ada-wallet",
}


@pytest.fixture(scope="module")
def wallet_files(tmp_path_factory):
    return write_wallet_files(tmp_path_factory.mktemp("wallet-keys"))


@pytest.fixture
def wallet_client(tmp_path, wallet_files, app_of):
    with TestClient(app_of(wallet_settings(tmp_path, wallet_files)), base_url=BASE) as client:
        yield client


def card_with_images(client) -> tuple[dict, dict]:
    user = register(client)
    card = create_card(client, user["headers"], **CARD)
    for kind in ("photo", "logo"):
        response = client.put(f"/v1/cards/{card['cardId']}/{kind}", content=images.jpeg((400, 300)),
                              headers={**user["headers"], "Content-Type": "image/jpeg"})
        assert response.status_code == 200, response.text
    return user, card


def test_the_pass_is_a_signed_generic_pass_of_the_card(wallet_client, wallet_files):
    user, card = card_with_images(wallet_client)
    response = wallet_client.get(f"/p/{card['slug']}.pkpass")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apple.pkpass"
    assert f'filename="{card["slug"]}.pkpass"' in response.headers["content-disposition"]
    files = unzip(response.content)
    assert {"pass.json", "manifest.json", "signature", "icon.png", "icon@2x.png", "logo.png", "logo@2x.png",
            "thumbnail.png", "thumbnail@2x.png"} == set(files)

    # The manifest names every other file, with its SHA-1.
    manifest = json.loads(files["manifest.json"])
    assert set(manifest) == set(files) - {"manifest.json", "signature"}
    for name, digest in manifest.items():
        assert hashlib.sha1(files[name]).hexdigest() == digest, name

    # The images, at Wallet's sizes.
    sizes = {name: Image.open(io.BytesIO(body)).size for name, body in files.items() if name.endswith(".png")}
    assert sizes["icon.png"] == (29, 29) and sizes["icon@2x.png"] == (58, 58)
    assert sizes["thumbnail.png"] == (90, 90) and sizes["thumbnail@2x.png"] == (180, 180)
    assert sizes["logo.png"][0] <= 160 and sizes["logo.png"][1] <= 50 and sizes["logo@2x.png"][1] <= 100

    found = json.loads(files["pass.json"])
    assert (found["formatVersion"], found["passTypeIdentifier"], found["teamIdentifier"]) == (1, PASS_TYPE_ID, TEAM_ID)
    assert found["serialNumber"] == card["cardId"]
    assert found["organizationName"] == "Engines Ltd" and "Ada Lovelace" in found["description"]
    generic = found["generic"]
    assert generic["primaryFields"] == [{"key": "name", "label": "NAME", "value": "Ada Lovelace"}]
    assert generic["secondaryFields"][0]["value"] == "Analyst · Engines Ltd"
    assert {f["key"]: f["value"] for f in generic["auxiliaryFields"]} == {"phone": "+44 20 7946 0000", "email": "ada@example.com"}
    assert found["barcodes"] == [{
        "format": "PKBarcodeFormatQR", "message": f"{BASE}/c/ada-wallet?src=wallet", "messageEncoding": "iso-8859-1",
        "altText": f"{BASE}/c/ada-wallet",
    }]
    assert found["backgroundColor"] == "rgb(30, 58, 138)" and found["foregroundColor"] == "rgb(255, 255, 255)"

    # The signature: detached PKCS#7 carrying the pass certificate and the WWDR certificate.
    carried = pkcs7.load_der_pkcs7_certificates(files["signature"])
    pem = {c.public_bytes(serialization.Encoding.PEM) for c in carried}
    assert pem == {wallet_files.cert.read_bytes(), wallet_files.root.read_bytes()}
    assert files["manifest.json"] not in files["signature"]  # detached: the content is not in it


def test_the_pass_is_built_once_per_state_of_the_card(wallet_client):
    user = register(wallet_client)
    card = create_card(wallet_client, user["headers"], fullName="Grace Hopper")
    first = wallet_client.get(f"/p/{card['slug']}.pkpass").content
    assert wallet_client.get(f"/p/{card['slug']}.pkpass").content == first  # the kept answer (a new signature has a new time)
    edited = wallet_client.patch(f"/v1/cards/{card['cardId']}", json={"title": "Rear Admiral"}, headers=user["headers"])
    assert edited.status_code == 200
    found = json.loads(unzip(wallet_client.get(f"/p/{card['slug']}.pkpass").content)["pass.json"])
    assert found["generic"]["secondaryFields"][0]["value"] == "Rear Admiral"
    # Without a logo or photo: the icon only (initials), no logo or thumbnail.
    assert set(unzip(first)) == {"pass.json", "manifest.json", "signature", "icon.png", "icon@2x.png"}
    assert wallet_client.get("/p/no-such-card.pkpass").status_code == 404


@pytest.mark.parametrize("accent", ["#000000", "#ffffff", "#ffff00", "#777777", "#2563eb", "#e11d48", None])
def test_the_pass_colours_read_on_any_accent(accent):
    palette = apple.colours(accent)
    background = palette["backgroundColor"]
    assert contrast(palette["foregroundColor"], background) >= 4.5
    assert contrast(palette["labelColor"], background) >= 4.5


def test_the_google_link_carries_a_signed_generic_object(wallet_client, wallet_files):
    user, card = card_with_images(wallet_client)
    response = wallet_client.get(f"/p/{card['slug']}/google-wallet", follow_redirects=False)
    assert response.status_code == 302 and response.headers["cache-control"] == "no-store"
    location = response.headers["location"]
    assert location.startswith("https://pay.google.com/gp/v/save/")
    token = location.removeprefix("https://pay.google.com/gp/v/save/")
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": "k1"}
    claims = jwt.decode(token, wallet_files.google_public_key, algorithms=["RS256"], audience="google")
    assert (claims["iss"], claims["typ"], claims["origins"]) == (CLIENT_EMAIL, "savetowallet", [BASE])
    assert claims["payload"]["genericClasses"] == [{"id": f"{ISSUER_ID}.qrcontact"}]
    [found] = claims["payload"]["genericObjects"]
    assert found["id"] == f"{ISSUER_ID}.{card['cardId']}" and found["classId"] == f"{ISSUER_ID}.qrcontact"
    assert found["header"]["defaultValue"]["value"] == "Ada Lovelace"
    assert found["cardTitle"]["defaultValue"]["value"] == "Engines Ltd"
    assert found["subheader"]["defaultValue"]["value"] == "Analyst · Engines Ltd"
    assert {m["id"]: m["body"] for m in found["textModulesData"]} == {
        "title": "Analyst", "organization": "Engines Ltd", "phone": "+44 20 7946 0000", "email": "ada@example.com",
    }
    assert found["barcode"]["type"] == "QR_CODE" and found["barcode"]["value"] == f"{BASE}/c/ada-wallet?src=wallet"
    assert found["hexBackgroundColor"] == "#1e3a8a"
    assert found["logo"]["sourceUri"]["uri"].startswith(f"{BASE}/p/ada-wallet/logo-")
    # Signed by another key, it does not verify.
    with pytest.raises(jwt.InvalidSignatureError):
        other = serialization.load_pem_private_key((wallet_files.folder / "other_key.pem").read_bytes(), None)
        jwt.decode(token, other.public_key(), algorithms=["RS256"], audience="google")
    assert len(location) < 2400  # a save link has to fit in a URL


def test_the_page_offers_the_passes_when_configured(wallet_client):
    user = register(wallet_client)
    card = create_card(wallet_client, user["headers"])
    page = wallet_client.get(f"/p/{card['slug']}").text
    assert f'href="/p/{card["slug"]}.pkpass"' in page and "Add to Apple Wallet" in page
    assert f'href="/p/{card["slug"]}/google-wallet"' in page and "Save to Google Wallet" in page


def test_unconfigured_wallets_are_404_and_not_offered(client, user):
    card = create_card(client, user["headers"])
    assert client.get(f"/p/{card['slug']}.pkpass").status_code == 404
    assert client.get(f"/p/{card['slug']}/google-wallet", follow_redirects=False).status_code == 404
    page = client.get(f"/p/{card['slug']}").text
    assert "Wallet" not in page and ".pkpass" not in page and "google-wallet" not in page


def test_a_scan_of_the_pass_counts_as_from_the_wallet(wallet_client, tmp_path):
    user = register(wallet_client)
    card = create_card(wallet_client, user["headers"], slug="scan-from-wallet")
    found = json.loads(unzip(wallet_client.get("/p/scan-from-wallet.pkpass").content)["pass.json"])
    message = urlsplit(found["barcodes"][0]["message"])
    scanned = wallet_client.get(f"{message.path}?{message.query}", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    assert scanned.status_code == 302 and scanned.headers["location"] == "/p/scan-from-wallet?src=wallet"
    assert wallet_client.get(scanned.headers["location"], headers={"User-Agent": PHONE_UA}).status_code == 200
    flush_counters(wallet_client)
    settings = wallet_client.app.state.public.settings
    counted = query(settings, """SELECT kind, source, sum(hits) FROM scan_events JOIN cards ON cards.id = scan_events.card_id
        WHERE slug = ? GROUP BY 1, 2 ORDER BY 1, 2""", ("scan-from-wallet",))
    assert counted == [("scan", "wallet", 1), ("view", "wallet", 1)]
    stats = wallet_client.get(f"/v1/cards/{card['cardId']}/stats", headers=user["headers"]).json()
    assert {s["name"]: s["scans"] for s in stats["sources"]}["wallet"] == 1


# --- the settings ----------------------------------------------------------------------


def test_wallet_settings_from_the_environment(tmp_path, wallet_files):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), **wallet_files.env()})
    assert settings.apple_wallet and settings.google_wallet
    assert (settings.apple_pass_type_id, settings.apple_team_id, settings.google_wallet_issuer_id) == (PASS_TYPE_ID, TEAM_ID, ISSUER_ID)
    assert settings.apple_pass_cert == wallet_files.cert and settings.apple_pass_key_password is None
    plain = Settings.from_env({"DATA_DIR": str(tmp_path)})
    assert not plain.apple_wallet and not plain.google_wallet
    encrypted = Settings.from_env({
        "DATA_DIR": str(tmp_path), **wallet_files.env(),
        "APPLE_PASS_KEY": str(wallet_files.folder / "pass_key_encrypted.pem"), "APPLE_PASS_KEY_PASSWORD": "s3cret",
    })
    assert encrypted.apple_pass_key_password == "s3cret"


def bad_wallet_envs(files) -> list[tuple[str, dict[str, str | None]]]:
    """(the setting the error names, the changes to a good environment)."""
    folder = files.folder
    (folder / "not_pem.pem").write_text("not a certificate")
    (folder / "not_json.json").write_text("{")
    (folder / "no_key.json").write_text(json.dumps({"client_email": CLIENT_EMAIL}))
    return [
        ("APPLE_TEAM_ID", {"APPLE_TEAM_ID": None}),  # one missing: named
        ("APPLE_WWDR_CERT", {"APPLE_WWDR_CERT": None}),
        ("GOOGLE_WALLET_SERVICE_ACCOUNT", {"GOOGLE_WALLET_SERVICE_ACCOUNT": None}),
        ("APPLE_PASS_TYPE_ID", {"APPLE_PASS_TYPE_ID": "com.example"}),
        ("APPLE_TEAM_ID", {"APPLE_TEAM_ID": "short"}),
        ("GOOGLE_WALLET_ISSUER_ID", {"GOOGLE_WALLET_ISSUER_ID": "issuer"}),
        ("APPLE_PASS_CERT", {"APPLE_PASS_CERT": str(folder / "missing.pem")}),
        ("APPLE_PASS_CERT", {"APPLE_PASS_CERT": str(folder / "not_pem.pem")}),
        ("APPLE_WWDR_CERT", {"APPLE_WWDR_CERT": str(files.key)}),
        ("APPLE_PASS_KEY", {"APPLE_PASS_KEY": str(files.cert)}),
        ("APPLE_PASS_KEY", {"APPLE_PASS_KEY": str(folder / "other_key.pem")}),  # not the certificate's key
        ("APPLE_PASS_KEY_PASSWORD", {"APPLE_PASS_KEY": str(folder / "pass_key_encrypted.pem")}),
        ("APPLE_PASS_KEY", {"APPLE_PASS_KEY": str(folder / "pass_key_encrypted.pem"), "APPLE_PASS_KEY_PASSWORD": "wrong"}),
        ("APPLE_PASS_KEY_PASSWORD", {"APPLE_PASS_KEY_PASSWORD": "not needed"}),
        ("GOOGLE_WALLET_SERVICE_ACCOUNT", {"GOOGLE_WALLET_SERVICE_ACCOUNT": str(folder / "not_json.json")}),
        ("GOOGLE_WALLET_SERVICE_ACCOUNT", {"GOOGLE_WALLET_SERVICE_ACCOUNT": str(folder / "no_key.json")}),
    ]


def test_bad_wallet_settings_stop_the_start_naming_the_setting(tmp_path, wallet_files):
    for name, changes in bad_wallet_envs(wallet_files):
        env = {"DATA_DIR": str(tmp_path), **wallet_files.env(), **changes}
        env = {key: value for key, value in env.items() if value is not None}
        with pytest.raises(ConfigError, match=name):
            Settings.from_env(env)


def test_the_fast_path_leaves_the_pass_to_litestar_and_head_answers_it(wallet_client):
    user = register(wallet_client)
    card = create_card(wallet_client, user["headers"], slug="fast-wallet")
    wallet_client.blocking_portal.call(wallet_client.app.state.public_cards.get, "fast-wallet")  # cached: the fast path may answer
    fast_path = wallet_client.app.state.fast_path
    assert fast_path.answer(b"GET", b"/p/fast-wallet.pkpass", [], ("127.0.0.1", 5000), []) is None
    assert fast_path.answer(b"GET", b"/p/fast-wallet", [], ("127.0.0.1", 5000), []) is not None
    head = wallet_client.head(f"/p/{card['slug']}.pkpass")
    assert head.status_code == 200 and head.headers["content-type"] == "application/vnd.apple.pkpass" and not head.content
