"""Email addresses proven by a link: the verification sent on registration with the page
that link opens (a GET shows a button; the form posts the token back), and the change of
address, confirmed by a link sent to the new one.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Annotated

import aiosqlite
import msgspec
from litestar import Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, JSONBody, QueryParameter

from app import mail
from app.accounts.hashing import password_matches
from app.accounts.users import USER_COLUMNS, User, email_taken, get_password_hash, get_user, user_of
from app.api.openapi import HTML_PAGE, TEXT, media_types
from app.api.problems import BODY, LIMITED, WRITE, problems
from app.config import Settings
from app.db import Database, DatabaseDep, fetch_one, isoformat
from app.errors import Conflict, Invalid, Limited, NotFound
from app.public import pages
from app.tokens import new_token, token_hash

VERIFY_VALID_FOR = timedelta(hours=48)
# Verification emails an account may ask for again in an hour (the one at registration counts).
VERIFICATIONS_PER_HOUR = 3
EMAIL_CHANGE_VALID_FOR = timedelta(hours=24)
VERIFY_TOKEN = r"^[A-Za-z0-9_-]{32,64}$"

# --- structs -------------------------------------------------------------------------


class VerifyEmailRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    token: Annotated[str, msgspec.Meta(max_length=64)]


class VerifyEmailForm(msgspec.Struct):
    token: Annotated[str, msgspec.Meta(max_length=64)] = ""


# --- SQL -----------------------------------------------------------------------------


async def insert_verification(conn: aiosqlite.Connection, user_id: str, now: datetime) -> str:
    """A new email verification token for the account; only its hash is stored."""
    token = new_token()
    await conn.execute(
        "INSERT INTO email_verifications (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (token_hash(token), user_id, isoformat(now), isoformat(now + VERIFY_VALID_FOR)),
    )
    return token


async def use_verification(conn: aiosqlite.Connection, token: str, now: datetime) -> bool:
    """Spend a verification token and mark its account verified; False when it is unknown, used or expired."""
    row = await fetch_one(
        conn,
        """UPDATE email_verifications SET used_at = ?
        WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING user_id""",
        (isoformat(now), token_hash(token), isoformat(now)),
    )
    if row is None:
        return False
    await conn.execute("UPDATE users SET email_verified = 1 WHERE user_id = ?", (row["user_id"],))
    return True


async def insert_email_change(conn: aiosqlite.Connection, user_id: str, new_email: str, now: datetime) -> str:
    token = new_token()
    await conn.execute(
        "INSERT INTO email_changes (token_hash, user_id, new_email, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        (token_hash(token), user_id, new_email, isoformat(now), isoformat(now + EMAIL_CHANGE_VALID_FOR)),
    )
    return token


async def use_email_change(conn: aiosqlite.Connection, token: str, user_id: str, now: datetime) -> str | None:
    """Spend the account's email change token; returns the new address, None when the token is
    unknown, used, expired or another account's."""
    row = await fetch_one(
        conn,
        """UPDATE email_changes SET used_at = :now
        WHERE token_hash = :hash AND user_id = :user_id AND used_at IS NULL AND expires_at > :now
        RETURNING new_email""",
        {"now": isoformat(now), "hash": token_hash(token), "user_id": user_id},
    )
    return row["new_email"] if row else None


async def pending_email_change(conn: aiosqlite.Connection, token: str, user_id: str, now: datetime) -> str | None:
    """The new address the account's unspent token would set (what use_email_change checks), or None."""
    row = await fetch_one(
        conn,
        """SELECT new_email FROM email_changes
        WHERE token_hash = :hash AND user_id = :user_id AND used_at IS NULL AND expires_at > :now""",
        {"now": isoformat(now), "hash": token_hash(token), "user_id": user_id},
    )
    return row["new_email"] if row else None


# --- the email -----------------------------------------------------------------------


