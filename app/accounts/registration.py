"""Registration: a new account under the service's REGISTRATION policy, its verification
email queued in the same transaction; with a sharing `inviteToken` it also marks that
invitation converted (app.sharing).
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from litestar import Request, post
from litestar.params import JSONBody

from app import mail, sharing
from app.accounts.emails import insert_verification, verification_email
from app.accounts.hashing import hash_password
from app.accounts.sessions import AuthResponse, issue_tokens
from app.accounts.users import count_users, insert_user
from app.config import Settings, SettingsDep
from app.db import Database, DatabaseDep
from app.domain_errors import Forbidden
from app.errors import BODY, LIMITED, WRITE, problems
from app.fields import Email, InviteToken, Password


class RegisterRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    email: Email
    password: Password
    marketing_consent: bool
    invite_token: InviteToken | None = None


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


@post(
    "/register", operation_id="register", summary="Create an account", status_code=201,
    responses=problems(*LIMITED, *BODY, *WRITE, 403, 409),
)
async def register_handler(
    request: Request, data: JSONBody[RegisterRequest], db: DatabaseDep, settings: SettingsDep
) -> AuthResponse:
    outbox = request.app.state.outbox
    return await register(db, outbox, settings, data.email, data.password, data.marketing_consent, data.invite_token)


handlers = [register_handler]
