"""Console sessions (app/console/sessions.py) against a real database."""

from __future__ import annotations

import hashlib

import pytest

from app.accounts.users import get_user
from app.console.sessions import end_web_session, start_web_session, user_for_web_session
from app.errors import Forbidden
from tests.support.db import execute, query


def _user(client, user):
    async def read():
        async with client.app.state.db.read() as conn:
            return await get_user(conn, user["user"]["userId"])

    return client.blocking_portal.call(read)


def test_a_session_lives_until_logout_and_only_its_hash_is_stored(client, user):
    account, call = _user(client, user), client.blocking_portal.call
    token = call(start_web_session, client.app.state.db, account)
    assert call(user_for_web_session, client.app.state.db, token).user_id == account.user_id
    rows = query(client.app.state.settings, "SELECT token_hash, expires_at > created_at FROM web_sessions")
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), 1)]
    assert query(client.app.state.settings, "SELECT last_login_at IS NOT NULL FROM users") == [(1,)]
    call(end_web_session, client.app.state.db, token)
    assert call(user_for_web_session, client.app.state.db, token) is None
    assert query(client.app.state.settings, "SELECT count(*) FROM web_sessions") == [(0,)]


def test_expired_unknown_and_deactivated_sessions_have_no_user(client, user):
    account, call, db = _user(client, user), client.blocking_portal.call, client.app.state.db
    settings = client.app.state.settings
    expired, deactivated = call(start_web_session, db, account), call(start_web_session, db, account)
    execute(settings, "UPDATE web_sessions SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE token_hash = ?",
            (hashlib.sha256(expired.encode()).hexdigest(),))
    assert call(user_for_web_session, db, expired) is None
    assert call(user_for_web_session, db, "not-a-token") is None
    assert call(user_for_web_session, db, "") is None
    assert call(user_for_web_session, db, deactivated) is not None
    execute(settings, "UPDATE users SET deactivated_at = '2026-01-01T00:00:00.000000Z'")
    assert call(user_for_web_session, db, deactivated) is None
    with pytest.raises(Forbidden):
        call(start_web_session, db, account)
