"""The web console in process: sessions, CSRF and the Origin check on every form, the
error pages, and the login, register and cards pages over a real database."""

from __future__ import annotations

import dataclasses
import io
import re
import xml.etree.ElementTree as ET
from typing import get_args

import pytest
import resvg_py
import zxingcpp
from litestar.testing import TestClient
from PIL import Image

from app import qr
from app.fields import Email, Label, Name, Password, Phone, QrSize, Slug, Website, limits_of
from tests.support.app import PASSWORD, assert_problem, create_card, register, unique_email
from tests.support.console import ORIGIN, csrf_of, errors_of, log_in, post_form
from tests.support.db import execute, query


@pytest.fixture
def console(client, user) -> tuple[TestClient, dict, str]:
    """A client logged in to the console as `user`, with its CSRF token."""
    return client, user, log_in(client, user["user"]["email"])


# --- the door ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, location",
    [
        ("/", "/app"),
        ("/app", "/app/cards"),
        ("/app/cards", "/app/login"),
        ("/app/cards/new", "/app/login?next=/app/cards/new"),
        ("/app/cards/abc/edit?x=1", "/app/login?next=/app/cards/abc/edit%3Fx%3D1"),
    ],
)
def test_visitors_are_sent_to_the_console_and_then_to_the_login(client, path, location):
    response = client.get(path, follow_redirects=False)
    assert response.status_code in (302, 303)
    assert response.headers["location"] == location


@pytest.mark.parametrize(
    "next, lands_on",
    [
        ("/app/cards/new", "/app/cards/new"),
        ("https://evil.example/app", "/app/cards"),
        ("//evil.example/app/cards", "/app/cards"),
        ("/\\evil.example", "/app/cards"),
        ("/v1/me", "/app/cards"),
        ("javascript:alert(1)", "/app/cards"),
    ],
)
def test_login_goes_back_only_to_a_console_page(client, user, next, lands_on):
    token = csrf_of(client.get(f"/app/login?next={next}").text)
    response = post_form(client, "/app/login", token, email=user["user"]["email"], password=PASSWORD, next=next)
    assert response.status_code == 303
    assert response.headers["location"] == lands_on


def test_login_sets_a_strict_session_cookie_and_logout_deletes_the_session(console):
    client, user, token = console
    cookie = next(c for c in client.cookies.jar if c.name == "qrc_session")
    assert cookie.path == "/app" and cookie.secure and cookie.has_nonstandard_attr("HttpOnly")
    assert query(client.app.state.settings, "SELECT count(*) FROM web_sessions") == [(1,)]
    response = post_form(client, "/app/logout", token)
    assert response.status_code == 303 and response.headers["location"] == "/app/login"
    assert query(client.app.state.settings, "SELECT count(*) FROM web_sessions") == [(0,)]
    assert "You are logged out." in client.get("/app/login").text
    assert client.get("/app/cards", follow_redirects=False).status_code == 303


def test_a_wrong_password_is_shown_on_the_form_with_the_email_kept(client, user):
    token = csrf_of(client.get("/app/login").text)
    response = post_form(client, "/app/login", token, email=user["user"]["email"], password="wrong password!")
    assert response.status_code == 401
    assert "Wrong email or password." in response.text
    assert f'value="{user["user"]["email"]}"' in response.text
    response = post_form(client, "/app/login", token, email="not an email", password="")
    assert response.status_code == 422
    assert set(errors_of(response.text)) == {"email", "password"}
    assert 'aria-describedby="email-error"' in response.text and 'aria-invalid="true"' in response.text


def test_the_login_throttle_is_the_apis(client, user):
    client.app.state.login_throttle.clock = lambda: 1_000_000.0  # no time passes: the delay cannot run out
    token = csrf_of(client.get("/app/login").text)
    for _ in range(5):
        assert post_form(client, "/app/login", token, email=user["user"]["email"], password="wrong password!").status_code == 401
    response = post_form(client, "/app/login", token, email=user["user"]["email"], password=PASSWORD)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert "Too many failed attempts" in response.text
    # The API answers the same account with the same throttle.
    api = client.post("/v1/auth/login", json={"email": user["user"]["email"], "password": PASSWORD})
    assert api.status_code == 429


