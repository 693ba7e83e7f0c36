"""Users: the account's shape, the SQL on the users table, and the operations on the
account itself (marketing consent, deletion).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import aiosqlite
import msgspec

from app.card_cache import PublicCards
from app.db import Database, fetch_all, fetch_one, isoformat
from app.domain_errors import Conflict

# --- structs -------------------------------------------------------------------------


class User(msgspec.Struct, rename="camel"):
    user_id: str
    email: str
    email_verified: bool
    marketing_consent: bool
    created_at: str
    is_admin: bool = False  # not part of the API's user shape: see `public`

    def public(self) -> PublicUser:
        return PublicUser(self.user_id, self.email, self.email_verified, self.marketing_consent, self.created_at)


class PublicUser(msgspec.Struct, rename="camel"):
    user_id: str
    email: str
    email_verified: bool
    marketing_consent: bool
    created_at: str


# --- SQL -----------------------------------------------------------------------------

USER_COLUMNS = "user_id, email, email_verified, marketing_consent, created_at, is_admin"


def user_of(row: Any) -> User:
    return User(
        user_id=row["user_id"],
        email=row["email"],
        email_verified=bool(row["email_verified"]),
        marketing_consent=bool(row["marketing_consent"]),
        created_at=row["created_at"],
        is_admin=bool(row["is_admin"]),
    )


async def get_user(conn: aiosqlite.Connection, user_id: str) -> User | None:
    row = await fetch_one(conn, f"SELECT {USER_COLUMNS} FROM users WHERE user_id = ?", (user_id,))
    return user_of(row) if row else None


async def get_login(conn: aiosqlite.Connection, email: str) -> tuple[User, str] | None:
    row = await fetch_one(conn, f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = ?", (email,))
    return (user_of(row), row["password_hash"]) if row else None


async def insert_user(
    conn: aiosqlite.Connection, email: str, password_hash: str, marketing_consent: bool, now: datetime
) -> User:
    """Insert an account; the first one is the admin. Raises Conflict when the email is taken."""
    if await fetch_one(conn, "SELECT 1 FROM users WHERE email = ?", (email,)):
        raise Conflict("an account with this email already exists")
    row = await fetch_one(
        conn,
        f"""INSERT INTO users (user_id, email, password_hash, is_admin, marketing_consent, created_at)
        VALUES (?, ?, ?, NOT EXISTS (SELECT 1 FROM users), ?, ?)
        RETURNING {USER_COLUMNS}""",
        (uuid.uuid4().hex, email, password_hash, marketing_consent, isoformat(now)),
    )
    return user_of(row)


async def count_users(conn: aiosqlite.Connection) -> int:
    row = await fetch_one(conn, "SELECT count(*) AS n FROM users")
    return row["n"]


async def set_marketing_consent(conn: aiosqlite.Connection, user_id: str, consent: bool) -> User:
    row = await fetch_one(
        conn,
        f"UPDATE users SET marketing_consent = ? WHERE user_id = ? RETURNING {USER_COLUMNS}",
        (consent, user_id),
    )
    return user_of(row)


async def delete_user(conn: aiosqlite.Connection, user_id: str, now: datetime) -> list[str]:
    """Delete an account and everything it owns; returns the slugs of its cards, now retired.

    Raises Conflict for the last admin: a service with accounts always keeps one, and
    so the accounts table never empties again, which keeps "the first account" (the
    admin, the only one REGISTRATION=closed or invite lets in without an invitation) the
    first one ever, never the next stranger after the admin left.
    """
    last_admin = await fetch_one(
        conn,
        """SELECT 1 FROM users WHERE user_id = ? AND is_admin
        AND NOT EXISTS (SELECT 1 FROM users WHERE is_admin AND user_id != ?)""",
        (user_id, user_id),
    )
    if last_admin:
        raise Conflict("the only admin cannot delete their account: make another account admin first")
    slugs = [r["slug"] for r in await fetch_all(conn, "SELECT slug FROM cards WHERE user_id = ?", (user_id,))]
    await conn.execute(
        "INSERT OR IGNORE INTO retired_slugs (slug, retired_at) SELECT slug, ? FROM cards WHERE user_id = ?",
        (isoformat(now), user_id),
    )
    await conn.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
    return slugs


# --- operations ----------------------------------------------------------------------


async def change_marketing_consent(db: Database, user_id: str, consent: bool) -> User:
    async with db.write() as conn:
        return await set_marketing_consent(conn, user_id, consent)


async def delete_account(db: Database, public_cards: PublicCards, user_id: str) -> None:
    """Delete the account and everything it owns; its cards' slugs are retired. Raises Conflict for the only admin."""
    async with db.write() as conn:
        slugs = await delete_user(conn, user_id, datetime.now(UTC))
    public_cards.forget(*slugs)
