"""Registration: a new account under the service's REGISTRATION policy, its verification
email queued in the same transaction.

An `inviteToken` is either a card share's invitation (app.sharing.sharing: the registration marks
it converted) or a team admin's invitation (app.accounts.team: single-use, for the invited
address only, which it proves, so no verification email is sent). With REGISTRATION=invite
either kind lets its holder in; with `closed` only a team invitation does: the admin chose
that person, while a card's invitation goes to whoever its sender liked.
"""

from __future__ import annotations

import msgspec
from litestar import Request, post
from litestar.params import JSONBody

from app import mail
from app.accounts import imports, team
from app.accounts.emails import insert_verification, verification_email
from app.accounts.hashing import hash_password
from app.accounts.sessions import AuthResponse, issue_tokens
from app.accounts.users import User, count_users, insert_user
from app.api.problems import BODY, LIMITED, WRITE, problems
from app.config import Settings, SettingsDep
from app.db import Database, DatabaseDep, Tx
from app.errors import Forbidden
from app.fields import Email, InviteToken, Password
from app.public.card_cache import PublicCards
from app.sharing import sharing


class RegisterRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    email: Email
    password: Password
    marketing_consent: bool
    invite_token: InviteToken | None = None


async def create_account(
    db: Database, outbox: mail.Outbox, public_cards: PublicCards, settings: Settings,
    email: str, password: str, marketing_consent: bool, invite_token: str | None = None,
) -> User:
    """Create an account under the REGISTRATION policy; queue its verification email unless a
    team invitation proved the address; spend the invitation token (a team invitation's
    account takes the cards imported for its address). Raises Forbidden
    (registration closed, or an invitation needed) and Conflict (the email is taken)."""
    password_hash = await hash_password(password)
    async with db.write() as tx:
        return await _insert_account(tx, outbox, public_cards, settings, email, password_hash, marketing_consent, invite_token)


async def register(
    db: Database, outbox: mail.Outbox, public_cards: PublicCards, settings: Settings,
    email: str, password: str, marketing_consent: bool, invite_token: str | None,
) -> AuthResponse:
    """create_account, and log the account in (tokens of a new refresh family) in the same
    transaction. Raises as create_account."""
    password_hash = await hash_password(password)
    async with db.write() as tx:
        user = await _insert_account(tx, outbox, public_cards, settings, email, password_hash, marketing_consent, invite_token)
        return await issue_tokens(tx.conn, settings, user, tx.now)


async def _insert_account(
    tx: Tx, outbox: mail.Outbox, public_cards: PublicCards, settings: Settings,
    email: str, password_hash: str, marketing_consent: bool, invite_token: str | None,
) -> User:
    conn, now = tx.conn, tx.now
    # An unknown, used or expired token is ignored where registration is open, so a
    # stale link never blocks anyone; where it is not, it is needed.
    team_invitation = await team.usable_team_invitation(conn, invite_token, email, now) if invite_token else None
    invitation = await sharing.usable_invitation(conn, invite_token, now) if invite_token and not team_invitation else None
    if settings.registration != "open" and team_invitation is None and await count_users(conn) > 0:
        if settings.registration == "closed":
            raise Forbidden("registration is closed on this service: ask the admin for an invitation")
        if invitation is None:
            raise Forbidden(
                "registration on this service needs a valid invitation token "
                "(a team invitation registers only the address it was sent to)"
            )
    user = await insert_user(conn, email, password_hash, marketing_consent, now, email_verified=bool(team_invitation))
    if team_invitation is not None:
        await team.spend_team_invitation(conn, team_invitation, user.user_id, now)
        await imports.claim_cards(tx, public_cards, user)
    else:
        token = await insert_verification(conn, user.user_id, now)
        message = verification_email(settings, user.email, token)
        await mail.enqueue(tx, outbox, message, kind="verification", user_id=user.user_id)
    await tx.emit("user.registered", {"userId": user.user_id, "email": user.email, "isAdmin": user.is_admin,
                                      "viaTeamInvitation": team_invitation is not None},
                  actor_id=user.user_id, user_id=user.user_id)
    if invitation is not None and await sharing.mark_converted(conn, invitation, user.user_id, now):
        sharing.count_after_commit(tx, "converted", invitation.channel)
        await sharing.emit_funnel(tx, "invitation.converted", invitation.id, actor_id=user.user_id)
    return user


@post(
    "/register", operation_id="register", summary="Create an account", status_code=201,
    responses=problems(*LIMITED, *BODY, *WRITE, 403, 409),
)
async def register_handler(
    request: Request, data: JSONBody[RegisterRequest], db: DatabaseDep, settings: SettingsDep
) -> AuthResponse:
    state = request.app.state
    return await register(
        db, state.outbox, state.public_cards, settings, data.email, data.password, data.marketing_consent, data.invite_token
    )


handlers = [register_handler]
