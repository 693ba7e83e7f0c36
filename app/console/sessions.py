"""Console sessions: a random token in a cookie, its SHA-256 in `web_sessions`.

A session lasts a fixed 30 days from login (not sliding: the cookie's Max-Age and the
row's expires_at are set once, so no request has to rewrite the cookie). `last_seen_at`
is bumped at most hourly, for the team page's "last seen", never on every request.
Logout deletes the row; a deactivated account has no session whatever rows it has left.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import aiosqlite

from app.accounts.users import USER_COLUMNS, User, user_of
from app.config import Settings
from app.db import Database, fetch_one, isoformat
from app.errors import Forbidden
from app.tokens import token_hash

COOKIE = "qrc_session"
COOKIE_PATH = "/app"
VALID_FOR = timedelta(days=30)
SEEN_EVERY = timedelta(hours=1)


def cookie_is_secure(settings: Settings) -> bool:
    """`Secure` when the service is served over HTTPS: a plain-HTTP install could not log in otherwise."""
    return settings.public_base_url.startswith("https://")


# --- SQL -----------------------------------------------------------------------------


async def insert_session(conn: aiosqlite.Connection, user_id: str, now: datetime) -> str:
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO web_sessions (token_hash, user_id, created_at, expires_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
        (token_hash(token), user_id, isoformat(now), isoformat(now + VALID_FOR), isoformat(now)),
    )
    return token


async def session_user(conn: aiosqlite.Connection, token: str, now: datetime) -> tuple[User, str] | None:
    """The live session's account and when it was last seen; None when expired, unknown or deactivated."""
    columns = ", ".join("u." + c.strip() for c in USER_COLUMNS.split(","))
    row = await fetch_one(
        conn,
        f"""SELECT {columns}, s.last_seen_at FROM web_sessions s JOIN users u USING (user_id)
        WHERE s.token_hash = ? AND s.expires_at > ? AND u.deactivated_at IS NULL""",
        (token_hash(token), isoformat(now)),
    )
    return (user_of(row), row["last_seen_at"]) if row else None


# --- operations ----------------------------------------------------------------------


async def start_web_session(db: Database, user: User) -> str:
    """A new session for the account; the token goes into the cookie and nowhere else.
    Raises Forbidden for a deactivated account."""
    async with db.write() as tx:
        conn, now = tx.conn, tx.now
        row = await fetch_one(
            conn, "UPDATE users SET last_login_at = ? WHERE user_id = ? AND deactivated_at IS NULL RETURNING 1",
            (isoformat(now), user.user_id),
        )
        if row is None:
            raise Forbidden("this account is deactivated")
        return await insert_session(conn, user.user_id, now)


async def user_for_web_session(db: Database, token: str) -> User | None:
    """The account of a live session, or None (unknown, expired, logged out, deactivated)."""
    if not token or len(token) > 100:
        return None
    now = db.now()
    async with db.read() as conn:
        found = await session_user(conn, token, now)
    if found is None:
        return None
    user, last_seen_at = found
    if last_seen_at < isoformat(now - SEEN_EVERY):
        async with db.write() as tx:
            await tx.conn.execute(
                "UPDATE web_sessions SET last_seen_at = ? WHERE token_hash = ?", (tx.now_text, token_hash(token))
            )
    return user


async def end_web_session(db: Database, token: str) -> None:
    """Log out: the session's row is deleted; an unknown token changes nothing."""
    async with db.write() as tx:
        await tx.conn.execute("DELETE FROM web_sessions WHERE token_hash = ?", (token_hash(token),))