def verification_email(settings: Settings, to: str, token: str) -> EmailMessage:
    link = f"{settings.public_base_url}/verify-email?token={token}"
    hours = int(VERIFY_VALID_FOR.total_seconds() // 3600)
    text = (
        "Welcome to QR Contact.\n\n"
        f"Please confirm your email address within {hours} hours by opening this link:\n{link}\n\n"
        f"(Apps can send this code to POST /v1/auth/verify-email instead: {token})\n\n"
        "If you did not create an account, you can ignore this email.\n"
    )
    body = mail.render_html(
        "link.html",
        lines=["Welcome to QR Contact.", f"Please confirm your email address within {hours} hours:"],
        link=link,
        button="Confirm my email address",
        footer="If you did not create an account, you can ignore this email.",
    )
    return mail.compose(settings, to=to, subject="Confirm your email address", text=text, html=body)


def link_email(
    settings: Settings, *, to: str, subject: str, lines: list[str], link: str, button: str, footer: str
) -> EmailMessage:
    """An email whose point is one link: the lines of text, the link (a button in HTML), a footer."""
    text = "\n\n".join([*lines, link, footer]) + "\n"
    body = mail.render_html("link.html", lines=lines, link=link, button=button, footer=footer)
    return mail.compose(settings, to=to, subject=subject, text=text, html=body)


def email_change_email(settings: Settings, to: str, token: str) -> EmailMessage:
    hours = int(EMAIL_CHANGE_VALID_FOR.total_seconds() // 3600)
    return link_email(
        settings,
        to=to,
        subject="Confirm your new email address",
        lines=[
            "Someone (we hope you) asked to use this address for their QR Contact account.",
            f"Confirm it within {hours} hours, logged in to that account:",
        ],
        link=f"{settings.public_base_url}/app/account/email/{token}",
        button="Use this address",
        footer="If you did not ask for this, you can ignore this email: nothing changes.",
    )


# --- operations ----------------------------------------------------------------------


async def verify_email(db: Database, token: str) -> None:
    """Spend an emailed verification token. Raises Invalid when it is unknown, used or expired."""
    async with db.write() as tx:
        verified = await use_verification(tx.conn, token, tx.now)
    if not verified:
        raise Invalid(
            "the token is not valid: unknown, already used or expired",
            errors=[{"field": "token", "message": "unknown, already used or expired", "source": "body"}],
        )


async def resend_verification(db: Database, outbox: mail.Outbox, settings: Settings, user_id: str) -> None:
    """Email the account a new verification link (an expired or lost one otherwise leaves it
    unconfirmed for good). Raises Conflict (already confirmed) and Limited (past
    VERIFICATIONS_PER_HOUR in the last hour)."""
    async with db.write() as tx:
        conn, now = tx.conn, tx.now
        user = await get_user(conn, user_id)
        if user is None:
            raise NotFound("no such account")
        if user.email_verified:
            raise Conflict("the address is confirmed already")
        recent = await fetch_one(
            conn, "SELECT count(*) AS n, min(created_at) AS first FROM email_verifications WHERE user_id = ? AND created_at > ?",
            (user_id, isoformat(now - timedelta(hours=1))),
        )
        if recent["n"] >= VERIFICATIONS_PER_HOUR:
            wait = datetime.fromisoformat(recent["first"]) + timedelta(hours=1) - now
            raise Limited("a confirmation email was sent several times this hour", retry_after=max(1, int(wait.total_seconds())))
        token = await insert_verification(conn, user_id, now)
        await mail.enqueue(tx, outbox, verification_email(settings, user.email, token), kind="verification", user_id=user_id)


async def request_email_change(
    db: Database, outbox: mail.Outbox, settings: Settings, user_id: str, new_email: str, password: str
) -> None:
    """Email a link to the new address; the account's address changes when it is confirmed.
    Raises Invalid (wrong password, or the account's own address) and Conflict (the address
    belongs to another account)."""
    async with db.read() as conn:
        password_hash = await get_password_hash(conn, user_id)
    if not await password_matches(password_hash, password):
        raise Invalid(
            "the password is not right",
            errors=[{"field": "password", "message": "is not the account's password", "source": "body"}],
        )
    async with db.write() as tx:
        conn, now = tx.conn, tx.now
        user = await get_user(conn, user_id)
        if user is None:
            raise NotFound("no such account")
        if user.email.casefold() == new_email.casefold():
            raise Invalid(
                "that is already the account's address",
                errors=[{"field": "newEmail", "message": "is the account's address already", "source": "body"}],
            )
        if await email_taken(conn, new_email):
            raise Conflict("an account with this email already exists")
        token = await insert_email_change(conn, user_id, new_email, now)
        await mail.enqueue(tx, outbox, email_change_email(settings, new_email, token), kind="email_change", user_id=user_id)


async def email_change_of(db: Database, token: str, user_id: str) -> str | None:
    """The address a change link would give the account, None when the link would be refused
    (unknown, used, expired or another account's): the console names it before the click. Never raises."""
    async with db.read() as conn:
        return await pending_email_change(conn, token, user_id, db.now())


async def confirm_email_change(db: Database, token: str, user_id: str) -> User:
    """Spend the link's token: the account takes the new address, now verified. The token must
    be the caller's own (a mistyped address's owner cannot take the account over). Raises
    Invalid (unknown, used, expired or another account's token) and Conflict (the address was
    taken meanwhile)."""
    async with db.write() as tx:
        conn, now = tx.conn, tx.now
        new_email = await use_email_change(conn, token, user_id, now)
        if new_email is None:
            raise Invalid(
                "the link is not valid: unknown, already used, expired or for another account",
                errors=[{"field": "token", "message": "unknown, already used or expired", "source": "body"}],
            )
        if await email_taken(conn, new_email):
            raise Conflict("an account with this email already exists")
        row = await fetch_one(
            conn,
            f"UPDATE users SET email = ?, email_verified = 1 WHERE user_id = ? RETURNING {USER_COLUMNS}",
            (new_email, user_id),
        )
    return user_of(row)


# --- handlers ------------------------------------------------------------------------


@post(
    "/verify-email", operation_id="verifyEmail", summary="Confirm an email address with the emailed token", status_code=204,
    responses=problems(*LIMITED, *BODY, *WRITE),
)
async def verify_email_handler(data: JSONBody[VerifyEmailRequest], db: DatabaseDep) -> None:
    await verify_email(db, data.token)


# --- the page the verification email links to ----------------------------------------
# A GET only shows a button: mail scanners fetch links, and must not verify anything.
# The button posts the token back as a form.

VERIFY_STYLE = pages.TEMPLATES.get_template("verify_email.css").render().strip()
VERIFY_HEADERS = {
    **pages.PAGE_HEADERS,
    "Content-Security-Policy": (
        f"default-src 'none'; style-src {pages.style_source(VERIFY_STYLE)}; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
}


def _verify_page(status: int, title: str, text: str, token: str | None = None) -> Response[str]:
    body = pages.TEMPLATES.get_template("verify_email.html").render(title=title, text=text, token=token, style=VERIFY_STYLE)
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
