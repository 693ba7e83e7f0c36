"""Sessions of the API: login, short-lived access tokens, rotating refresh token families,
logout, and the authentication middleware that accepts a bearer JWT or an API key.

Access tokens are HS256 JWTs (Litestar's Token, algorithm pinned on decode). A login
starts a refresh token family; each refresh spends its token and issues the next of the
same family, and a replayed spent token revokes the whole family.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated

import aiosqlite
import msgspec
from litestar import Request, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AuthenticationResult
from litestar.params import JSONBody
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

from app.accounts import api_keys
from app.accounts.hashing import password_matches
from app.accounts.users import PublicUser, User, get_login, get_user
from app.api import limits
from app.api.problems import AUTHENTICATED, BODY, LIMITED, WRITE, problems
from app.config import Settings, SettingsDep
from app.db import Database, DatabaseDep, fetch_one, isoformat
from app.errors import Unauthenticated
from app.fields import Email
from app.tokens import new_token, token_hash

# --- structs -------------------------------------------------------------------------


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


# --- SQL -----------------------------------------------------------------------------


async def insert_refresh_token(
    conn: aiosqlite.Connection, user_id: str, family_id: str, expiry_days: int, now: datetime
) -> str:
    token = new_token()
    await conn.execute(
        """INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at, expires_at)
        VALUES (?, ?, ?, ?, ?)""",
        (token_hash(token), user_id, family_id, isoformat(now), isoformat(now + timedelta(days=expiry_days))),
    )
    return token


async def use_refresh_token(conn: aiosqlite.Connection, token: str, now: datetime) -> tuple[str, str] | None:
    """Mark a refresh token used; returns (user_id, family_id), or None when it is not valid.

    A token that was already used or revoked is a replay: its whole family is revoked.
    """
    row = await fetch_one(
        conn,
        "SELECT user_id, family_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = ?",
        (token_hash(token),),
    )
    if row is None:
        return None
    if row["used_at"] or row["revoked_at"]:
        await revoke_family(conn, row["family_id"], now)
        return None
    if datetime.fromisoformat(row["expires_at"]) <= now:
        return None
    await conn.execute("UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ?", (isoformat(now), token_hash(token)))
    return row["user_id"], row["family_id"]


async def revoke_family(conn: aiosqlite.Connection, family_id: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE refresh_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL",
        (isoformat(now), family_id),
    )


async def revoke_sessions(
    conn: aiosqlite.Connection, user_id: str, now: datetime,
    keep_web_session_hash: str | None = None, keep_refresh_family: str | None = None,
) -> None:
    """End the account's sessions: delete its console sessions and revoke its refresh token
    families, but for the one of each the caller keeps. API keys are not sessions: they stay."""
    await conn.execute(
        "DELETE FROM web_sessions WHERE user_id = ? AND token_hash IS NOT ?", (user_id, keep_web_session_hash)
    )
    await conn.execute(
        """UPDATE refresh_tokens SET revoked_at = ?
        WHERE user_id = ? AND revoked_at IS NULL AND family_id IS NOT ?""",
        (isoformat(now), user_id, keep_refresh_family),
    )


async def set_last_login(conn: aiosqlite.Connection, user_id: str, now: datetime) -> None:
    await conn.execute("UPDATE users SET last_login_at = ? WHERE user_id = ?", (isoformat(now), user_id))


async def family_of(conn: aiosqlite.Connection, token: str) -> str | None:
    row = await fetch_one(conn, "SELECT family_id FROM refresh_tokens WHERE token_hash = ?", (token_hash(token),))
    return row["family_id"] if row else None


# --- tokens --------------------------------------------------------------------------


def access_token(settings: Settings, user: User) -> str:
    """A JWT for the account, carrying its token version (Litestar puts it under `extras`).

    Dated by the real clock, not the transaction's: Litestar checks `iat` and `exp` against
    it, and `exp` is counted from the very `iat` the token carries (counted from the
    transaction's start, a second boundary in between made a 15-minute token 899 s long)."""
    issued_at = datetime.now(UTC)
    token = Token(
        sub=user.user_id,
        iat=issued_at,
        exp=issued_at + timedelta(minutes=settings.jwt_expiry_minutes),
        jti=uuid.uuid4().hex,
        extras={"ver": user.token_version},
    )
    return token.encode(secret=settings.jwt_secret, algorithm="HS256")


def issued_before_deactivation(token: Token, user: User) -> bool:
    """Whether the access token was issued before the account's last deactivation: its
    version is behind the account's (a token without one counts as version 0)."""
    return token.extras.get("ver", 0) < user.token_version


async def issue_tokens(
    conn: aiosqlite.Connection, settings: Settings, user: User, now: datetime, family_id: str | None = None
) -> AuthResponse:
    refresh = await insert_refresh_token(
        conn, user.user_id, family_id or uuid.uuid4().hex, settings.refresh_expiry_days, now
    )
    return AuthResponse(
        access_token=access_token(settings, user),
        refresh_token=refresh,
        expires_in=settings.jwt_expiry_minutes * 60,
        user=user.public(),
    )


# --- authentication ------------------------------------------------------------------


# The claims every access token carries (access_token); one without any of them is refused.
REQUIRED_CLAIMS = ["exp", "iat", "sub", "jti"]
# JWTAuth's own secret is never used: the middleware decodes with the app's JWT_SECRET.
SECRET_FROM_STATE = "read from app.state.settings at each request"


class ApiKeyOrJWTMiddleware(JWTAuthenticationMiddleware):
    """Litestar's bearer-JWT authentication, plus `X-API-Key` for long-lived keys.

    Litestar's JWTAuth reads one header; the spec accepts either credential, so an
    API key, when present, is checked here; a bearer token is checked as Litestar does,
    with the secret of the app's settings.
    """

    async def authenticate_token(self, encoded_token: str, connection: ASGIConnection) -> AuthenticationResult:
        """Litestar's check of a bearer token, with the secret of the app's settings."""
        token = self.token_cls.decode(
            encoded_token, secret=connection.app.state.settings.jwt_secret, algorithm=self.algorithm,
            audience=self.token_audience, issuer=self.token_issuer, require_claims=self.require_claims,
            verify_exp=self.verify_expiry, verify_nbf=self.verify_not_before, strict_audience=self.strict_audience,
        )
        user = await self.retrieve_user_handler(token, connection)
        if not user or (self.revoked_token_handler and await self.revoked_token_handler(token, connection)):
            raise NotAuthorizedException()
        return AuthenticationResult(user=user, auth=token)

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:
        key = connection.headers.get("x-api-key")
        if key is None:
            return await super().authenticate_request(connection)
        db: Database = connection.app.state.db
        async with db.read() as conn:
            found = await api_keys.user_for_api_key(conn, key)
        if found is None or found[0].deactivated_at is not None:
            raise NotAuthorizedException("invalid API key")
        user, key_id, last_used_at = found
        await api_keys.record_api_key_use(db, key_id, last_used_at)
        return AuthenticationResult(user=user, auth=key_id)


async def _user_for_token(token: Token, connection: ASGIConnection) -> User | None:
    # The row is read on every request anyway, so a deactivation refuses tokens still valid,
    # and those issued before it stay refused after a reactivation.
    async with connection.app.state.db.read() as conn:
        user = await get_user(conn, token.sub)
    if user is None or user.deactivated_at is not None or issued_before_deactivation(token, user):
        return None
    return user


def jwt_auth() -> JWTAuth[User, Token]:
    """Authentication for the /v1 router; handlers marked exclude_from_auth (the /auth routes)
    skip it. The secret is the app's JWT_SECRET, read at each request (ApiKeyOrJWTMiddleware)."""
    return JWTAuth[User, Token](
        token_secret=SECRET_FROM_STATE,
        algorithm="HS256",
        retrieve_user_handler=_user_for_token,
        authentication_middleware_class=ApiKeyOrJWTMiddleware,
        require_claims=REQUIRED_CLAIMS,
    )


# --- operations ----------------------------------------------------------------------


async def authenticate(db: Database, throttle: limits.LoginThrottle, email: str, password: str, client: str) -> User:
    """The account of a login, its last login noted (for the API's and the console's logins
    alike). Raises Limited (the throttle, before anything is hashed) and Unauthenticated
    (unknown email, wrong password, or a deactivated account: the same answer)."""
    # Throttled per account before anything is hashed; unknown emails alike, so the
    # throttle tells nothing about which accounts exist.
    await throttle.begin(email, client)
    async with db.read() as conn:
        found = await get_login(conn, email)
    # An unknown email costs one hash too, so the answer's timing tells nothing.
    user, password_hash = found if found else (None, None)
    if not await password_matches(password_hash, password) or user is None or user.deactivated_at is not None:
        raise Unauthenticated("wrong email or password")
    await throttle.succeeded(email, client)
    async with db.write() as tx:
        await set_last_login(tx.conn, user.user_id, tx.now)
    user.last_login_at = tx.now_text
    return user


async def start_session(db: Database, settings: Settings, user: User) -> AuthResponse:
    """An access token and a new refresh token family for the account."""
    async with db.write() as tx:
        return await issue_tokens(tx.conn, settings, user, tx.now)


async def refresh_session(db: Database, settings: Settings, refresh_token: str) -> AuthResponse:
    """Trade a refresh token for new tokens of its family. Raises Unauthenticated when it is
    invalid, expired or used (a replay revokes the family, and that is kept)."""
    async with db.write() as tx:
        used = await use_refresh_token(tx.conn, refresh_token, tx.now)
        user = await get_user(tx.conn, used[0]) if used else None
        if used is None or user is None or user.deactivated_at is not None:
            # Raised after the transaction commits, so a replay's family revocation is kept.
            result = None
        else:
            result = await issue_tokens(tx.conn, settings, user, tx.now, family_id=used[1])
    if result is None:
        raise Unauthenticated("refresh token is invalid, expired or already used")
    return result


async def end_session(db: Database, refresh_token: str) -> None:
    """Revoke the refresh token's family; an unknown token changes nothing."""
    async with db.write() as tx:
        family = await family_of(tx.conn, refresh_token)
        if family:
            await revoke_family(tx.conn, family, tx.now)


# --- handlers ------------------------------------------------------------------------


@post(
    "/login", operation_id="login", summary="Log in with email and password", status_code=200,
    responses=problems(*AUTHENTICATED, *BODY, *WRITE),
)
async def login(request: Request, data: JSONBody[LoginRequest], db: DatabaseDep, settings: SettingsDep) -> AuthResponse:
    client = limits.client_ip(request)
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


handlers = [login, refresh, logout]
