"""Passwords: the change (knowing the current one) and the reset of a forgotten one by a
single-use emailed link. Both end the account's other sessions.

A reset request answers the same whether or not the address has an account, and as fast:
both doors answer before looking the address up (`reset_after_the_answer`), so the time
of the answer cannot tell an account's address from an unknown one (the lookup, the row
and the queued email take about twice as long for an account).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Annotated, Any

import aiosqlite
import msgspec
from litestar import Request, Response, post
from litestar.background_tasks import BackgroundTask
from litestar.params import JSONBody

from app import mail
from app.accounts.emails import link_email
from app.accounts.hashing import hash_password, password_matches
from app.accounts.sessions import revoke_sessions
from app.accounts.users import User, get_login, get_password_hash, set_password_hash
from app.api.problems import AUTHENTICATED, BODY, ERRORS, LIMITED, WRITE, problems
from app.config import Settings, SettingsDep
from app.db import Database, DatabaseDep, fetch_one, isoformat
from app.errors import Invalid
from app.fields import Email, LinkToken, Password
from app.tokens import new_token, token_hash

log = logging.getLogger("app.accounts")
RESET_VALID_FOR = timedelta(hours=1)
# Reset emails one account can be sent per RESET_VALID_FOR: enough for a lost email,
# too few to fill someone's mailbox by asking again and again.
RESETS_PER_HOUR = 3

# --- structs -------------------------------------------------------------------------


class ChangePasswordRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    current_password: Annotated[str, msgspec.Meta(max_length=1024)]
    new_password: Password


class PasswordResetRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    email: Email


class PasswordResetAccepted(msgspec.Struct, rename="camel"):
    detail: str = "if an account has this address, a link to choose a new password is on its way"


class PasswordResetConfirmRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    token: LinkToken
    new_password: Password


# --- SQL -----------------------------------------------------------------------------


async def insert_password_reset(conn: aiosqlite.Connection, user_id: str, now: datetime) -> str | None:
    """A new reset token for the account, or None when it was sent RESETS_PER_HOUR already."""
    recent = await fetch_one(
        conn,
        "SELECT count(*) AS n FROM password_resets WHERE user_id = ? AND created_at > ?",
        (user_id, isoformat(now - RESET_VALID_FOR)),
    )
    if recent["n"] >= RESETS_PER_HOUR:
        return None
    token = new_token()
    await conn.execute(
        "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (token_hash(token), user_id, isoformat(now), isoformat(now + RESET_VALID_FOR)),
    )
    return token


async def use_password_reset(conn: aiosqlite.Connection, token: str, now: datetime) -> str | None:
    """Spend a reset token; returns its account, None when it is unknown, used, expired or
    the account is deactivated. The account's other reset links are spent with it."""
    row = await fetch_one(
        conn,
        """UPDATE password_resets SET used_at = :now
        WHERE token_hash = :hash AND used_at IS NULL AND expires_at > :now
        AND user_id IN (SELECT user_id FROM users WHERE deactivated_at IS NULL)
        RETURNING user_id""",
        {"now": isoformat(now), "hash": token_hash(token)},
    )
    if row is None:
        return None
    await conn.execute(
        "UPDATE password_resets SET used_at = ? WHERE user_id = ? AND used_at IS NULL", (isoformat(now), row["user_id"])
    )
    return row["user_id"]


async def password_reset_is_usable(conn: aiosqlite.Connection, token: str, now: datetime) -> bool:
    """Whether the reset token would be accepted now (what use_password_reset checks), without spending it."""
    row = await fetch_one(
        conn,
        """SELECT 1 FROM password_resets
        WHERE token_hash = :hash AND used_at IS NULL AND expires_at > :now
        AND user_id IN (SELECT user_id FROM users WHERE deactivated_at IS NULL)""",
        {"now": isoformat(now), "hash": token_hash(token)},
    )
    return row is not None


# --- the email -----------------------------------------------------------------------