def test_a_deactivated_account_has_no_session_and_cannot_log_in(console):
    client, user, _ = console
    execute(client.app.state.settings, "UPDATE users SET deactivated_at = '2026-01-01T00:00:00.000000Z'")
    assert client.get("/app/cards", follow_redirects=False).headers["location"] == "/app/login"
    token = csrf_of(client.get("/app/login").text)
    response = post_form(client, "/app/login", token, email=user["user"]["email"], password=PASSWORD)
    # The same answer as a wrong password, at both doors (accounts.sessions.authenticate).
    assert response.status_code == 401 and "Wrong email or password" in response.text
    assert query(client.app.state.settings, "SELECT count(*) FROM web_sessions") == [(1,)]  # only the first login's


def test_register_logs_in_and_queues_the_verification_email(client):
    page = client.get("/app/register?invite=" + "t" * 20)
    assert "At least 12 characters" in page.text  # the rule, before anything is sent
    assert 'name="invite" value="' + "t" * 20 in page.text
    token, email = csrf_of(page.text), unique_email()
    response = post_form(client, "/app/register", token, email=email, password="short", marketingConsent="yes")
    assert response.status_code == 422
    assert errors_of(response.text) == {"password": "Use at least 12 characters"}
    assert f'value="{email}"' in response.text and "checked" in response.text
    response = post_form(client, "/app/register", token, email=email, password=PASSWORD, marketingConsent="yes")
    assert response.status_code == 303 and response.headers["location"] == "/app/cards"
    assert "open its link to confirm your address" in client.get("/app/cards").text
    settings = client.app.state.settings
    assert query(settings, "SELECT marketing_consent FROM users WHERE email = ?", (email,)) == [(1,)]
    assert query(settings, "SELECT kind FROM email_outbox WHERE recipient = ?", (email,)) == [("verification",)]
    again = post_form(client, "/app/register", token, email=email, password=PASSWORD)
    assert again.status_code == 409 and "already exists" in errors_of(again.text)["email"]


def test_registration_closed_is_said_on_the_page_and_refused(tmp_path, settings, app_of):
    closed = dataclasses.replace(settings, registration="closed")
    with TestClient(app_of(closed), base_url=ORIGIN) as client:
        # A new service: the first account, the admin, may always register, and the pages say so.
        assert "Create the first account</a>: it becomes the admin" in client.get("/app/login").text
        first = client.get("/app/register").text
        assert "This is the first account on this service" in first and "Registration is closed" not in first
        register(client)
        login = client.get("/app/login").text
        assert "Create an account" not in login and "Forgot password?" in login
        page = client.get("/app/register")
        assert "Registration is closed" in page.text
        response = post_form(client, "/app/register", csrf_of(page.text), email=unique_email(), password=PASSWORD)
        assert response.status_code == 403 and "Registration is closed on this service." in response.text


# --- CSRF and the Origin check on every form --------------------------------------------

FORMS = [
    ("/app/login", {"email": "a@example.com", "password": PASSWORD}),
    ("/app/logout", {}),
    ("/app/register", {"email": "b@example.com", "password": PASSWORD}),
    ("/app/cards/new", {"fullName": "Jane", "email": "jane@example.com", "qrErrorCorrection": "M", "qrSize": "512"}),
    ("/app/cards/{card_id}/edit", {"fullName": "Jane", "email": "jane@example.com", "qrErrorCorrection": "M", "qrSize": "512"}),
    ("/app/cards/{card_id}/delete", {}),
    ("/app/cards/{card_id}/share", {"email": "ann@example.com", "whatsapp": "+44 20 7946 0958", "linkedin": "yes"}),
    ("/app/account/keys", {"name": "forged"}),
    ("/app/account/keys/{key_id}/revoke", {}),
]


