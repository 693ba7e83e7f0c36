"""Password change and reset, email change, consent and login times: what ends sessions,
what stays, and links that work once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.accounts import emails, passwords
from app.tokens import token_hash
from tests.support.app import PASSWORD, assert_problem, register, unique_email
from tests.support.db import execute, query
from tests.support.mail import links, messages_to

NEW_PASSWORD = "a brand new passphrase"


def login(client, email: str, password: str = PASSWORD):
    return client.post("/v1/auth/login", json={"email": email, "password": password})


def refresh(client, token: str):
    return client.post("/v1/auth/refresh", json={"refreshToken": token})


def add_web_session(settings, user_id: str, token: str) -> None:
    now = datetime.now(UTC)
    execute(
        settings,
        "INSERT INTO web_sessions (token_hash, user_id, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
        (token_hash(token), user_id, now.isoformat(), (now + timedelta(days=7)).isoformat(), now.isoformat()),
    )


def web_sessions(settings, user_id: str) -> list[str]:
    return [row[0] for row in query(settings, "SELECT token_hash FROM web_sessions WHERE user_id = ?", (user_id,))]


def past() -> str:
    return (datetime.now(UTC) - timedelta(seconds=1)).isoformat()


# --- password change -----------------------------------------------------------------


def test_a_token_is_stored_as_the_sha256_hex_digest_it_always_was():
    """Refresh tokens, API keys, console sessions, emailed links and invitations all store
    token_hash: the rows already written must still be found."""
    assert token_hash("this-browser") == "0d75400555d3a472df92652a7db6ade85e1c9e575756aee1f8dfd999954ba89b"


def test_password_change_ends_other_sessions_and_keeps_api_keys(client, settings):
    user = register(client)
    email, user_id = user["user"]["email"], user["user"]["userId"]
    other_device = login(client, email).json()
    add_web_session(settings, user_id, "console-session-token")
    key = client.post("/v1/api-keys", json={"name": "script"}, headers=user["headers"]).json()["key"]

    wrong = client.post(
        "/v1/auth/password", json={"currentPassword": "not my password!", "newPassword": NEW_PASSWORD}, headers=user["headers"]
    )
    assert assert_problem(wrong, 422)["errors"][0]["field"] == "currentPassword"
    assert web_sessions(settings, user_id)  # nothing ended by a wrong password

    changed = client.post(
        "/v1/auth/password", json={"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}, headers=user["headers"]
    )
    assert changed.status_code == 204
    # A bearer token has no family: every refresh family of the account is revoked, and the console sessions.
    assert_problem(refresh(client, user["refreshToken"]), 401)
    assert_problem(refresh(client, other_device["refreshToken"]), 401)
    assert web_sessions(settings, user_id) == []
    # API keys are not sessions.
    assert client.get("/v1/me", headers={"X-API-Key": key}).status_code == 200
    assert_problem(login(client, email), 401)
    assert login(client, email, NEW_PASSWORD).status_code == 200


def test_the_console_keeps_its_own_session_and_family(client, settings):
    user = register(client)
    email, user_id = user["user"]["email"], user["user"]["userId"]
    kept, other = login(client, email).json(), login(client, email).json()
    add_web_session(settings, user_id, "this-browser")
    add_web_session(settings, user_id, "another-browser")
    [(family,)] = query(settings, "SELECT family_id FROM refresh_tokens WHERE token_hash = ?", (token_hash(kept["refreshToken"]),))
    client.blocking_portal.call(
        passwords.change_password, client.app.state.db, user_id, PASSWORD, NEW_PASSWORD, token_hash("this-browser"), family
    )
    assert web_sessions(settings, user_id) == [token_hash("this-browser")]
    assert refresh(client, kept["refreshToken"]).status_code == 200
    assert_problem(refresh(client, other["refreshToken"]), 401)
    assert_problem(refresh(client, user["refreshToken"]), 401)


def test_password_change_needs_credentials(client):
    body = {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}
    assert_problem(client.post("/v1/auth/password", json=body), 401)


# --- password reset ------------------------------------------------------------------


def test_reset_answers_the_same_for_any_address_and_works_once(client, settings):
    user = register(client)
    email, user_id = user["user"]["email"], user["user"]["userId"]
    add_web_session(settings, user_id, "console")
    known = client.post("/v1/auth/password-reset", json={"email": email.upper()})
    unknown = client.post("/v1/auth/password-reset", json={"email": "nobody@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert messages_to(client, "nobody@example.com") == []
    [token] = links(client, email, "/app/password-reset/")
    assert query(settings, "SELECT kind FROM email_outbox WHERE recipient = ? AND kind != 'verification'", (email,)) == [
        ("password_reset",)
    ]
    [(created, expires)] = query(settings, "SELECT created_at, expires_at FROM password_resets")
    assert datetime.fromisoformat(expires) - datetime.fromisoformat(created) == timedelta(hours=1)

    confirm = {"token": token, "newPassword": NEW_PASSWORD}
    assert client.post("/v1/auth/password-reset/confirm", json=confirm).status_code == 204
    # Every session ends: refresh families and console sessions.
    assert_problem(refresh(client, user["refreshToken"]), 401)
    assert web_sessions(settings, user_id) == []
    assert login(client, email, NEW_PASSWORD).status_code == 200
    assert_problem(login(client, email), 401)
    # Single use.
    again = {"token": token, "newPassword": "yet another passphrase"}
    assert assert_problem(client.post("/v1/auth/password-reset/confirm", json=again), 422)["errors"][0]["field"] == "token"


def test_a_reset_link_expires_after_an_hour(client, settings):
    email = register(client)["user"]["email"]
    client.post("/v1/auth/password-reset", json={"email": email})
    [token] = links(client, email, "/app/password-reset/")
    execute(settings, "UPDATE password_resets SET expires_at = ?", (past(),))
    assert_problem(client.post("/v1/auth/password-reset/confirm", json={"token": token, "newPassword": NEW_PASSWORD}), 422)
    assert login(client, email).status_code == 200


def test_reset_emails_are_capped_per_account_and_hour(client):
    email = register(client)["user"]["email"]
    for _ in range(passwords.RESETS_PER_HOUR + 2):
        assert client.post("/v1/auth/password-reset", json={"email": email}).status_code == 202
    assert len(links(client, email, "/app/password-reset/")) == passwords.RESETS_PER_HOUR


# --- the confirmation email, again ------------------------------------------------


def test_the_confirmation_email_can_be_sent_again_until_the_address_is_confirmed(client):
    registered = register(client)
    email, headers = registered["user"]["email"], {"Authorization": f"Bearer {registered['accessToken']}"}
    assert len(links(client, email, "/verify-email?token=")) == 1  # the one sent at registration
    for _ in range(emails.VERIFICATIONS_PER_HOUR - 1):
        assert client.post("/v1/me/verify-email", headers=headers).status_code == 202
    sent = links(client, email, "/verify-email?token=")
    assert len(sent) == emails.VERIFICATIONS_PER_HOUR
    limited = client.post("/v1/me/verify-email", headers=headers)
    assert_problem(limited, 429)
    assert 3000 < int(limited.headers["retry-after"]) <= 3600
    # Any of the links confirms the address; then there is nothing to send.
    assert client.post("/v1/auth/verify-email", json={"token": sent[-1]}).status_code == 204
    assert client.get("/v1/me", headers=headers).json()["emailVerified"] is True
    assert_problem(client.post("/v1/me/verify-email", headers=headers), 409)
    assert_problem(client.post("/v1/me/verify-email"), 401)


# --- email change --------------------------------------------------------------------


def test_email_change_is_confirmed_by_the_new_address(client, settings):
    user = register(client)
    old, new = user["user"]["email"], unique_email()
    taken = register(client)["user"]["email"]
    ask = lambda address, password=PASSWORD: client.post(  # noqa: E731
        "/v1/me/email", json={"newEmail": address, "password": password}, headers=user["headers"]
    )
    assert assert_problem(ask(new, "not my password!"), 422)["errors"][0]["field"] == "password"
    assert_problem(ask(taken.upper()), 409)
    assert ask(new).status_code == 202
    assert links(client, old, "/app/account/email/") == []
    [token] = links(client, new, "/app/account/email/")
    assert query(settings, "SELECT kind FROM email_outbox WHERE recipient = ?", (new,)) == [("email_change",)]
    # Nothing changes before the link is used, and only its account can use it.
    assert client.get("/v1/me", headers=user["headers"]).json()["email"] == old
    stranger = register(client)
    assert_problem(client.post("/v1/me/email/confirm", json={"token": token}, headers=stranger["headers"]), 422)

    assert client.post("/v1/me/email/confirm", json={"token": token}, headers=user["headers"]).status_code == 204
    me = client.get("/v1/me", headers=user["headers"]).json()
    assert (me["email"], me["emailVerified"]) == (new, True)
    assert login(client, new).status_code == 200
    assert_problem(login(client, old), 401)
    assert_problem(client.post("/v1/me/email/confirm", json={"token": token}, headers=user["headers"]), 422)


def test_email_change_is_409_when_the_address_is_taken_before_the_confirmation(client):
    user = register(client)
    new = unique_email()
    assert client.post("/v1/me/email", json={"newEmail": new, "password": PASSWORD}, headers=user["headers"]).status_code == 202
    [token] = links(client, new, "/app/account/email/")
    register(client, new)
    assert_problem(client.post("/v1/me/email/confirm", json={"token": token}, headers=user["headers"]), 409)


# --- consent and login times ---------------------------------------------------------


def test_consent_and_login_times_are_recorded(client):
    user = register(client)
    me = client.get("/v1/me", headers=user["headers"]).json()
    assert (me["marketingConsentAt"], me["lastLoginAt"]) == (None, None)
    given = client.patch("/v1/me", json={"marketingConsent": True}, headers=user["headers"]).json()
    assert given["marketingConsent"] is True and given["marketingConsentAt"]
    # The same answer again keeps the time it was given.
    again = client.patch("/v1/me", json={"marketingConsent": True}, headers=user["headers"]).json()
    assert again["marketingConsentAt"] == given["marketingConsentAt"]
    withdrawn = client.patch("/v1/me", json={"marketingConsent": False}, headers=user["headers"]).json()
    assert withdrawn["marketingConsentAt"] > given["marketingConsentAt"]
    logged_in = login(client, user["user"]["email"]).json()
    assert logged_in["user"]["lastLoginAt"]
    assert client.get("/v1/me", headers=user["headers"]).json()["lastLoginAt"] == logged_in["user"]["lastLoginAt"]


def test_consent_given_at_registration_has_its_time(client):
    user = register(client, marketingConsent=True)
    assert user["user"]["marketingConsentAt"] == user["user"]["createdAt"]
