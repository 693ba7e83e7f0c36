"""Accounts: registration, email verification, login, rotating refresh tokens, API keys,
and the /v1/me routes.

Access tokens are short-lived HS256 JWTs (Litestar's Token, algorithm pinned on decode).
Refresh tokens, API keys and email verification tokens are random strings stored only as
SHA-256 hashes: they carry 256 bits of entropy, so a slow password hash would add nothing
but latency. Registering queues the verification email in the same transaction; with an
`inviteToken` it also marks that invitation converted (app.sharing).

Each operation (register, verify_email, authenticate, start_session, refresh_session,
end_session, change_marketing_consent, delete_account, create_api_key,
record_api_key_use, revoke_api_key) owns its transaction and its one `now`, and does what
follows the commit itself (wake the outbox, forget cached cards, count a conversion):
the handlers and any other door call it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import html
import logging
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Annotated, Any

import aiosqlite
import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from litestar import Request, Response, Router, delete, get, patch, post
from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AuthenticationResult
from litestar.params import Body, FromPath, JSONBody, QueryParameter
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

from app import cards, limits, mail, pages, sharing, stats
from app.card_cache import PublicCards
from app.config import Settings, SettingsDep
from app.db import Database, DatabaseDep, fetch_all, fetch_one, isoformat
from app.domain_errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from app.errors import AUTHENTICATED, BODY, LIMITED, WRITE, problems
from app.fields import Email, InviteToken, Label, Password
from app.openapi import HTML_PAGE, TEXT, media_types
from app.sqlite import sqlite3

log = logging.getLogger("app.accounts")

# OWASP's recommended argon2id parameters: 19 MiB, 2 passes, 1 lane.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
API_KEY_PREFIX = "qrc_"
VERIFY_VALID_FOR = timedelta(hours=48)
VERIFY_TOKEN = r"^[A-Za-z0-9_-]{32,64}$"


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


class RegisterRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    email: Email
    password: Password
    marketing_consent: bool
    invite_token: InviteToken | None = None


class VerifyEmailRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(max_length=64)]


class VerifyEmailForm(msgspec.Struct):
    token: Annotated[str, msgspec.Meta(max_length=64)] = ""


class LoginRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    email: Email
    # Any length up to the maximum: a login must not tell which passwords could exist.
    password: Annotated[str, msgspec.Meta(max_length=1024)]


class RefreshRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    refresh_token: str


class AuthResponse(msgspec.Struct, rename="camel"):
    access_token: str
    refresh_token: str
    expires_in: int
    user: PublicUser
    token_type: str = "Bearer"


class UpdateMeRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    marketing_consent: bool


class CreateApiKeyRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    name: Label


class ApiKey(msgspec.Struct, rename="camel"):
    key_id: str
    name: str
    prefix: str
    created_at: str
    last_used_at: str | None


class CreatedApiKey(msgspec.Struct, rename="camel"):
    key_id: str
    name: str
    prefix: str
    created_at: str
    key: str


class AccountExport(msgspec.Struct, rename="camel"):
    user: PublicUser
    cards: list[cards.ContactCard]
    api_keys: list[ApiKey]
    invitations: list[sharing.Invitation]
    scans: list[stats.ScanEvent]


# --- SQL -----------------------------------------------------------------------------

USER_COLUMNS = "user_id, email, email_verified, marketing_consent, created_at, is_admin"


def _user(row: Any) -> User:
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
    return _user(row) if row else None


async def get_login(conn: aiosqlite.Connection, email: str) -> tuple[User, str] | None:
    row = await fetch_one(conn, f"SELECT {USER_COLUMNS}, password_hash FROM users WHERE email = ?", (email,))
    return (_user(row), row["password_hash"]) if row else None


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
    return _user(row)


async def count_users(conn: aiosqlite.Connection) -> int:
    row = await fetch_one(conn, "SELECT count(*) AS n FROM users")
    return row["n"]


async def set_marketing_consent(conn: aiosqlite.Connection, user_id: str, consent: bool) -> User:
    row = await fetch_one(
        conn,
        f"UPDATE users SET marketing_consent = ? WHERE user_id = ? RETURNING {USER_COLUMNS}",
        (consent, user_id),
    )
    return _user(row)


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


async def insert_refresh_token(
    conn: aiosqlite.Connection, user_id: str, family_id: str, expiry_days: int, now: datetime
) -> str:
    token = secrets.token_urlsafe(32)
    await conn.execute(
        """INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at, expires_at)
        VALUES (?, ?, ?, ?, ?)""",
        (_sha256(token), user_id, family_id, isoformat(now), (now + timedelta(days=expiry_days)).isoformat()),
    )
    return token


async def use_refresh_token(conn: aiosqlite.Connection, token: str, now: datetime) -> tuple[str, str] | None:
    """Mark a refresh token used; returns (user_id, family_id), or None when it is not valid.

    A token that was already used or revoked is a replay: its whole family is revoked.
    """
    row = await fetch_one(
        conn,
        "SELECT user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = ?",
        (_sha256(token),),
    )
    if row is None:
        return None
    if row["used_at"] or row["revoked_at"]:
        await revoke_family(conn, row["family_id"], now)
        return None
    if datetime.fromisoformat(row["expires_at"]) <= now:
        return None
    await conn.execute("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", (isoformat(now), _sha256(token)))
    return row["user_id"], row["family_id"]


async def revoke_family(conn: aiosqlite.Connection, family_id: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
        (isoformat(now), family_id),
    )


async def family_of(conn: aiosqlite.Connection, token: str) -> str | None:
    row = await fetch_one(conn, "SELECT family_id FROM refresh_tokens WHERE token_hash = ?", (_sha256(token),))
    return row["family_id"] if row else None


async def insert_api_key(conn: aiosqlite.Connection, user_id: str, name: str, now: datetime) -> CreatedApiKey:
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    created = CreatedApiKey(
        key_id=uuid.uuid4().hex, name=name, prefix=key[: len(API_KEY_PREFIX) + 6], created_at=isoformat(now), key=key
    )
    await conn.execute(
        "INSERT INTO api_keys (key_id, user_id, name, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?, ?)",
        (created.key_id, user_id, name, _sha256(key), created.prefix, created.created_at),
    )
    return created


async def list_api_keys(conn: aiosqlite.Connection, user_id: str) -> list[ApiKey]:
    rows = await fetch_all(
        conn,
        """SELECT key_id, name, prefix, created_at, last_used_at FROM api_keys
        WHERE user_id = ? ORDER BY created_at DESC""",
        (user_id,),
    )
    return [ApiKey(**dict(r)) for r in rows]


async def delete_api_key(conn: aiosqlite.Connection, user_id: str, key_id: str) -> bool:
    cursor = await conn.execute("DELETE FROM api_keys WHERE key_id = ? AND user_id = ?", (key_id, user_id))
    return cursor.rowcount == 1


async def user_for_api_key(conn: aiosqlite.Connection, key: str) -> tuple[User, str, str | None] | None:
    row = await fetch_one(
        conn,
        f"""SELECT {", ".join("u." + c.strip() for c in USER_COLUMNS.split(","))}, k.key_id, k.last_used_at
        FROM api_keys k JOIN users u USING (user_id) WHERE k.key_hash = ?""",
        (_sha256(key),),
    )
    return (_user(row), row["key_id"], row["last_used_at"]) if row else None


async def touch_api_key(conn: aiosqlite.Connection, key_id: str, now: datetime) -> None:
    await conn.execute("UPDATE api_keys SET last_used_at = ? WHERE key_id = ?", (isoformat(now), key_id))


async def insert_verification(conn: aiosqlite.Connection, user_id: str, now: datetime) -> str:
    """A new email verification token for the account; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO email_verifications (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (_sha256(token), user_id, isoformat(now), isoformat(now + VERIFY_VALID_FOR)),
    )
    return token


