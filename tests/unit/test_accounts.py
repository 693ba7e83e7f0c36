"""Accounts over HTTP: registration, login, token rotation, the account routes and API keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from argon2 import PasswordHasher
from litestar.testing import TestClient

from tests.support.app import PASSWORD, assert_problem, create_card, make_settings, register
from tests.support.db import execute, query
from tests.support.sharing import token_of


def test_register_answers_tokens_and_user(client, settings):
    body = register(client, "Jane@Example.com")
    assert body["tokenType"] == "Bearer"
    assert body["expiresIn"] == settings.jwt_expiry_minutes * 60
    assert set(body["user"]) == {
        "userId", "email", "emailVerified", "marketingConsent", "createdAt", "marketingConsentAt", "lastLoginAt",
    }
    assert body["user"]["email"] == "Jane@Example.com"
    assert body["user"]["emailVerified"] is False
    claims = jwt.decode(body["accessToken"], settings.jwt_secret, algorithms=["HS256"])
    assert {"exp", "iat", "sub", "jti"} <= set(claims)
    assert claims["sub"] == body["user"]["userId"]
    assert claims["exp"] - claims["iat"] == settings.jwt_expiry_minutes * 60


def test_password_is_stored_as_argon2id_with_owasp_parameters(client, settings, owasp_hasher):
    from app.sqlite import sqlite3

    register(client, "hash@example.com")
    stored = sqlite3.connect(settings.database_path).execute(
        "SELECT password_hash FROM users WHERE email = 'hash@example.com'"
    ).fetchone()[0]
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PasswordHasher().verify(stored, PASSWORD)


def test_email_is_taken_case_insensitively(client):
    register(client, "case@example.com")
    response = client.post(
        "/v1/auth/register", json={"email": "CASE@example.COM", "password": PASSWORD, "marketingConsent": True}
    )
    assert_problem(response, 409)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"email": "a@example.com", "password": "short", "marketingConsent": False}, "password"),
        ({"email": "a@example.com", "password": "x" * 1025, "marketingConsent": False}, "password"),
        ({"email": "not-an-email", "password": PASSWORD, "marketingConsent": False}, "email"),
        ({"email": "a@example.com\r\nBcc: x@evil.com", "password": PASSWORD, "marketingConsent": False}, "email"),
        ({"email": "a@example.com", "password": PASSWORD}, "marketingConsent"),
        ({"email": "a@example.com", "password": PASSWORD, "marketingConsent": "yes"}, "marketingConsent"),
    ],
)
def test_register_refuses_invalid_input(client, body, field):
    problem = assert_problem(client.post("/v1/auth/register", json=body), 422)
    assert field in {error["field"] for error in problem["errors"]}
    assert client.post("/v1/auth/login", json={"email": body["email"], "password": PASSWORD}).status_code in (401, 422)


def test_first_account_is_admin_and_closed_registration_refuses_the_rest(tmp_path, app_of):
    settings = make_settings(tmp_path, registration="closed")
    with TestClient(app_of(settings)) as client:
        register(client, "admin@example.com")
        response = client.post(
            "/v1/auth/register", json={"email": "late@example.com", "password": PASSWORD, "marketingConsent": False}
        )
        assert_problem(response, 403)
        state = client.app.state

        async def is_admin(email):
            async with state.db.read() as conn:
                async with conn.execute("SELECT is_admin FROM users WHERE email = ?", (email,)) as cur:
                    return (await cur.fetchone())[0]

        assert client.blocking_portal.call(is_admin, "admin@example.com") == 1


@pytest.mark.parametrize("registration", ["open", "invite", "closed"])
def test_the_last_admin_cannot_leave_and_no_stranger_becomes_admin(tmp_path, registration, app_of):
    """The only admin's DELETE /v1/me is a 409 (once it left, the next stranger to register
    was the new admin, even with REGISTRATION=closed); with another admin it is a 204."""
    settings = make_settings(tmp_path, registration=registration)
    with TestClient(app_of(settings)) as client:
        admin = register(client, "admin@example.com")
        problem = assert_problem(client.delete("/v1/me", headers=admin["headers"]), 409)
        assert "admin" in problem["detail"]
        assert client.get("/v1/me", headers=admin["headers"]).status_code == 200
        if registration == "closed":
            stranger = client.post(
                "/v1/auth/register", json={"email": "stranger@example.com", "password": PASSWORD, "marketingConsent": False}
            )
            assert_problem(stranger, 403)
            execute(settings, "INSERT INTO users (user_id, email, password_hash, created_at) VALUES ('u2', 'b@example.com', 'x', 'now')")
        else:
            register(client, "second@example.com", **({"inviteToken": _invite(client, admin)} if registration == "invite" else {}))
        assert query(settings, "SELECT email FROM users WHERE is_admin") == [("admin@example.com",)]
        assert_problem(client.delete("/v1/me", headers=admin["headers"]), 409)  # other accounts are not admins
        # An operator makes another account admin: now the first may leave, and the other may not.
        execute(settings, "UPDATE users SET is_admin = 1 WHERE email != 'admin@example.com'")
        assert client.delete("/v1/me", headers=admin["headers"]).status_code == 204
        assert query(settings, "SELECT count(*) FROM users WHERE is_admin") == [(1,)]


def test_closed_registration_stays_closed_when_no_admin_is_left(tmp_path, app_of):
    """"The first account" is the first one ever: accounts without an admin (a database from
    before the last-admin rule) do not reopen registration, nor make anyone admin."""
    settings = make_settings(tmp_path, registration="closed")
    with TestClient(app_of(settings)) as client:
        register(client, "admin@example.com")
        execute(settings, "UPDATE users SET is_admin = 0")
        body = {"email": "stranger@example.com", "password": PASSWORD, "marketingConsent": False}
        assert_problem(client.post("/v1/auth/register", json=body), 403)
        assert query(settings, "SELECT email, is_admin FROM users") == [("admin@example.com", 0)]


def _invite(client, admin) -> str:
    card = create_card(client, admin["headers"])
    body = {"recipients": [{"channel": "sms", "to": "+15550100111"}]}
    [sent] = client.post(f"/v1/cards/{card['cardId']}/share", json=body, headers=admin["headers"]).json()["invitations"]
    return token_of(sent["shareUrl"])


def test_login_answers_unknown_email_and_wrong_password_identically(client):
    register(client, "login@example.com")
    ok = client.post("/v1/auth/login", json={"email": "LOGIN@example.com", "password": PASSWORD})
    assert ok.status_code == 200
    assert ok.json()["user"]["email"] == "login@example.com"
    wrong = client.post("/v1/auth/login", json={"email": "login@example.com", "password": "wrong password!!"})
    unknown = client.post("/v1/auth/login", json={"email": "nobody@example.com", "password": "wrong password!!"})
    assert_problem(wrong, 401)
    assert wrong.json() == unknown.json()
    assert wrong.status_code == unknown.status_code


def test_refresh_rotates_and_a_replay_revokes_the_whole_family(client):
    first = register(client)
    second = client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert second.status_code == 200
    second = second.json()
    assert second["refreshToken"] != first["refreshToken"]
    assert second["accessToken"] != first["accessToken"]
    # The old token again: a replay. It fails, and so does the newer one from its family.
    assert_problem(client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]}), 401)
    assert_problem(client.post("/v1/auth/refresh", json={"refreshToken": second["refreshToken"]}), 401)


def test_a_replay_leaves_other_sessions_alone(client):
    first = register(client, "two@example.com")
    other = client.post("/v1/auth/login", json={"email": "two@example.com", "password": PASSWORD}).json()
    client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    client.post("/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert client.post("/v1/auth/refresh", json={"refreshToken": other["refreshToken"]}).status_code == 200


def test_logout_revokes_the_refresh_token(client):
    session = register(client)
    assert client.post("/v1/auth/logout", json={"refreshToken": session["refreshToken"]}).status_code == 204
    assert_problem(client.post("/v1/auth/refresh", json={"refreshToken": session["refreshToken"]}), 401)


def test_expired_refresh_token_is_refused(client, settings):
    from app.sqlite import sqlite3

    session = register(client)
    conn = sqlite3.connect(settings.database_path)
    conn.execute("UPDATE refresh_tokens SET expires_at = ?", ((datetime.now(UTC) - timedelta(seconds=1)).isoformat(),))
    conn.commit()
    assert_problem(client.post("/v1/auth/refresh", json={"refreshToken": session["refreshToken"]}), 401)


def test_me_reads_patches_and_exports(client, user):
    headers = user["headers"]
    assert client.get("/v1/me", headers=headers).json() == user["user"]
    patched = client.patch("/v1/me", json={"marketingConsent": True}, headers=headers)
    assert patched.status_code == 200 and patched.json()["marketingConsent"] is True
    assert_problem(client.patch("/v1/me", json={"email": "new@example.com"}, headers=headers), 422)
    card = create_card(client, headers, slug="export-me")
    export = client.get("/v1/me/export", headers=headers).json()
    assert export["user"]["marketingConsent"] is True
    assert [c["cardId"] for c in export["cards"]] == [card["cardId"]]


def test_delete_me_removes_everything_and_retires_slugs(client, settings, user):
    from app.sqlite import sqlite3

    headers = register(client, "leaver@example.com")["headers"]  # `user` came first: the admin, who may not leave
    create_card(client, headers, slug="gone-card")
    client.post("/v1/api-keys", json={"name": "ci"}, headers=headers)
    assert client.delete("/v1/me", headers=headers).status_code == 204
    assert_problem(client.get("/v1/me", headers=headers), 401)
    conn = sqlite3.connect(settings.database_path)
    for table in ("cards", "api_keys"):
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table
    for table in ("users", "refresh_tokens"):
        assert conn.execute(f"SELECT user_id FROM {table}").fetchall() == [(user["user"]["userId"],)], table
    assert client.get("/c/gone-card", follow_redirects=False).status_code == 410
    other = register(client)
    assert_problem(
        client.post("/v1/cards", json={"fullName": "X", "email": "x@example.com", "slug": "gone-card"}, headers=other["headers"]),
        409,
    )


def test_api_keys_are_shown_once_work_and_revoke(client, settings, user):
    from app.sqlite import sqlite3

    created = client.post("/v1/api-keys", json={"name": "deploy script"}, headers=user["headers"])
    assert created.status_code == 201
    key = created.json()["key"]
    stored = sqlite3.connect(settings.database_path).execute("SELECT key_hash FROM api_keys").fetchone()[0]
    assert key not in stored
    listed = client.get("/v1/api-keys", headers=user["headers"]).json()
    assert [k["keyId"] for k in listed] == [created.json()["keyId"]]
    assert "key" not in listed[0]
    me = client.get("/v1/me", headers={"X-API-Key": key})
    assert me.status_code == 200 and me.json()["userId"] == user["user"]["userId"]
    assert client.get("/v1/api-keys", headers=user["headers"]).json()[0]["lastUsedAt"] is not None
    assert client.delete(f"/v1/api-keys/{created.json()['keyId']}", headers={"X-API-Key": key}).status_code == 204
    assert_problem(client.get("/v1/me", headers={"X-API-Key": key}), 401)
    assert_problem(client.get("/v1/me", headers={"X-API-Key": "qrc_made-up"}), 401)


def test_another_users_api_key_cannot_be_revoked(client, user):
    created = client.post("/v1/api-keys", json={"name": "mine"}, headers=user["headers"]).json()
    other = register(client)
    assert_problem(client.delete(f"/v1/api-keys/{created['keyId']}", headers=other["headers"]), 404)
    assert client.get("/v1/me", headers={"X-API-Key": created["key"]}).status_code == 200