@pytest.mark.parametrize("path, fields", FORMS)
@pytest.mark.parametrize(
    "token, headers",
    [
        ("missing", {}),
        ("wrong", {}),
        ("right", {"Origin": "https://evil.example"}),
        ("right", {"Origin": "null"}),
        ("right", {"Sec-Fetch-Site": "cross-site"}),
        ("right", {"Sec-Fetch-Site": "same-site"}),
    ],
)
def test_every_form_refuses_a_post_without_the_token_or_from_another_origin(forms_console, path, fields, token, headers):
    client, ids, csrf = forms_console
    data = {**fields, **({"_csrf_token": csrf} if token == "right" else {"_csrf_token": csrf[:-4] + "0000"} if token == "wrong" else {})}
    response = client.post(path.format(**ids), data=data, headers=headers, follow_redirects=False)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "Not allowed" in response.text
    # Nothing happened: the session, the card and the accounts are as they were.
    settings = client.app.state.settings
    assert query(settings, "SELECT count(*) FROM web_sessions") == [(1,)]
    assert query(settings, "SELECT full_name FROM cards") == [("Jane Doe",)]
    assert query(settings, "SELECT count(*) FROM users") == [(1,)]
    assert query(settings, "SELECT count(*) FROM invitations") == [(0,)]
    assert query(settings, "SELECT name FROM api_keys") == [("kept",)]