async def use_verification(conn: aiosqlite.Connection, token: str, now: datetime) -> bool:
    """Spend a verification token and mark its account verified; False when it is unknown, used or expired."""
    row = await fetch_one(
        conn,
        """UPDATE email_verifications SET used_at = ?
        WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING user_id""",
        (isoformat(now), _sha256(token), isoformat(now)),
    )
    if row is None:
        return False
    await conn.execute("UPDATE users SET email_verified = 1 WHERE user_id = ?", (row["user_id"],))
    return True


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- passwords and tokens ------------------------------------------------------------


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


async def password_matches(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return HASHER.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


@functools.cache
def _decoy_hash() -> str:
    return HASHER.hash(secrets.token_urlsafe(16))


def access_token(settings: Settings, user_id: str, now: datetime) -> str:
    token = Token(
        sub=user_id,
        exp=now + timedelta(minutes=settings.jwt_expiry_minutes),
        jti=uuid.uuid4().hex,
    )
    return token.encode(secret=settings.jwt_secret, algorithm="HS256")


async def issue_tokens(
    conn: aiosqlite.Connection, settings: Settings, user: User, now: datetime, family_id: str | None = None
) -> AuthResponse:
    refresh = await insert_refresh_token(
        conn, user.user_id, family_id or uuid.uuid4().hex, settings.refresh_expiry_days, now
    )
    return AuthResponse(
        access_token=access_token(settings, user.user_id, now),
        refresh_token=refresh,
        expires_in=settings.jwt_expiry_minutes * 60,
        user=user.public(),
    )


def verification_email(settings: Settings, to: str, token: str) -> EmailMessage:
    link = f"{settings.public_base_url}/verify-email?token={token}"
    hours = int(VERIFY_VALID_FOR.total_seconds() // 3600)
    text = (
        "Welcome to QR Contact.\n\n"
        f"Please confirm your email address within {hours} hours by opening this link:\n{link}\n\n"
        f"(Apps can send this code to POST /v1/auth/verify-email instead: {token})\n\n"
        "If you did not create an account, you can ignore this email.\n"
    )
    e = html.escape
    body = f"""<!doctype html>
<html><body style="font-family:system-ui,sans-serif;color:#1d2330">
<p>Welcome to QR Contact.</p>
<p>Please confirm your email address within {hours} hours:</p>
<p><a href="{e(link)}"
  style="display:inline-block;background:#1a56db;color:#fff;padding:.7em 1.2em;border-radius:.4em;text-decoration:none"
  >Confirm my email address</a></p>
<p style="color:#8a93a3;font-size:12px">If you did not create an account, you can ignore this email.</p>
</body></html>
"""
    return mail.compose(settings, to=to, subject="Confirm your email address", text=text, html=body)


# --- authentication ------------------------------------------------------------------


class ApiKeyOrJWTMiddleware(JWTAuthenticationMiddleware):
    """Litestar's bearer-JWT authentication, plus `X-API-Key` for long-lived keys.

    Litestar's JWTAuth reads one header; the spec accepts either credential, so an
    API key, when present, is checked here and the bearer path is left to Litestar.
    """

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        key = connection.headers.get("x-api-key")
        if key is None:
            return await super().authenticate_request(connection)
        db: Database = connection.app.state.db
        async with db.read() as conn:
            found = await user_for_api_key(conn, key)
        if found is None:
            raise NotAuthorizedException("invalid API key")
        user, key_id, last_used_at = found
        await record_api_key_use(db, key_id, last_used_at)
        return AuthenticationResult(user=user, auth=key_id)


async def _user_for_token(token: Token, connection: ASGIConnection) -> User | None:
    async with connection.app.state.db.read() as conn:
        return await get_user(conn, token.sub)


def jwt_auth(settings: Settings) -> JWTAuth[User, Token]:
    """Authentication for the /v1 router; handlers marked exclude_from_auth (the /auth routes) skip it."""
    return JWTAuth[User, Token](
        token_secret=settings.jwt_secret,
        algorithm="HS256",
        retrieve_user_handler=_user_for_token,
        authentication_middleware_class=ApiKeyOrJWTMiddleware,
        require_claims=["exp", "iat", "sub", "jti"],
        default_token_expiration=timedelta(minutes=settings.jwt_expiry_minutes),
    )


# --- operations ----------------------------------------------------------------------


async def register(
    db: Database, outbox: mail.Outbox, settings: Settings,
    email: str, password: str, marketing_consent: bool, invite_token: str | None,
) -> AuthResponse:
    """Create an account, queue its verification email and log it in; with a usable
    invitation token, mark that invitation converted. Raises Forbidden (registration
    closed, or an invitation needed) and Conflict (the email is taken)."""
    password_hash = await hash_password(password)
    now = datetime.now(UTC)
    async with db.write() as conn:
        # An unknown, used or expired token is ignored where registration is open, so a
        # stale link never blocks anyone; with REGISTRATION=invite it is needed.
        invitation = await sharing.usable_invitation(conn, invite_token, now) if invite_token else None
        if settings.registration != "open" and await count_users(conn) > 0:
            if settings.registration == "closed":
                raise Forbidden("registration is closed on this service")
            if invitation is None:
                raise Forbidden("registration on this service needs a valid invitation token")
        user = await insert_user(conn, email, password_hash, marketing_consent, now)
        if invitation is not None:
            await sharing.mark_converted(conn, invitation, user.user_id, now)
        token = await insert_verification(conn, user.user_id, now)
        await mail.enqueue(conn, verification_email(settings, user.email, token), kind="verification", user_id=user.user_id)
        response = await issue_tokens(conn, settings, user, now)
    outbox.wake()
    if invitation is not None:
        sharing.count_event("converted", invitation.channel)
    return response


async def verify_email(db: Database, token: str) -> None:
    """Spend an emailed verification token. Raises Invalid when it is unknown, used or expired."""
    async with db.write() as conn:
        verified = await use_verification(conn, token, datetime.now(UTC))
    if not verified:
        raise Invalid(
            "the token is not valid: unknown, already used or expired",
            errors=[{"field": "token", "message": "unknown, already used or expired", "source": "body"}],
        )


async def authenticate(db: Database, throttle: limits.LoginThrottle, email: str, password: str, client: str) -> User:
    """The account of a login. Raises Unauthenticated; the throttle raises its 429 first."""
    # Throttled per account before anything is hashed; unknown emails alike, so the
    # throttle tells nothing about which accounts exist.
    await throttle.begin(email, client)
    async with db.read() as conn:
        found = await get_login(conn, email)
    # An unknown email costs one hash too, so the answer's timing tells nothing.
    user, password_hash = found if found else (None, await asyncio.to_thread(_decoy_hash))
    if not await password_matches(password_hash, password) or user is None:
        raise Unauthenticated("wrong email or password")
    await throttle.succeeded(email, client)
    return user


async def start_session(db: Database, settings: Settings, user: User) -> AuthResponse:
    """An access token and a new refresh token family for the account."""
    async with db.write() as conn:
        return await issue_tokens(conn, settings, user, datetime.now(UTC))


async def refresh_session(db: Database, settings: Settings, refresh_token: str) -> AuthResponse:
    """Trade a refresh token for new tokens of its family. Raises Unauthenticated when it is
    invalid, expired or used (a replay revokes the family, and that is kept)."""
    now = datetime.now(UTC)
    async with db.write() as conn:
        used = await use_refresh_token(conn, refresh_token, now)
        user = await get_user(conn, used[0]) if used else None
        if used is None or user is None:
            # Raised after the transaction commits, so a replay's family revocation is kept.
            result = None
        else:
            result = await issue_tokens(conn, settings, user, now, family_id=used[1])
    if result is None:
        raise Unauthenticated("refresh token is invalid, expired or already used")
    return result


async def end_session(db: Database, refresh_token: str) -> None:
    """Revoke the refresh token's family; an unknown token changes nothing."""
    async with db.write() as conn:
        family = await family_of(conn, refresh_token)
        if family:
            await revoke_family(conn, family, datetime.now(UTC))


async def change_marketing_consent(db: Database, user_id: str, consent: bool) -> User:
    async with db.write() as conn:
        return await set_marketing_consent(conn, user_id, consent)


async def delete_account(db: Database, public_cards: PublicCards, user_id: str) -> None:
    """Delete the account and everything it owns; its cards' slugs are retired. Raises Conflict for the only admin."""
    async with db.write() as conn:
        slugs = await delete_user(conn, user_id, datetime.now(UTC))
    public_cards.forget(*slugs)


async def create_api_key(db: Database, user_id: str, name: str) -> CreatedApiKey:
    """A new API key; the key itself is in the answer only."""
    async with db.write() as conn:
        return await insert_api_key(conn, user_id, name, datetime.now(UTC))


async def record_api_key_use(db: Database, key_id: str, last_used_at: str | None) -> None:
    """Note that a key was used (its lastUsedAt); never raises: it is bookkeeping only."""
    # At most hourly, so keys in busy scripts do not queue a write per request.
    now = datetime.now(UTC)
    if last_used_at is not None and last_used_at >= (now - timedelta(hours=1)).isoformat():
        return
    try:
        async with db.write() as conn:
            await touch_api_key(conn, key_id, now)
    except sqlite3.Error as exc:
        # A full disk must not turn a read made with a key into an error.
        log.warning("could not record API key use: %s", exc)


async def revoke_api_key(db: Database, user_id: str, key_id: str) -> None:
    """Raises NotFound when the account has no such key."""
    async with db.write() as conn:
        deleted = await delete_api_key(conn, user_id, key_id)
    if not deleted:
        raise NotFound("no such API key")


# --- handlers ------------------------------------------------------------------------


@post(
    "/register", operation_id="register", summary="Create an account", status_code=201,
    responses=problems(*LIMITED, *BODY, *WRITE, 403, 409),
)
async def register_handler(
    request: Request, data: JSONBody[RegisterRequest], db: DatabaseDep, settings: SettingsDep
) -> AuthResponse:
    outbox = request.app.state.outbox
    return await register(db, outbox, settings, data.email, data.password, data.marketing_consent, data.invite_token)


@post(
    "/verify-email", operation_id="verifyEmail", summary="Confirm an email address with the emailed token", status_code=204,
    responses=problems(*LIMITED, *BODY, *WRITE),
)
async def verify_email_handler(data: JSONBody[VerifyEmailRequest], db: DatabaseDep) -> None:
    await verify_email(db, data.token)


@post(
    "/login", operation_id="login", summary="Log in with email and password", status_code=200,
    responses=problems(*AUTHENTICATED, *BODY, *WRITE),
)
async def login(request: Request, data: JSONBody[LoginRequest], db: DatabaseDep, settings: SettingsDep) -> AuthResponse:
    client = limits.client_ip(settings)(request)
    user = await authenticate(db, request.app.state.login_throttle, data.email, data.password, client)
    return await start_session(db, settings, user)


@post(
    "/refresh", operation_id="refreshTokens", summary="Trade a refresh token for new tokens", status_code=200,
    responses=problems(*AUTHENTICATED, *BODY, *WRITE),
)
async def refresh(data: JSONBody[RefreshRequest], db: DatabaseDep, settings: SettingsDep) -> AuthResponse:
    return await refresh_session(db, settings, data.refresh_token)


@post(
    "/logout", operation_id="logout", summary="Revoke a refresh token and its session", status_code=204,
    responses=problems(*LIMITED, *BODY, *WRITE),
)
async def logout(data: JSONBody[RefreshRequest], db: DatabaseDep) -> None:
    await end_session(db, data.refresh_token)


auth_router = Router(
    "/auth",
    route_handlers=[register_handler, verify_email_handler, login, refresh, logout],
    tags=["accounts"],
    opt={"exclude_from_auth": True},
)


@get("/me", operation_id="getMe", summary="The current account", responses=problems(*AUTHENTICATED))
async def get_me(request: Request[User, Any, Any]) -> PublicUser:
    return request.user.public()


@patch("/me", operation_id="updateMe", summary="Change marketing consent", responses=problems(*AUTHENTICATED, *BODY, *WRITE))
async def update_me(request: Request[User, Any, Any], data: JSONBody[UpdateMeRequest], db: DatabaseDep) -> PublicUser:
    return (await change_marketing_consent(db, request.user.user_id, data.marketing_consent)).public()


@delete(
    "/me", operation_id="deleteMe", summary="Delete the account and everything it owns", status_code=204,
    description="409 for the only admin: another account must be made admin first.",
    responses=problems(*AUTHENTICATED, *WRITE, 409),
)
async def delete_me(request: Request[User, Any, Any], db: DatabaseDep) -> None:
    await delete_account(db, request.app.state.public_cards, request.user.user_id)


@get("/me/export", operation_id="exportMe", summary="All of the account's data as JSON", responses=problems(*AUTHENTICATED))
async def export_me(request: Request[User, Any, Any], db: DatabaseDep, settings: SettingsDep) -> AccountExport:
    user = request.user
    async with db.read() as conn:
        rows = await cards.list_all_cards(conn, user.user_id)
        keys = await list_api_keys(conn, user.user_id)
        invitations = await sharing.list_user_invitations(conn, user.user_id)
        events = await stats.list_user_events(conn, user.user_id)
    return AccountExport(
        user=user.public(),
        cards=[await cards.to_response(row, request.app.state, settings) for row in rows],
        api_keys=keys,
        invitations=invitations,
        scans=events,
    )


@post(
    "/api-keys", operation_id="createApiKey", summary="Create an API key (shown once)", status_code=201,
    responses=problems(*AUTHENTICATED, *BODY, *WRITE),
)
async def create_api_key_handler(
    request: Request[User, Any, Any], data: JSONBody[CreateApiKeyRequest], db: DatabaseDep
) -> CreatedApiKey:
    return await create_api_key(db, request.user.user_id, data.name)


@get("/api-keys", operation_id="listApiKeys", summary="The account's API keys, without the keys", responses=problems(*AUTHENTICATED))
async def get_api_keys(request: Request[User, Any, Any], db: DatabaseDep) -> list[ApiKey]:
    async with db.read() as conn:
        return await list_api_keys(conn, request.user.user_id)


@delete(
    "/api-keys/{keyId:str}", operation_id="revokeApiKey", summary="Revoke an API key", status_code=204,
    responses=problems(*AUTHENTICATED, *WRITE, 400, 404),
)
async def revoke_api_key_handler(request: Request[User, Any, Any], keyId: FromPath[str], db: DatabaseDep) -> None:
    await revoke_api_key(db, request.user.user_id, keyId)


me_router = Router(
    "/",
    route_handlers=[get_me, update_me, delete_me, export_me, create_api_key_handler, get_api_keys, revoke_api_key_handler],
    tags=["accounts"],
)


# --- the page the verification email links to ----------------------------------------
# A GET only shows a button: mail scanners fetch links, and must not verify anything.
# The button posts the token back as a form.

VERIFY_STYLE = pages.PAGE_STYLE + "\nbutton.save{border:0;width:100%;font:inherit;font-weight:600;cursor:pointer}"
_VERIFY_STYLE_HASH = base64.b64encode(hashlib.sha256(VERIFY_STYLE.encode()).digest()).decode()
VERIFY_HEADERS = {
    **pages.PAGE_HEADERS,
    "Content-Security-Policy": (
        f"default-src 'none'; style-src 'sha256-{_VERIFY_STYLE_HASH}'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
}


def _verify_page(status: int, title: str, text: str, token: str | None = None) -> Response[str]:
    e = html.escape
    form = (
        f'<form method="post" action="/verify-email"><input type="hidden" name="token" value="{e(token)}">'
        '<button class="save" type="submit">Confirm my email address</button></form>'
        if token
        else ""
    )
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1"><meta name="robots" content="noindex">'
        f"<title>{e(title)}</title><style>{VERIFY_STYLE}</style></head><body><main><div class=\"card\">"
        f'<h1>{e(title)}</h1><p class="role">{e(text)}</p>{form}</div>'
        '<footer><a href="/app/cards">Go to QR Contact</a></footer></main></body></html>'
    )
    return Response(body, status_code=status, media_type="text/html", headers=VERIFY_HEADERS)


@get(
    "/verify-email", operation_id="verifyEmailPage", summary="The page the verification email links to", tags=["public"],
    operation_class=media_types(200, {"text/html": TEXT}), responses={**problems(422), 400: HTML_PAGE},
)
async def verify_email_page(token: Annotated[str, QueryParameter(max_length=64)] = "") -> Response[str]:
    if not re.fullmatch(VERIFY_TOKEN, token):
        return _verify_page(400, "Link not valid", "This confirmation link is incomplete. Open it from the email again.")
    return _verify_page(200, "Confirm your email", "One click and your email address is confirmed.", token)


@post(
    "/verify-email", operation_id="verifyEmailForm", summary="The verification page's form", tags=["public"], status_code=200,
    operation_class=media_types(200, {"text/html": TEXT}), responses={**problems(*BODY, *WRITE), 400: HTML_PAGE},
)
async def verify_email_form(
    data: Annotated[VerifyEmailForm, Body(media_type=RequestEncodingType.URL_ENCODED)], db: DatabaseDep
) -> Response[str]:
    verified = False
    if re.fullmatch(VERIFY_TOKEN, data.token):
        with contextlib.suppress(Invalid):
            await verify_email(db, data.token)
            verified = True
    if not verified:
        return _verify_page(400, "Link not valid", "This link was already used or has expired.")
    return _verify_page(200, "Email confirmed", "Thank you: your email address is confirmed.")


public_handlers = [verify_email_page, verify_email_form]
