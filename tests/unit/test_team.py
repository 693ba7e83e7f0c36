"""The team admin: who may call it, invitations that register under REGISTRATION=invite or
closed, admins (always one active), deactivation, and handing cards over."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from app.public.card_cache import NOT_CACHED
from tests.support.app import PASSWORD, PHONE_UA, assert_problem, create_card, flush_counters, make_settings, register
from tests.support.console import log_in
from tests.support.db import execute, query
from tests.support.mail import links

ADMIN_ENDPOINTS = [
    ("GET", "/v1/admin/users", None),
    ("GET", "/v1/admin/users/invitations", None),
    ("POST", "/v1/admin/users/invitations", {"email": "someone@example.com"}),
    ("PATCH", "/v1/admin/users/{userId}", {"isAdmin": True}),
    ("POST", "/v1/admin/users/{userId}/transfer-cards", {"toUserId": "{userId}"}),
]


@pytest.fixture
def team(client) -> tuple[dict, dict]:
    """The admin (the first account) and a member."""
    return register(client), register(client)


def patch_user(client, admin: dict, user_id: str, **body):
    return client.patch(f"/v1/admin/users/{user_id}", json=body, headers=admin["headers"])


def login(client, email: str, password: str = PASSWORD):
    return client.post("/v1/auth/login", json={"email": email, "password": password})


@pytest.mark.parametrize("method, path, body", ADMIN_ENDPOINTS)
@pytest.mark.parametrize("caller, status", [("anonymous", 401), ("member", 403)])
def test_admin_endpoints_refuse_everyone_else(client, team, method, path, body, caller, status):
    admin, member = team
    user_id = admin["user"]["userId"]
    url = path.replace("{userId}", user_id)
    payload = {k: v.replace("{userId}", user_id) if isinstance(v, str) else v for k, v in (body or {}).items()} or None
    headers = member["headers"] if caller == "member" else {}
    assert_problem(client.request(method, url, json=payload, headers=headers), status)
    assert query(client.app.state.settings, "SELECT count(*) FROM team_invitations") == [(0,)]
    assert query(client.app.state.settings, "SELECT is_admin FROM users WHERE user_id = ?", (member["user"]["userId"],)) == [(0,)]


def test_the_user_list_pages_searches_and_counts_cards(client, team):
    admin, member = team
    create_card(client, member["headers"])
    create_card(client, member["headers"])
    login(client, member["user"]["email"])
    first = client.get("/v1/admin/users", params={"limit": 1}, headers=admin["headers"]).json()
    assert [u["userId"] for u in first["items"]] == [member["user"]["userId"]]
    item = first["items"][0]
    assert item["cardCount"] == 2 and item["isAdmin"] is False and item["status"] == "active" and item["lastLoginAt"]
    assert set(item) == {"userId", "email", "emailVerified", "isAdmin", "status", "cardCount", "lastLoginAt", "createdAt"}
    second = client.get("/v1/admin/users", params={"limit": 1, "cursor": first["nextCursor"]}, headers=admin["headers"]).json()
    assert [u["userId"] for u in second["items"]] == [admin["user"]["userId"]] and second["nextCursor"] is None
    search = member["user"]["email"].split("@")[0].upper()
    found = client.get("/v1/admin/users", params={"search": search}, headers=admin["headers"]).json()
    assert [u["email"] for u in found["items"]] == [member["user"]["email"]]
    # LIKE's wildcards are plain characters in a search.
    assert client.get("/v1/admin/users", params={"search": "%"}, headers=admin["headers"]).json()["items"] == []


# --- invitations ---------------------------------------------------------------------


@pytest.mark.parametrize("registration", ["invite", "closed"])
def test_an_invitation_registers_its_address_once(tmp_path, registration, app_of):
    settings = make_settings(tmp_path, registration=registration)
    with TestClient(app_of(settings), base_url="https://qr.example.test") as client:
        admin = register(client)
        invite = client.post("/v1/admin/users/invitations", json={"email": "New.Hire@example.com"}, headers=admin["headers"])
        assert invite.status_code == 201 and invite.json()["email"] == "New.Hire@example.com"
        listed = client.get("/v1/admin/users/invitations", headers=admin["headers"]).json()
        assert [i["invitationId"] for i in listed] == [invite.json()["invitationId"]]
        [token] = links(client, "new.hire@example.com", "/app/register?invite=")
        assert query(settings, "SELECT kind FROM email_outbox WHERE kind = 'team_invitation'") == [("team_invitation",)]

        def attempt(email: str, token: str | None):
            extra = {"inviteToken": token} if token else {}
            return client.post("/v1/auth/register", json={"email": email, "password": PASSWORD, "marketingConsent": False, **extra})

        assert_problem(attempt("new.hire@example.com", None), 403)
        assert_problem(attempt("someone.else@example.com", token), 403)  # bound to the invited address
        joined = attempt("NEW.HIRE@example.com", token)  # any case
        assert joined.status_code == 201
        assert joined.json()["user"]["emailVerified"] is True  # the link proved the address
        assert_problem(attempt("new.hire2@example.com", token), 403)  # single use
        assert client.get("/v1/admin/users/invitations", headers=admin["headers"]).json() == []
        # An address with an account cannot be invited.
        assert_problem(client.post("/v1/admin/users/invitations", json={"email": "new.hire@EXAMPLE.com"}, headers=admin["headers"]), 409)


def test_an_expired_invitation_does_not_register(tmp_path, app_of):
    settings = make_settings(tmp_path, registration="invite")
    with TestClient(app_of(settings), base_url="https://qr.example.test") as client:
        admin = register(client)
        client.post("/v1/admin/users/invitations", json={"email": "late@example.com"}, headers=admin["headers"])
        [token] = links(client, "late@example.com", "/app/register?invite=")
        [(created, expires)] = query(settings, "SELECT created_at, expires_at FROM team_invitations")
        assert expires > created
        from tests.support.db import execute

        execute(settings, "UPDATE team_invitations SET expires_at = created_at")
        body = {"email": "late@example.com", "password": PASSWORD, "marketingConsent": False, "inviteToken": token}
        assert_problem(client.post("/v1/auth/register", json=body), 403)


# --- admins and deactivation ---------------------------------------------------------


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(client, team):
    admin, member = team
    admin_id, member_id = admin["user"]["userId"], member["user"]["userId"]
    assert_problem(patch_user(client, admin, admin_id, isAdmin=False), 409)
    assert_problem(patch_user(client, admin, admin_id, deactivated=True), 409)
    assert_problem(client.delete("/v1/me", headers=admin["headers"]), 409)
    assert patch_user(client, admin, member_id, isAdmin=True).json()["isAdmin"] is True
    # A deactivated admin is no admin to count on.
    assert patch_user(client, admin, member_id, deactivated=True).json()["status"] == "deactivated"
    assert_problem(patch_user(client, admin, admin_id, isAdmin=False), 409)
    assert patch_user(client, admin, member_id, deactivated=False).json()["status"] == "active"
    assert patch_user(client, admin, admin_id, isAdmin=False).json()["isAdmin"] is False
    # Now the member is the admin, and the old admin is refused.
    assert_problem(client.get("/v1/admin/users", headers=admin["headers"]), 403)
    assert_problem(patch_user(client, admin, "no-such-user", isAdmin=True), 403)
    # The member's token from before its deactivation stays dead; logged in again, it is the admin.
    assert_problem(patch_user(client, member, "no-such-user", isAdmin=True), 401)
    again = login(client, member["user"]["email"]).json()
    assert_problem(patch_user(client, {"headers": {"Authorization": f"Bearer {again['accessToken']}"}}, "no-such-user", isAdmin=True), 404)


def test_a_change_of_a_user_is_all_of_it_or_none(client, team, settings):
    """Deactivating and making admin in one PATCH is one transaction: when the second step
    fails, the first is not kept."""
    admin, member = team
    execute(settings, """CREATE TRIGGER no_new_admins BEFORE UPDATE OF is_admin ON users
        BEGIN SELECT RAISE(ABORT, 'refused for this test'); END""")
    failed = patch_user(client, admin, member["user"]["userId"], deactivated=True, isAdmin=True)
    assert failed.status_code >= 500
    execute(settings, "DROP TRIGGER no_new_admins")
    row = query(settings, "SELECT deactivated_at, is_admin FROM users WHERE user_id = ?", (member["user"]["userId"],))
    assert row == [(None, 0)]
    assert client.get("/v1/me", headers=member["headers"]).status_code == 200  # its token still works


def test_deactivation_locks_the_account_out_and_its_card_keeps_scanning(client, team, settings):
    admin, member = team
    email, member_id = member["user"]["email"], member["user"]["userId"]
    card = create_card(client, member["headers"], slug="still-scans")
    key = client.post("/v1/api-keys", json={"name": "script"}, headers=member["headers"]).json()["key"]
    later = login(client, email).json()
    assert patch_user(client, admin, member_id, deactivated=True).json()["status"] == "deactivated"

    assert_problem(login(client, email), 401)
    assert login(client, email, "wrong password!").json() == login(client, email).json()  # the same answer
    assert_problem(client.get("/v1/me", headers={"X-API-Key": key}), 401)
    assert_problem(client.get("/v1/me", headers=member["headers"]), 401)  # a JWT still within its lifetime
    assert_problem(client.post("/v1/auth/refresh", json={"refreshToken": later["refreshToken"]}), 401)
    assert query(settings, "SELECT count(*) FROM api_keys WHERE user_id = ?", (member_id,)) == [(0,)]
    # No reset email for a deactivated account (the same 202 though).
    assert client.post("/v1/auth/password-reset", json={"email": email}).status_code == 202
    assert links(client, email, "/app/password-reset/") == []

    scan = client.get("/c/still-scans", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    assert scan.status_code == 302
    flush_counters(client)
    assert query(settings, "SELECT scan_count FROM cards WHERE card_id = ?", (card["cardId"],)) == [(1,)]

    assert patch_user(client, admin, member_id, deactivated=False).json()["status"] == "active"
    again = login(client, email)
    assert again.status_code == 200
    assert client.get(f"/v1/cards/{card['cardId']}", headers={"Authorization": f"Bearer {again.json()['accessToken']}"}).status_code == 200


def test_what_a_deactivation_ended_stays_ended_after_a_reactivation(client, team):
    admin, member = team
    email, member_id = member["user"]["email"], member["user"]["userId"]
    before = login(client, email).json()
    log_in(client, email)  # a console session, in this client's cookies
    assert patch_user(client, admin, member_id, deactivated=True).json()["status"] == "deactivated"
    assert patch_user(client, admin, member_id, deactivated=False).json()["status"] == "active"

    # Access tokens from before, still within their 15 minutes: the registration's and a login's.
    for token in (member["accessToken"], before["accessToken"]):
        assert_problem(client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}), 401)
    assert_problem(client.post("/v1/auth/refresh", json={"refreshToken": before["refreshToken"]}), 401)
    assert client.get("/app/cards", follow_redirects=False).headers["location"] == "/app/login"
    # What the account is given from now on works, refreshed too.
    after = login(client, email).json()
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {after['accessToken']}"}).status_code == 200
    renewed = client.post("/v1/auth/refresh", json={"refreshToken": after["refreshToken"]}).json()
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {renewed['accessToken']}"}).status_code == 200
    log_in(client, email)


# --- handing cards over --------------------------------------------------------------


def test_transfer_keeps_slugs_and_counts(client, team, settings):
    admin, member = team
    cards = [create_card(client, member["headers"], slug=f"handed-over-{n}") for n in range(2)]
    client.get("/c/handed-over-0", headers={"User-Agent": PHONE_UA}, follow_redirects=False)
    flush_counters(client)
    public_cards = client.app.state.public_cards
    assert public_cards.cached("handed-over-0").user_id == member["user"]["userId"]  # the cache holds the owner
    url = f"/v1/admin/users/{member['user']['userId']}/transfer-cards"
    assert_problem(client.post(url, json={"toUserId": member["user"]["userId"]}, headers=admin["headers"]), 422)
    assert_problem(client.post(url, json={"toUserId": "no-such-user"}, headers=admin["headers"]), 404)
    before = query(settings, "SELECT max(seq) FROM card_changes")[0][0]
    moved = client.post(url, json={"toUserId": admin["user"]["userId"]}, headers=admin["headers"])
    assert moved.status_code == 200 and moved.json() == {"moved": 2}
    assert public_cards.cached("handed-over-0") is NOT_CACHED
    # The edges hear of both cards through the change sequence (their caches hold the owner too).
    changed = query(settings, "SELECT slug FROM card_changes WHERE seq > ? ORDER BY slug", (before,))
    assert changed == [("handed-over-0",), ("handed-over-1",)]

    assert client.get("/v1/cards", headers=member["headers"]).json()["items"] == []
    mine = client.get(f"/v1/cards/{cards[0]['cardId']}", headers=admin["headers"]).json()
    assert (mine["slug"], mine["scanCount"]) == ("handed-over-0", 1)
    # The next scan counts on the card as before.
    assert client.get("/c/handed-over-0", headers={"User-Agent": PHONE_UA}, follow_redirects=False).status_code == 302
    flush_counters(client)
    assert client.get(f"/v1/cards/{cards[0]['cardId']}", headers=admin["headers"]).json()["scanCount"] == 2
    assert query(settings, "SELECT DISTINCT user_id FROM cards") == [(admin["user"]["userId"],)]
