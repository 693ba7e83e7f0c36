"""Hostile input, one parametrized table per surface.

Every case must get a clear 4xx answer (a problem document on the API, an HTML page on
the public pages, which people see) and leave the database exactly as it was: each
case compares a dump of every table before and after.

The sharing surfaces (CRLF in email recipients and messages, invitation IDOR, CSV
formula injection) join these tables when that module lands.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import pytest
from litestar.testing import TestClient

from app.cards.cards import RESERVED_SLUGS
from app.main import create_app
from app.sqlite import sqlite3
from tests.support.app import PASSWORD, assert_problem, make_settings, register
from tests.support.db import query
from tests.support.waiting import wait_until

# --- a shared world: accounts and cards that the cases attack --------------------------


@dataclass
class World:
    client: TestClient
    database: Path
    secret: str
    alice: dict
    bob: dict
    alice_card: dict
    bob_card: dict
    alice_key: dict
    extra: dict = field(default_factory=dict)

    def snapshot(self) -> dict[str, list[str]]:
        """Every row of every table, to show that a refused request stored nothing."""
        conn = sqlite3.connect(self.database)
        try:
            tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
            return {table: sorted(repr(row) for row in conn.execute(f"SELECT * FROM {table}")) for table in tables}
        finally:
            conn.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    settings = make_settings(tmp_path_factory.mktemp("hostile"))
    with TestClient(create_app(settings), base_url="https://qr.example.test") as client:
        alice, bob = register(client, "alice@example.com"), register(client, "bob@example.com")
        cards = []
        for who, slug in ((alice, "alice-card"), (bob, "bob-card")):
            response = client.post("/v1/cards", json={"fullName": "Card", "email": "c@example.com", "slug": slug}, headers=who["headers"])
            cards.append(response.json())
        key = client.post("/v1/api-keys", json={"name": "alice's key"}, headers=alice["headers"]).json()
        # Use the key once now: its first use records last_used_at, a write of its own.
        assert client.get("/v1/me", headers={"X-API-Key": key["key"]}).status_code == 200
        # The two verification emails are delivered in the background, each a write of its
        # own: the snapshots that show a refused request stored nothing start after them.
        wait_until(
            lambda: not query(settings, "SELECT id FROM email_outbox WHERE status = 'pending'"), what="the verification emails"
        )
        yield World(client, settings.database_path, settings.jwt_secret, alice, bob, cards[0], cards[1], key)


def refused(world: World, status: int, send: Callable[[], object], problem: bool = True):
    """Send a request that must be refused with `status` and must store nothing."""
    before = world.snapshot()
    response = send()
    if problem:
        assert_problem(response, status)
    else:
        assert response.status_code == status, response.text
    assert world.snapshot() == before, "a refused request changed the database"
    return response


# --- forged and misused credentials ----------------------------------------------------


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(subject: str, **changes) -> dict:
    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + 600, "jti": "j1", **changes}
    return {k: v for k, v in claims.items() if v is not None}


def _signed(w: World, subject: str, key: str | None = None, algorithm: str = "HS256", **changes) -> str:
    return jwt.encode(_claims(subject, **changes), key or w.secret, algorithm=algorithm)


def _tampered_payload(w: World, sub: str) -> str:
    header, _, signature = _signed(w, sub).split(".")
    return f"{header}.{_b64(_claims(w.bob['user']['userId']))}.{signature}"


ACCESS_TOKENS: dict[str, Callable[[World, str], str]] = {
    "alg-none": lambda w, sub: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims(sub))}.",
    "alg-None-no-dot": lambda w, sub: f"{_b64({'alg': 'None', 'typ': 'JWT'})}.{_b64(_claims(sub))}",
    "tampered-payload": _tampered_payload,
    "tampered-signature": lambda w, sub: _signed(w, sub)[:-4] + "AAAA",
    "wrong-key": lambda w, sub: _signed(w, sub, key="another-secret-" + "y" * 40),
    "hs512-same-key": lambda w, sub: _signed(w, sub, key=w.secret * 2, algorithm="HS512"),
    "expired": lambda w, sub: _signed(w, sub, exp=int(time.time()) - 10),
    "missing-exp": lambda w, sub: _signed(w, sub, exp=None),
    "missing-iat": lambda w, sub: _signed(w, sub, iat=None),
    "missing-jti": lambda w, sub: _signed(w, sub, jti=None),
    "missing-sub": lambda w, sub: _signed(w, sub, sub=None),
    "exp-as-text": lambda w, sub: _signed(w, sub, exp="tomorrow"),
    "not-yet-valid": lambda w, sub: _signed(w, sub, nbf=int(time.time()) + 3600),
    "unknown-subject": lambda w, sub: _signed(w, "no-such-user"),
    "refresh-token-as-access": lambda w, sub: w.alice["refreshToken"],
    "api-key-as-bearer": lambda w, sub: w.alice_key["key"],
    "garbage": lambda w, sub: "not.a.jwt",
    "empty": lambda w, sub: "",
}


@pytest.mark.parametrize("name", ACCESS_TOKENS)
def test_forged_access_tokens(world, name):
    token = ACCESS_TOKENS[name](world, world.alice["user"]["userId"])
    headers = {"Authorization": f"Bearer {token}"}
    refused(world, 401, lambda: world.client.get("/v1/me", headers=headers))
    body = {"fullName": "Forged", "email": "f@example.com"}
    refused(world, 401, lambda: world.client.post("/v1/cards", json=body, headers=headers))


def _fresh_session(w: World) -> dict:
    response = w.client.post("/v1/auth/login", json={"email": "alice@example.com", "password": PASSWORD})
    assert response.status_code == 200
    return response.json()


def _used(w: World) -> str:
    session = _fresh_session(w)
    assert w.client.post("/v1/auth/refresh", json={"refreshToken": session["refreshToken"]}).status_code == 200
    return session["refreshToken"]


def _logged_out(w: World) -> str:
    session = _fresh_session(w)
    assert w.client.post("/v1/auth/logout", json={"refreshToken": session["refreshToken"]}).status_code == 204
    return session["refreshToken"]


def _expired(w: World) -> str:
    session = _fresh_session(w)
    conn = sqlite3.connect(w.database)
    with conn:
        conn.execute(
            "UPDATE refresh_tokens SET expires_at = '2000-01-01T00:00:00+00:00'"
            " WHERE user_id = ? AND used_at IS NULL AND revoked_at IS NULL",
            (w.alice["user"]["userId"],),
        )
    conn.close()
    return session["refreshToken"]


REFRESH_TOKENS: dict[str, Callable[[World], str]] = {
    "access-token-as-refresh": lambda w: w.alice["accessToken"],
    "api-key-as-refresh": lambda w: w.alice_key["key"],
    "made-up": lambda w: "x" * 43,
    "empty": lambda w: "",
    "replayed": _used,
    "logged-out": _logged_out,
    "expired": _expired,
}


@pytest.mark.parametrize("name", REFRESH_TOKENS)
def test_misused_refresh_tokens(world, name):
    token = REFRESH_TOKENS[name](world)
    conn = sqlite3.connect(world.database)
    rows = lambda: conn.execute("SELECT count(*), count(revoked_at) FROM refresh_tokens").fetchone()  # noqa: E731
    before = rows()
    response = world.client.post("/v1/auth/refresh", json={"refreshToken": token})
    assert_problem(response, 401)
    total, revoked = rows()
    assert total == before[0], "a refused refresh issued a token"
    if name == "replayed":
        # The replay's one write: its whole session is revoked, the successor included.
        assert revoked > before[1]
    else:
        assert revoked == before[1]
    conn.close()


API_KEYS = {
    "made-up": "qrc_" + "A" * 43,
    "prefix-only": "qrc_",
    "empty": "",
    "key-with-space": "qrc_ abc",
    "very-long": "qrc_" + "a" * 6000,
    "access-token-as-key": None,  # filled in from the world
}


@pytest.mark.parametrize("name", API_KEYS)
def test_bad_api_keys(world, name):
    key = API_KEYS[name] if API_KEYS[name] is not None else world.alice["accessToken"]
    refused(world, 401, lambda: world.client.get("/v1/me", headers={"X-API-Key": key}))


def test_a_revoked_api_key_is_refused(world):
    created = world.client.post("/v1/api-keys", json={"name": "short-lived"}, headers=world.alice["headers"]).json()
    assert world.client.delete(f"/v1/api-keys/{created['keyId']}", headers=world.alice["headers"]).status_code == 204
    refused(world, 401, lambda: world.client.get("/v1/cards", headers={"X-API-Key": created["key"]}))


# --- request bodies: malformed, oversized, wrongly typed ------------------------------

# Every endpoint that reads a body, with a valid body for it.
BODY_ENDPOINTS = {
    "register": ("POST", "/v1/auth/register", False, {"email": "new@example.com", "password": PASSWORD, "marketingConsent": False}),
    "login": ("POST", "/v1/auth/login", False, {"email": "alice@example.com", "password": PASSWORD}),
    "refresh": ("POST", "/v1/auth/refresh", False, {"refreshToken": "x"}),
    "logout": ("POST", "/v1/auth/logout", False, {"refreshToken": "x"}),
    "update-me": ("PATCH", "/v1/me", True, {"marketingConsent": True}),
    "create-api-key": ("POST", "/v1/api-keys", True, {"name": "k"}),
    "create-card": ("POST", "/v1/cards", True, {"fullName": "A", "email": "a@example.com"}),
    "update-card": ("PATCH", "/v1/cards/{card}", True, {"title": "T"}),
}
JSON = "application/json"
BIG = b'{"x": "' + b"a" * (64 * 1024) + b'"}'
BAD_BODIES = {
    # name: (bytes or a callable making them, content type, status)
    "not-json": (b"{not json", JSON, 400),
    "truncated": (b'{"email": "a@exa', JSON, 400),
    "trailing-garbage": (b'{"title": "T"} {"title": "U"}', JSON, 400),
    "invalid-utf8": (b'{"title": "\xff\xfe"}', JSON, 400),
    "lone-surrogate": (b'{"title": "\\ud800"}', JSON, 400),
    "nested-too-deep": (b"[" * 20000 + b"]" * 20000, JSON, 400),
    "array": (b"[]", JSON, 422),
    "null": (b"null", JSON, 422),
    "string": (b'"hello"', JSON, 422),
    "number": (b"12", JSON, 422),
    "empty": (b"", JSON, 422),
    "unknown-field": (b'{"isAdmin": true}', JSON, 422),
    "oversized": (BIG, JSON, 413),
    "oversized-chunked": (lambda: iter([BIG[:1000], BIG[1000:]]), JSON, 413),
    "as-text-plain": ("valid", "text/plain", 415),
    "as-form": ("valid", "application/x-www-form-urlencoded", 415),
    "as-multipart": ("valid", "multipart/form-data; boundary=x", 415),
    "as-xml": ("valid", "application/xml", 415),
    "without-content-type": ("valid", None, 415),
}


@pytest.mark.parametrize("body_name", BAD_BODIES)
@pytest.mark.parametrize("endpoint", BODY_ENDPOINTS)
def test_bad_bodies(world, endpoint, body_name):
    method, path, authenticated, valid = BODY_ENDPOINTS[endpoint]
    content, content_type, status = BAD_BODIES[body_name]
    if content == "valid":
        content = json.dumps(valid).encode()
    elif callable(content):
        content = content()
    headers = dict(world.alice["headers"]) if authenticated else {}
    if content_type:
        headers["Content-Type"] = content_type
    url = path.format(card=world.alice_card["cardId"])
    # httpx adds its own Content-Type to nothing; build the request by hand to send none.
    request = world.client.build_request(method, url, content=content, headers=headers)
    if content_type is None:
        request.headers.pop("Content-Type", None)
    refused(world, status, lambda: world.client.send(request))


# --- text fields -------------------------------------------------------------------------

HOSTILE_TEXT = {
    "nul": "a\x00b",
    "bell": "a\x07b",
    "escape": "a\x1b[31mb",
    "line-feed": "a\nb",
    "carriage-return": "a\rb",
    "crlf-header": "a\r\nBcc: victim@example.com",
    "tab": "a\tb",
    "del": "a\x7fb",
    "c1-next-line": "a\x85b",
    "line-separator": "a\u2028b",
    "paragraph-separator": "a\u2029b",
    "right-to-left-override": "a\u202eb",
    "over-long": "a" * 5000,
}
# Every text field a client can send: (endpoint, field, a valid body to put it in).
TEXT_FIELDS = {
    "register.email": ("POST", "/v1/auth/register", "email", {"email": "n@example.com", "password": PASSWORD, "marketingConsent": False}),
    "login.email": ("POST", "/v1/auth/login", "email", {"email": "alice@example.com", "password": PASSWORD}),
    "api-key.name": ("POST", "/v1/api-keys", "name", {"name": "k"}),
    **{
        f"create-card.{name}": ("POST", "/v1/cards", name, {"fullName": "A", "email": "a@example.com"})
        for name in ("fullName", "organization", "title", "email", "phone", "website", "slug")
    },
    **{
        f"update-card.{name}": ("PATCH", "/v1/cards/{card}", name, {})
        for name in ("fullName", "organization", "title", "email", "phone", "website", "slug")
    },
}


@pytest.mark.parametrize("value_name", HOSTILE_TEXT)
@pytest.mark.parametrize("field_name", TEXT_FIELDS)
def test_hostile_text(world, field_name, value_name):
    method, path, name, valid = TEXT_FIELDS[field_name]
    value = HOSTILE_TEXT[value_name]
    # Each value is otherwise valid for its field, so only the hostile part can be refused.
    if name == "email":
        value = value.replace("a", "a@example.com", 1)[:5000]
    elif name == "website":
        value = "https://example.com/" + value
    elif name == "phone":
        value = value.replace("a", "+1 555 0100", 1)
    elif name == "slug":
        value = value.replace("a", "abc", 1)
    url = path.format(card=world.alice_card["cardId"])
    send = lambda: world.client.request(method, url, json={**valid, name: value}, headers=world.alice["headers"])  # noqa: E731
    problem = refused(world, 422, send).json()
    assert name in {error["field"] for error in problem.get("errors", [])}, problem


def test_passwords_may_hold_any_character_but_not_too_many(world):
    refused(world, 422, lambda: world.client.post(
        "/v1/auth/register", json={"email": "long@example.com", "password": "p" * 1025, "marketingConsent": False}
    ))
    refused(world, 422, lambda: world.client.post(
        "/v1/auth/register", json={"email": "short@example.com", "password": "p" * 11, "marketingConsent": False}
    ))


# --- websites ----------------------------------------------------------------------------

BAD_WEBSITES = [
    "javascript:alert(1)", "JavaScript:alert(1)", " javascript:alert(1)", "javascript://example.com/%0aalert(1)",
    "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)", "file:///etc/passwd", "ftp://example.com",
    "mailto:a@example.com", "//example.com", "example.com", "/relative", "https://", "https:///path",
    "http:example.com", "https://user@evil.example", "https://user:pw@evil.example", "https://exa mple.com",
    "https://example.com/\u2028", "https://example.com:123456", "https://" + "e" * 2100 + ".com",
]


@pytest.mark.parametrize("website", BAD_WEBSITES)
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_bad_websites(world, method, website):
    if method == "POST":
        body = {"fullName": "A", "email": "a@example.com", "website": website}
        send = lambda: world.client.post("/v1/cards", json=body, headers=world.alice["headers"])  # noqa: E731
    else:
        path = f"/v1/cards/{world.alice_card['cardId']}"
        send = lambda: world.client.patch(path, json={"website": website}, headers=world.alice["headers"])  # noqa: E731
    problem = refused(world, 422, send).json()
    assert "website" in {error["field"] for error in problem["errors"]}


# --- slugs -------------------------------------------------------------------------------

BAD_SLUGS = [
    "..", "../etc", "..%2f..", "a/b", "a\\b", "%2e%2e", "a b", "a.b", "Upper", "j\u0430ne",  # Cyrillic a
    "ab", "x" * 101, "-", "a_b", "a?b", "a#b", "", *sorted(RESERVED_SLUGS),
]


@pytest.mark.parametrize("slug", BAD_SLUGS)
def test_bad_and_reserved_slugs(world, slug):
    body = {"fullName": "A", "email": "a@example.com", "slug": slug}
    problem = refused(world, 422, lambda: world.client.post("/v1/cards", json=body, headers=world.alice["headers"])).json()
    assert problem["errors"][0]["field"] == "slug"


@pytest.mark.parametrize("slug", ["alice-card", "bob-card"])
def test_taken_slugs_and_slug_changes(world, slug):
    body = {"fullName": "A", "email": "a@example.com", "slug": slug}
    refused(world, 409, lambda: world.client.post("/v1/cards", json=body, headers=world.alice["headers"]))
    url = f"/v1/cards/{world.alice_card['cardId']}"
    refused(world, 422, lambda: world.client.patch(url, json={"slug": "other-slug"}, headers=world.alice["headers"]))


# ("/c/.." is not here: clients resolve it to "/" before sending, and "/" leads to the console.)
PUBLIC_PATHS = [
    "/c/.%2e", "/c/%2e%2e%2fv1%2fme", "/p/..%2f..%2fv1%2fme", "/p/alice-card%00.vcf", "/p/alice-card.vcf.html",
    "/p/alice-card.VCF", "/q/alice-card.png%00", "/q/alice-card.gif", "/q/..%2falice-card.png", "/c/ALICE-CARD",
    "/c/" + "a" * 5000, "/c/alice-card%0d%0aSet-Cookie:x=1", "/c/https:%2f%2fevil.example", "/c/admin",
]


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_hostile_public_paths(world, path):
    # People see these, so they answer an HTML page, never a redirect anywhere.
    response = refused(world, 404, lambda: world.client.get(path, follow_redirects=False), problem=False)
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers


# --- QR parameters -----------------------------------------------------------------------

BAD_QR = [
    {"size": 127}, {"size": 2049}, {"size": -1}, {"size": "big"}, {"size": 1.5}, {"ecc": "X"}, {"ecc": "m"},
    {"format": "gif"}, {"format": "PNG"}, {"format": "../x"}, {"mode": "both"}, {"dark": "red"}, {"dark": "#12345"},
    {"dark": "#gggggg"}, {"light": "url(x)"}, {"light": "#fff;x"}, {"border": -1}, {"border": 33}, {"border": "x"},
    {"dark": "#ffffff", "light": "#000000"},  # inverted
    {"dark": "#777777", "light": "#888888"},  # too little contrast
]


@pytest.mark.parametrize("params", BAD_QR, ids=lambda p: "&".join(f"{k}={v}" for k, v in p.items()))
def test_bad_qr_parameters(world, params):
    url = f"/v1/cards/{world.alice_card['cardId']}/qr"
    refused(world, 422, lambda: world.client.get(url, params=params, headers=world.alice["headers"]))


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "static", "size": 128, "ecc": "H"},  # fits no 128 px code
        {"mode": "static", "size": 2048, "ecc": "H"},  # too long for any code at level H
        {"mode": "static", "size": 2048, "ecc": "H", "format": "svg"},
        {"mode": "static", "size": 2048, "ecc": "Q", "format": "pdf"},
    ],
    ids=["png-128-H", "png-2048-H", "svg-H", "pdf-Q"],
)
def test_payloads_too_large_for_the_code(world, params):
    if "long" not in world.extra:
        # A static code leaves out what does not fit (app/cards/vcard.py static_text), but never
        # the name: 200 four-byte characters, twice (N and FN), fit no code at level Q or H.
        long = {"fullName": "\U0001d54e" * 200} | {f: "W" * 200 for f in ("organization", "title")}
        body = {**long, "email": "w@example.com", "website": "https://example.com/" + "p" * 2000}
        world.extra["long"] = world.client.post("/v1/cards", json=body, headers=world.alice["headers"]).json()
    url = f"/v1/cards/{world.extra['long']['cardId']}/qr"
    problem = refused(world, 422, lambda: world.client.get(url, params=params, headers=world.alice["headers"])).json()
    assert "too long" in problem["detail"] or "at least" in problem["detail"]


# --- paging ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, status",
    [
        ({"limit": 0}, 422), ({"limit": 101}, 422), ({"limit": -5}, 422), ({"limit": "many"}, 422),
        ({"cursor": "abc"}, 422), ({"cursor": "-1"}, 422), ({"cursor": "9" * 19}, 422), ({"cursor": "1e3"}, 422),
    ],
    ids=str,
)
def test_bad_paging(world, params, status):
    refused(world, status, lambda: world.client.get("/v1/cards", params=params, headers=world.alice["headers"]))


def test_a_cursor_never_shows_someone_elses_cards(world):
    # Bob's card id as a cursor only pages through Alice's own cards.
    conn = sqlite3.connect(world.database)
    bob_id = conn.execute("SELECT id FROM cards WHERE card_id = ?", (world.bob_card["cardId"],)).fetchone()[0]
    conn.close()
    page = world.client.get("/v1/cards", params={"cursor": str(bob_id + 1)}, headers=world.alice["headers"]).json()
    assert world.bob_card["cardId"] not in {card["cardId"] for card in page["items"]}


# --- IDOR: every card and API-key endpoint, with someone else's id ------------------------

OWNED_ROUTES = {
    "get-card": ("GET", "/v1/cards/{card}", None),
    "update-card": ("PATCH", "/v1/cards/{card}", {"title": "Mine now"}),
    "delete-card": ("DELETE", "/v1/cards/{card}", None),
    "card-qr": ("GET", "/v1/cards/{card}/qr", None),
    "card-qr-static": ("GET", "/v1/cards/{card}/qr?mode=static&format=svg", None),
    "revoke-api-key": ("DELETE", "/v1/api-keys/{key}", None),
}
CALLERS = {
    "stranger-token": (lambda w: w.bob["headers"], 404),
    "stranger-api-key": (lambda w: {"X-API-Key": w.extra["bob_key"]}, 404),
    "anonymous": (lambda w: {}, 401),
}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", OWNED_ROUTES)
def test_other_peoples_things_are_not_found(world, route, caller):
    if "bob_key" not in world.extra:
        world.extra["bob_key"] = world.client.post("/v1/api-keys", json={"name": "bob"}, headers=world.bob["headers"]).json()["key"]
        world.client.get("/v1/me", headers={"X-API-Key": world.extra["bob_key"]})  # its first-use write, now
    method, path, body = OWNED_ROUTES[route]
    make_headers, status = CALLERS[caller]
    url = path.format(card=world.alice_card["cardId"], key=world.alice_key["keyId"])
    refused(world, status, lambda: world.client.request(method, url, json=body, headers=make_headers(world)))


@pytest.mark.parametrize("route", OWNED_ROUTES)
def test_owners_can_use_their_own_things(world, route):
    # The other side of the table above: the same requests work for the owner.
    method, path, body = OWNED_ROUTES[route]
    card = world.client.post("/v1/cards", json={"fullName": "Own", "email": "o@example.com"}, headers=world.alice["headers"]).json()
    key = world.client.post("/v1/api-keys", json={"name": "own"}, headers=world.alice["headers"]).json()
    url = path.format(card=card["cardId"], key=key["keyId"])
    response = world.client.request(method, url, json=body, headers=world.alice["headers"])
    assert response.status_code in (200, 204), response.text


def test_export_holds_only_the_callers_data(world):
    export = world.client.get("/v1/me/export", headers=world.bob["headers"]).json()
    assert export["user"]["email"] == "bob@example.com"
    assert {card["cardId"] for card in export["cards"]} == {world.bob_card["cardId"]}
    assert world.alice_key["keyId"] not in {key["keyId"] for key in export["apiKeys"]}


# --- card values that are well-formed JSON but not a card ------------------------------

BAD_CARDS = {
    "empty-name": ({"fullName": "", "email": "a@example.com"}, "fullName"),
    "blank-name": ({"fullName": "   ", "email": "a@example.com"}, "fullName"),
    "missing-name": ({"email": "a@example.com"}, "fullName"),
    "missing-email": ({"fullName": "A"}, "email"),
    "email-without-at": ({"fullName": "A", "email": "no-at-sign"}, "email"),
    "email-display-name": ({"fullName": "A", "email": "Eve <eve@example.com>"}, "email"),
    "email-two-addresses": ({"fullName": "A", "email": "a@example.com,b@example.com"}, "email"),
    "phone-words": ({"fullName": "A", "email": "a@example.com", "phone": "call me"}, "phone"),
    "name-not-text": ({"fullName": ["A"], "email": "a@example.com"}, "fullName"),
    "qr-size-small": ({"fullName": "A", "email": "a@example.com", "qrSize": 127}, "qrSize"),
    "qr-size-large": ({"fullName": "A", "email": "a@example.com", "qrSize": 2049}, "qrSize"),
    "qr-size-huge": ({"fullName": "A", "email": "a@example.com", "qrSize": 10**30}, "qrSize"),
    # Not here: "qrSize": "512". Litestar converts bodies leniently (msgspec strict=False,
    # not configurable), so a numeric string is taken as the number, then range-checked.
    "qr-size-words": ({"fullName": "A", "email": "a@example.com", "qrSize": "big"}, "qrSize"),
    "qr-level": ({"fullName": "A", "email": "a@example.com", "qrErrorCorrection": "X"}, "qrErrorCorrection"),
    "counter-field": ({"fullName": "A", "email": "a@example.com", "viewCount": 99}, None),
    "owner-field": ({"fullName": "A", "email": "a@example.com", "userId": "someone"}, None),
}


@pytest.mark.parametrize("name", BAD_CARDS)
def test_bad_card_values(world, name):
    body, field_name = BAD_CARDS[name]
    problem = refused(world, 422, lambda: world.client.post("/v1/cards", json=body, headers=world.alice["headers"])).json()
    if field_name:
        assert field_name in {error["field"] for error in problem["errors"]}, problem


@pytest.mark.parametrize(
    "method, path",
    [("GET", "/v1/cards"), ("POST", "/v1/cards"), ("GET", "/v1/me"), ("PATCH", "/v1/me"), ("DELETE", "/v1/me"),
     ("GET", "/v1/me/export"), ("GET", "/v1/api-keys"), ("POST", "/v1/api-keys")],
)
def test_the_api_needs_credentials(world, method, path):
    refused(world, 401, lambda: world.client.request(method, path, json={}))