def test_a_same_origin_post_with_the_token_is_accepted(console):
    client, user, csrf = console
    headers = {"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}
    data = {"_csrf_token": csrf, "fullName": "Jo", "email": "jo@example.com", "qrErrorCorrection": "M", "qrSize": "512"}
    response = client.post("/app/cards/new", data=data, headers=headers, follow_redirects=False)
    assert response.status_code == 303


# --- pages, headers and errors ---------------------------------------------------------


def test_console_pages_send_a_strict_csp_and_static_files_are_cached_for_good(console):
    client, _, _ = console
    page = client.get("/app/cards")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and page.headers["cache-control"] == "no-store"
    assert "<style" not in page.text and not re.search(r"<script(?![^>]*\bsrc=)", page.text)  # nothing inline
    assets = re.findall(r'(?:href|src)="(/app/static/[^"]+)"', page.text)
    assert {a.rsplit(".", 1)[1] for a in assets} == {"svg", "css", "js"}
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert "set-cookie" not in response.headers
    assert client.get("/app/static/console.0000000000.css").status_code == 404


def test_console_errors_are_pages_and_api_errors_stay_problem_documents(console):
    client, user, _ = console
    other = register(client)
    card = create_card(client, other["headers"])
    for path in ("/app/nothing", f"/app/cards/{card['cardId']}", f"/app/cards/{card['cardId']}/edit", "/app/cards/x/qr"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "Go to your cards" in response.text
    assert client.get("/app/cards?page=0").status_code == 400
    api = client.get(f"/v1/cards/{card['cardId']}", headers=user["headers"])
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/problem+json")


# --- cards ---------------------------------------------------------------------------


def test_the_empty_list_says_what_to_do_first(console):
    client, _, _ = console
    page = client.get("/app/cards").text
    assert "Create your first card" in page and 'href="/app/cards/new"' in page
    assert 'aria-current="page">Cards' in page
    assert "Team</a>" in page  # the first account is the admin


def test_create_card_keeps_values_next_to_errors_then_creates_it(console):
    client, _, csrf = console
    page = client.get("/app/cards/new").text
    assert "cannot be changed later" in page and 'id="preview"' in page
    bad = post_form(client, "/app/cards/new", csrf, fullName="Jane <Doe>", email="jane@", phone="call me", website="example.com",
                    slug="Jane Doe", qrErrorCorrection="M", qrSize="99999")
    assert bad.status_code == 422
    assert set(errors_of(bad.text)) == {"email", "phone", "website", "slug", "qrSize"}
    assert 'value="Jane &lt;Doe&gt;"' in bad.text and 'value="call me"' in bad.text
    assert "Jane &lt;Doe&gt;</p>" in bad.text  # the preview, drawn by the server from what was typed
    assert '<a href="#email">Email:' in bad.text  # the summary links to the field
    good = post_form(client, "/app/cards/new", csrf, fullName="Jane Doe", email="jane@example.com", organization="Acme",
                     title="CTO", phone="+1 555 010 2030", website="https://acme.example", slug="jane-doe",
                     qrErrorCorrection="H", qrSize="600")
    assert good.status_code == 303
    card_page = client.get(good.headers["location"])
    assert "Card created." in card_page.text and "https://qr.example.test/c/jane-doe" in card_page.text
    assert "Card created." not in client.get(good.headers["location"]).text  # shown once
    rows = query(client.app.state.settings, "SELECT slug, title, qr_error_correction, qr_size FROM cards")
    assert rows == [("jane-doe", "CTO", "H", 600)]
    other = {"fullName": "J", "email": "j@example.com", "qrErrorCorrection": "M", "qrSize": "512"}
    taken = post_form(client, "/app/cards/new", csrf, slug="jane-doe", **other)
    assert taken.status_code == 422 and "Taken" in errors_of(taken.text)["slug"]
    reserved = post_form(client, "/app/cards/new", csrf, slug="admin", **other)
    assert reserved.status_code == 422 and "Reserved" in errors_of(reserved.text)["slug"]


def test_the_forms_state_the_limits_of_the_apis_types(console):
    """minlength, maxlength and the PNG sizes and levels come from app/fields.py and
    app/qr.py, the types the API checks, not from numbers written again in the console."""
    client, _, _ = console
    form = client.get("/app/cards/new").text
    for name, kind in [("fullName", Name), ("email", Email), ("phone", Phone), ("website", Website), ("slug", Slug)]:
        assert re.search(rf'name="{name}"[^>]*maxlength="{limits_of(kind).max_length}"', form), name
    levels = form.split('name="qrErrorCorrection"')[1].split("</select>")[0]
    assert re.findall(r'<option value="(\w)"', levels) == list(get_args(qr.Ecc))
    assert f"pixels from {limits_of(QrSize).ge} to {limits_of(QrSize).le}" in client.post(
        "/app/cards/new", data={"_csrf_token": csrf_of(form), "fullName": "A", "email": "a@example.com", "qrSize": "1e3"}).text
    password = limits_of(Password)
    account = client.get("/app/account").text
    for bound in (f'maxlength="{password.max_length}"', f'minlength="{password.min_length}"'):
        assert re.search(rf'name="newPassword"[^>]*{bound}', account), bound
    assert f"At least {password.min_length} characters" in account
    assert re.search(rf'name="name"[^>]*maxlength="{limits_of(Label).max_length}"', client.get("/app/account/keys").text)


@pytest.mark.parametrize("typed", ["1e3", "512.0", "\u0665\u0661\u0662"])
def test_a_png_size_not_typed_in_digits_is_a_form_error(console, typed):
    # A number field lets "1e3" and "512.0" through (Chromium does); Arabic-Indic digits are digits to int().
    client, user, csrf = console
    card = create_card(client, user["headers"])
    fields = {"fullName": "Jane Doe", "email": "jane@example.com", "qrErrorCorrection": "M", "qrSize": typed}
    for path in ("/app/cards/new", f"/app/cards/{card['cardId']}/edit"):
        response = post_form(client, path, csrf, **fields)
        assert response.status_code == 422, response.text
        assert errors_of(response.text) == {"qrSize": "Enter a whole number of pixels from 128 to 2048"}
        assert f'value="{typed}"' in response.text
    assert query(client.app.state.settings, "SELECT count(*), max(qr_size) FROM cards") == [(1, 512)]


BIDI_CONTROLS = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069", "\u200e",
                 "\u200f", "\u061c"]


@pytest.mark.parametrize("control", BIDI_CONTROLS, ids=lambda control: f"U+{ord(control):04X}")
def test_bidi_controls_in_a_name_are_refused_by_both_doors(console, control):
    # After a U+202E, "Jane exe.doc" would show as "Jane cod.exe".
    client, user, csrf = console
    name = f"Jane {control}exe.doc"
    problem = assert_problem(client.post("/v1/cards", json={"fullName": name, "email": "jane@example.com"}, headers=user["headers"]), 422)
    assert [error["field"] for error in problem["errors"]] == ["fullName"]
    form = {"fullName": name, "email": "jane@example.com", "title": f"CEO{control}", "qrErrorCorrection": "M", "qrSize": "512"}
    response = post_form(client, "/app/cards/new", csrf, **form)
    assert response.status_code == 422
    assert errors_of(response.text) == {"fullName": "Has characters that are not allowed", "title": "Has characters that are not allowed"}
    assert query(client.app.state.settings, "SELECT count(*) FROM cards") == [(0,)]


def test_edit_changes_the_fields_but_never_the_slug(console):
    client, user, csrf = console
    card = create_card(client, user["headers"], slug="jane-doe", phone="+1 555 000 0000")
    page = client.get(f"/app/cards/{card['cardId']}/edit").text
    assert 'value="+1 555 000 0000"' in page and re.search(r'name="slug" type="text" value="jane-doe"\s*readonly', page)
    response = post_form(client, f"/app/cards/{card['cardId']}/edit", csrf, fullName="Jane Q. Doe", email="jane@example.com",
                         phone="", slug="new-slug", qrErrorCorrection="Q", qrSize="512")
    assert response.status_code == 303
    assert "Changes saved." in client.get(response.headers["location"]).text
    rows = query(client.app.state.settings, "SELECT slug, full_name, phone, qr_error_correction FROM cards")
    assert rows == [("jane-doe", "Jane Q. Doe", None, "Q")]
    # The public page shows the change at once (the operation forgot the cached card).
    assert "Jane Q. Doe" in client.get("/p/jane-doe").text


def test_delete_confirms_what_breaks_then_retires_the_slug(console):
    client, user, csrf = console
    card = create_card(client, user["headers"], slug="gone-soon")
    page = client.get(f"/app/cards/{card['cardId']}/delete").text
    assert "Printed codes for this card will stop working" in page
    response = post_form(client, f"/app/cards/{card['cardId']}/delete", csrf)
    assert response.status_code == 303 and response.headers["location"] == "/app/cards"
    assert "Card deleted." in client.get("/app/cards").text
    assert client.get("/c/gone-soon", follow_redirects=False).status_code == 410


def test_list_searches_and_pages(console):
    client, user, _ = console
    for n in range(26):
        create_card(client, user["headers"], fullName=f"Person {n:02d}", organization="Acme" if n % 2 else "Globex",
                    email=f"p{n}@example.com")
    first = client.get("/app/cards").text
    assert "Page 1 of 2" in first and "Person 25" in first and "Person 01" not in first
    second = client.get("/app/cards?page=2").text
    assert "Person 01" in second and "Person 00" in second and "Person 25" not in second
    found = client.get("/app/cards?q=globex").text
    assert "13 cards match" in found and "Person 02" in found and "Person 03" not in found
    assert "Person 07" in client.get("/app/cards?q=p7@example").text
    assert "No card matches" in client.get("/app/cards?q=100%25").text  # % is a character, not a wildcard
    assert "0 scans this week" in first


def test_downloads_decode_to_the_short_url_or_the_vcard(console):
    client, user, _ = console
    card = create_card(client, user["headers"], slug="jane-doe")
    base = f"/app/cards/{card['cardId']}/qr"
    png = client.get(base, params={"format": "png", "size": "300", "ecc": "H", "mode": "dynamic", "dark": "#112233",
                                   "light": "#ffffff", "border": "4"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"] == 'attachment; filename="jane-doe-dynamic.png"'
    image = Image.open(io.BytesIO(png.content))
    assert image.size == (300, 300)
    assert [r.text for r in zxingcpp.read_barcodes(image.convert("L"))] == ["https://qr.example.test/c/jane-doe"]
    svg = client.get(base, params={"format": "svg", "size": "600", "mode": "static"})
    assert svg.headers["content-type"].startswith("image/svg+xml") and ET.fromstring(svg.content).tag.endswith("svg")
    raster = resvg_py.svg_to_bytes(svg_string=svg.text, background="#ffffff", skip_system_fonts=True, shape_rendering="crisp_edges")
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(bytes(raster))).convert("L"))
    assert len(decoded) == 1 and "FN:Jane Doe" in decoded[0].text and decoded[0].text.startswith("BEGIN:VCARD")
    for params, field in [({"size": "5000"}, "size"), ({"border": "-1"}, "border"), ({"dark": "#eeeeee"}, "dark"),
                          ({"format": "gif"}, "form")]:
        response = client.get(base, params=params)
        assert response.status_code == 422, params
        assert field in errors_of(response.text) or "Choose one of the options" in response.text


def test_the_verification_page_links_to_the_console(client):
    page = client.get("/verify-email?token=" + "a" * 43)
    assert page.status_code == 200 and 'href="/app/cards"' in page.text