def password_reset_email(settings: Settings, to: str, token: str):
    minutes = int(RESET_VALID_FOR.total_seconds() // 60)
    return link_email(
        settings,
        to=to,
        subject="Choose a new password",
        lines=[
            "Someone (we hope you) asked to choose a new password for your QR Contact account.",
            f"The link works once, within {minutes} minutes:",
        ],
        link=f"{settings.public_base_url}/app/password-reset/{token}",
        button="Choose a new password",
        footer="If you did not ask for this, you can ignore this email: your password stays as it is.",
    )


# --- operations ----------------------------------------------------------------------


async def change_password(
    db: Database, user_id: str, current_password: str, new_password: str,
    keep_web_session_hash: str | None = None, keep_refresh_family: str | None = None,
) -> None:
    """Set a new password and end every other session of the account (console sessions
    and refresh token families, but for the ones to keep); API keys stay. Raises Invalid
    when the current password is wrong (naming the field currentPassword)."""
    async with db.read() as conn:
        password_hash = await get_password_hash(conn, user_id)
    if not await password_matches(password_hash, current_password):
        raise Invalid(
            "the current password is not right",
            errors=[{"field": "currentPassword", "message": "is not the account's password", "source": "body"}],
        )
    new_hash = await hash_password(new_password)
    async with db.write() as tx:
        await set_password_hash(tx.conn, user_id, new_hash)
        await revoke_sessions(tx.conn, user_id, tx.now, keep_web_session_hash, keep_refresh_family)


async def request_password_reset(db: Database, outbox: mail.Outbox, settings: Settings, email: str) -> None:
    """Email a single-use link (1 hour) to choose a new password, if an active account has
    this address; nothing tells whether one has. Never raises for an unknown address."""
    async with db.write() as tx:
        found = await get_login(tx.conn, email)
        user = found[0] if found else None
        token = None
        if user is not None and user.deactivated_at is None:
            token = await insert_password_reset(tx.conn, user.user_id, tx.now)
        if user is not None and token is not None:
            message = password_reset_email(settings, user.email, token)
            await mail.enqueue(tx, outbox, message, kind="password_reset", user_id=user.user_id)


def reset_after_the_answer(db: Database, outbox: mail.Outbox, settings: Settings, email: str) -> BackgroundTask:
    """request_password_reset as a task to run once the answer is sent (the `background` of
    the response): the answer then waits for nothing that depends on the address."""
    return BackgroundTask(_request_password_reset_unwatched, db, outbox, settings, email)


async def _request_password_reset_unwatched(db: Database, outbox: mail.Outbox, settings: Settings, email: str) -> None:
    try:
        await request_password_reset(db, outbox, settings, email)
    except Exception as exc:
        # Nobody waits for it any more: the log and errors_total say it failed (a full disk,
        # the database locked), and the person asks for another link.
        log.error("password reset not queued", exc_info=exc)
        ERRORS.labels("unhandled").inc()


async def confirm_password_reset(db: Database, token: str, new_password: str) -> None:
    """Spend a reset link's token and set the new password; every session of the account
    ends (console sessions and refresh token families). Raises Invalid when the token is
    unknown, used or expired."""
    new_hash = await hash_password(new_password)
    async with db.write() as tx:
        user_id = await use_password_reset(tx.conn, token, tx.now)
        if user_id is not None:
            await set_password_hash(tx.conn, user_id, new_hash)
            # The link reached the address, so it is proven as a verification link would.
            await tx.conn.execute("UPDATE users SET email_verified = 1 WHERE user_id = ?", (user_id,))
            await revoke_sessions(tx.conn, user_id, tx.now)
    if user_id is None:
        raise Invalid(
            "the link is not valid: unknown, already used or expired",
            errors=[{"field": "token", "message": "unknown, already used or expired", "source": "body"}],
        )


async def reset_link_is_usable(db: Database, token: str) -> bool:
    """Whether a reset link still works (unused, unexpired, its account active): the console
    says so before asking for a new password. Never raises."""
    async with db.read() as conn:
        return await password_reset_is_usable(conn, token, db.now())


# --- handlers ------------------------------------------------------------------------


@post(
    "/auth/password", operation_id="changePassword", status_code=204,
    summary="Change the password (422 when currentPassword is wrong)",
    description=(
        "Revokes every refresh token family of the account and its console sessions; API keys stay. "
        "A bearer access token belongs to no family, so the caller's refresh tokens are revoked too: "
        "log in again for new ones (the access token works until it expires)."
    ),
    responses=problems(*AUTHENTICATED, *BODY, *WRITE),
)
async def change_password_handler(
    request: Request[User, Any, Any], data: JSONBody[ChangePasswordRequest], db: DatabaseDep
) -> None:
    await change_password(db, request.user.user_id, data.current_password, data.new_password)


@post(
    "/password-reset", operation_id="requestPasswordReset", status_code=202,
    summary="Email a link to choose a new password (the same answer for any address)",
    description=(
        "The link is single-use and valid for 1 hour; at most 3 are sent per account and hour. "
        "The answer comes before the address is looked up, so it is the same, and as fast, for any address."
    ),
    responses=problems(*LIMITED, *BODY),
)
async def request_password_reset_handler(
    request: Request, data: JSONBody[PasswordResetRequest], db: DatabaseDep, settings: SettingsDep
) -> Response[PasswordResetAccepted]:
    work = reset_after_the_answer(db, request.app.state.outbox, settings, data.email)
    return Response(PasswordResetAccepted(), status_code=202, background=work)


@post(
    "/password-reset/confirm", operation_id="confirmPasswordReset", status_code=204,
    summary="Choose a new password with the emailed token; ends every session of the account",
    responses=problems(*LIMITED, *BODY, *WRITE),
)
async def confirm_password_reset_handler(data: JSONBody[PasswordResetConfirmRequest], db: DatabaseDep) -> None:
    await confirm_password_reset(db, data.token, data.new_password)


# Under /v1/auth, without credentials; the change needs them and is mounted with /v1/me.
public_handlers = [request_password_reset_handler, confirm_password_reset_handler]
handlers = [change_password_handler]
