"""Users: the account's shape, the SQL on the users table, and the operations on the
account itself (marketing consent, deletion).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import aiosqlite
import msgspec

from app.cards import cards
from app.db import Database, fetch_all, fetch_one, isoformat
from app.errors import Conflict
from app.public.card_cache import PublicCards

# --- structs -------------------------------------------------------------------------


class User(msgspec.Struct, rename="camel"):
    user_id: str
    email: str
    email_verified: bool
    marketing_consent: bool
    created_at: str
    marketing_consent_at: str | None = None
    last_login_at: str | None = None
    # Not part of the API's user shape (see `public`): the admin flag, when the account
    # was deactivated (None while it is active), and the version its access tokens must
    # carry (each deactivation moves it on: migrations/0007_token_version.sql).
    is_admin: bool = False
    deactivated_at: str | None = None
    token_version: int = 0

    def public(self) -> PublicUser:
        return PublicUser(
            self.user_id, self.email, self.email_verified, self.marketing_consent, self.created_at,
            self.marketing_consent_at, self.last_login_at,
        )


class PublicUser(msgspec.Struct, rename="camel"):
    user_id: str
    email: str
    email_verified: bool
    marketing_consent: bool
    created_at: str
    # When consent was last given or withdrawn (None: never given); the last login, None before one.
    marketing_consent_at: str | None
    last_login_at: str | None


# --- SQL -----------------------------------------------------------------------------

USER_COLUMNS = (
    "user_id, email, email_verified, marketing_consent, created_at, marketing_consent_at, last_login_at, "
    "is_admin, deactivated_at, token_version"
)


def user_of(row: Any) -> User:
    return User(
        user_id=row["user_id"],
        email=row["email"],
        email_verified=bool(row["email_verified"]),
        marketing_consent=bool(row["marketing_consent"]),
        created_at=row["created_at"],
        marketing_consent_at=row["marketing_consent_at"],
        last_login_at=row["last_login_at"],
        is_admin=bool(row["is_admin"]),
        deactivated_at=row["deactivated_at"],
        token_version=row["token_version"],
    )


async def get_user(conn: aiosqlite.Connection, user_id: str) -> User | None:
    row = await fetch_one(conn, f"SELECT {USER_COLUMNS} FROM users WHERE user_id = ?", (user_id,))
    return user_of(row) if row else None


async def get_login(conn: aiosqlite.Connection, email: str) -> tuple[User, str] | None:
    row = await fetch_one(conn, f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = ?", (email,))
    return (user_of(row), row["password_hash"]) if row else None


async def insert_user(
    conn: aiosqlite.Connection, email: str, password_hash: str, marketing_consent: bool, now: datetime,
    email_verified: bool = False,
) -> User:
    """Insert an account; the first one is the admin. Raises Conflict when the email is taken."""
    if await email_taken(conn, email):
        raise Conflict("an account with this email already exists")
    row = await fetch_one(
        conn,
        f"""INSERT INTO users (user_id, email, password_hash, is_admin, marketing_consent, marketing_consent_at,
            email_verified, created_at)
        VALUES (?, ?, ?, NOT EXISTS (SELECT 1 FROM users), ?, ?, ?, ?)
        RETURNING {USER_COLUMNS}""",
        (
            uuid.uuid4().hex, email, password_hash, marketing_consent, isoformat(now) if marketing_consent else None,
            email_verified, isoformat(now),
        ),
    )
    return user_of(row)


async def count_users(conn: aiosqlite.Connection) -> int:
    row = await fetch_one(conn, "SELECT count(*) AS n FROM users")
    return row["n"]


async def set_marketing_consent(conn: aiosqlite.Connection, user_id: str, consent: bool, now: datetime) -> User:
    """Give or withdraw consent; its time changes only when the answer does."""
    row = await fetch_one(
        conn,
        f"""UPDATE users SET marketing_consent = :consent,
            marketing_consent_at = CASE WHEN marketing_consent = :consent THEN marketing_consent_at ELSE :now END
        WHERE user_id = :user_id RETURNING {USER_COLUMNS}""",
        {"consent": consent, "now": isoformat(now), "user_id": user_id},
    )
    return user_of(row)


async def set_password_hash(conn: aiosqlite.Connection, user_id: str, password_hash: str) -> None:
    await conn.execute("UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id))


async def get_password_hash(conn: aiosqlite.Connection, user_id: str) -> str | None:
    row = await fetch_one(conn, "SELECT password_hash FROM users WHERE user_id = ?", (user_id,))
    return row["password_hash"] if row else None


async def email_taken(conn: aiosqlite.Connection, email: str) -> bool:
    return await fetch_one(conn, "SELECT 1 FROM users WHERE email = ?", (email,)) is not None


async def is_last_active_admin(conn: aiosqlite.Connection, user_id: str) -> bool:
    """Whether the account is an active admin and no other active admin exists."""
    row = await fetch_one(
        conn,
        """SELECT 1 FROM users WHERE user_id = :user_id AND is_admin AND deactivated_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM users WHERE is_admin AND deactivated_at IS NULL AND user_id != :user_id)""",
        {"user_id": user_id},
    )
    return row is not None


async def delete_user(conn: aiosqlite.Connection, user_id: str, now: datetime) -> list[str]:
    """Delete an account and everything it owns; returns the slugs of its cards, now retired.

    Raises Conflict for the last admin: a service with accounts always keeps one, and
    so the accounts table never empties again, which keeps "the first account" (the
    admin, the only one REGISTRATION=closed or invite lets in without an invitation) the
    first one ever, never the next stranger after the admin left.
    """
    if await is_last_active_admin(conn, user_id):
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
    """Give or withdraw marketing consent; `marketingConsentAt` records when it last changed."""
    async with db.write() as tx:
        return await set_marketing_consent(tx.conn, user_id, consent, tx.now)


async def delete_account(db: Database, public_cards: PublicCards, user_id: str) -> None:
    """Delete the account and everything it owns; its cards' slugs are retired. Raises Conflict for the only admin."""
    async with db.write() as tx:
        slugs = await delete_user(tx.conn, user_id, tx.now)
        # The edges hear of the deleted cards through the change sequence.
        await cards.changed(tx, public_cards, slugs)
