"""The team admin's work on the instance's accounts: the list of users, invitations by
email (which register their holder even under REGISTRATION=invite or closed), admin on
and off, deactivation, and handing one user's cards to another.

There is always at least one active admin: demoting or deactivating the last one is a
Conflict. A deactivated account keeps its row and its cards (they answer scans as
before); it cannot log in, and its sessions, refresh tokens and API keys are gone.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import aiosqlite
import msgspec
from litestar import Request, Router, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from app import mail
from app.accounts.api_keys import ApiKey, key_event_data
from app.accounts.emails import link_email
from app.accounts.sessions import revoke_sessions
from app.accounts.users import User, email_taken, is_last_active_admin
from app.api import pagination
from app.api.guards import require_admin
from app.api.problems import AUTHENTICATED, BODY, WRITE, problems
from app.cards import cards
from app.config import Settings, SettingsDep
from app.db import Database, DatabaseDep, Tx, fetch_all, fetch_one, isoformat
from app.errors import Conflict, Invalid, NotFound
from app.fields import Email
from app.public.card_cache import PublicCards
from app.tokens import new_token, token_hash

TEAM_INVITE_VALID_FOR = timedelta(days=7)

# --- structs -------------------------------------------------------------------------


class TeamMember(msgspec.Struct, rename="camel"):
    user_id: str
    email: str
    email_verified: bool
    is_admin: bool
    status: Literal["active", "deactivated"]
    card_count: int
    last_login_at: str | None
    created_at: str


class TeamMemberPage(msgspec.Struct, rename="camel"):
    items: list[TeamMember]
    next_cursor: str | None


class TeamInvitation(msgspec.Struct, rename="camel"):
    invitation_id: str
    email: str
    created_at: str
    expires_at: str


class InviteRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    email: Email


class UpdateUserRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    is_admin: bool | msgspec.UnsetType = msgspec.UNSET
    deactivated: bool | msgspec.UnsetType = msgspec.UNSET


class TransferCardsRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    to_user_id: str


class TransferredCards(msgspec.Struct, rename="camel"):
    moved: int


# --- SQL -----------------------------------------------------------------------------

MEMBER_SELECT = """SELECT u.rowid AS row_id, u.user_id, u.email, u.email_verified, u.is_admin, u.deactivated_at,
    u.last_login_at, u.created_at, (SELECT count(*) FROM cards c WHERE c.user_id = u.user_id) AS card_count
    FROM users u"""


def _member(row: Any) -> TeamMember:
    return TeamMember(
        user_id=row["user_id"],
        email=row["email"],
        email_verified=bool(row["email_verified"]),
        is_admin=bool(row["is_admin"]),
        status="deactivated" if row["deactivated_at"] else "active",
        card_count=row["card_count"],
        last_login_at=row["last_login_at"],
        created_at=row["created_at"],
    )


async def get_member(conn: aiosqlite.Connection, user_id: str) -> TeamMember:
    """Raises NotFound."""
    row = await fetch_one(conn, f"{MEMBER_SELECT} WHERE u.user_id = ?", (user_id,))
    if row is None:
        raise NotFound("no such user")
    return _member(row)


async def insert_team_invitation(
    conn: aiosqlite.Connection, email: str, invited_by: str, now: datetime
) -> tuple[TeamInvitation, str]:
    token = new_token()
    invitation = TeamInvitation(
        invitation_id=uuid.uuid4().hex, email=email, created_at=isoformat(now),
        expires_at=isoformat(now + TEAM_INVITE_VALID_FOR),
    )
    await conn.execute(
        """INSERT INTO team_invitations (token_hash, invitation_id, email, invited_by, created_at, expires_at)
        VALUES (?, ?, ?, ?, ?, ?)""",
        (token_hash(token), invitation.invitation_id, email, invited_by, invitation.created_at, invitation.expires_at),
    )
    return invitation, token


async def usable_team_invitation(conn: aiosqlite.Connection, token: str, email: str, now: datetime) -> str | None:
    """The token_hash of an unused, unexpired team invitation for this address (any case), or None."""
    row = await fetch_one(
        conn,
        "SELECT token_hash FROM team_invitations WHERE token_hash = ? AND email = ? AND used_at IS NULL AND expires_at > ?",
        (token_hash(token), email, isoformat(now)),
    )
    return row["token_hash"] if row else None


async def spend_team_invitation(conn: aiosqlite.Connection, invitation_hash: str, user_id: str, now: datetime) -> None:
    await conn.execute(
        "UPDATE team_invitations SET used_at = ?, user_id = ? WHERE token_hash = ?",
        (isoformat(now), user_id, invitation_hash),
    )


# --- the email -----------------------------------------------------------------------


def team_invitation_email(settings: Settings, to: str, inviter: str, token: str):
    days = TEAM_INVITE_VALID_FOR.days
    return link_email(
        settings,
        to=to,
        subject="You are invited to QR Contact",
        lines=[
            f"{inviter} invites you to your team's QR Contact: digital contact cards with QR codes.",
            f"Create your account with this address within {days} days:",
        ],
        link=f"{settings.public_base_url}/app/register?invite={token}",
        button="Create my account",
        footer="If you did not expect this, you can ignore this email.",
    )


# --- operations ----------------------------------------------------------------------


async def list_users(
    db: Database, search: str | None = None, limit: int = pagination.DEFAULT_LIMIT, cursor: str | None = None
) -> tuple[list[TeamMember], str | None]:
    """The instance's accounts, newest first, whose email contains `search` (any case);
    returns a page and the cursor of the next one (None on the last)."""
    pattern = "%" + (search or "").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    async with db.read() as conn:
        rows = await fetch_all(
            conn,
            f"""{MEMBER_SELECT} WHERE u.rowid < ? AND u.email LIKE ? ESCAPE '\\'
            ORDER BY u.rowid DESC LIMIT ?""",
            (pagination.before(cursor), pattern, limit + 1),
        )
    page, next_cursor = pagination.page_of(rows, limit, lambda row: row["row_id"])
    return [_member(row) for row in page], next_cursor


async def list_invitations(db: Database) -> list[TeamInvitation]:
    """The team invitations not used yet and not expired, newest first."""
    async with db.read() as conn:
        rows = await fetch_all(
            conn,
            """SELECT invitation_id, email, created_at, expires_at FROM team_invitations
            WHERE used_at IS NULL AND expires_at > ? ORDER BY created_at DESC""",
            (isoformat(db.now()),),
        )
    return [TeamInvitation(**dict(row)) for row in rows]


async def invite_user(db: Database, outbox: mail.Outbox, settings: Settings, admin_id: str, email: str) -> TeamInvitation:
    """Email an invitation (single-use, 7 days) that registers this address even when
    registration is by invitation or closed. Raises Conflict when the address has an account."""
    async with db.write() as tx:
        return await send_invitation(tx, outbox, settings, admin_id, email)


async def send_invitation(tx: Tx, outbox: mail.Outbox, settings: Settings, admin_id: str, email: str) -> TeamInvitation:
    """invite_user inside a transaction the caller owns (the bulk import writes a card and
    its invitation in one). Raises as invite_user."""
    if await email_taken(tx.conn, email):
        raise Conflict("an account with this email already exists")
    admin = await fetch_one(tx.conn, "SELECT email FROM users WHERE user_id = ?", (admin_id,))
    invitation, token = await insert_team_invitation(tx.conn, email, admin_id, tx.now)
    message = team_invitation_email(settings, email, admin["email"] if admin else "Your team", token)
    await mail.enqueue(tx, outbox, message, kind="team_invitation")
    # No account exists yet: the event is the admins' (user_id None), never the token.
    await tx.emit("user.invited", {"invitationId": invitation.invitation_id, "email": email,
                                   "expiresAt": invitation.expires_at}, actor_id=admin_id)
    return invitation


async def update_user(
    db: Database, admin_id: str, user_id: str, *, is_admin: bool | None = None, deactivated: bool | None = None
) -> TeamMember:
    """Make an account admin or not, deactivate or reactivate it, in one transaction: all of
    the change or none of it. Deactivation comes first, so that "deactivate and demote" of
    the last active admin is refused before anything changes. Raises NotFound, and Conflict
    when the change would leave no active admin."""
    async with db.write() as tx:
        member = await get_member(tx.conn, user_id)
        if deactivated is True and member.status != "deactivated":
            await _deactivate(tx, admin_id, user_id)
        if is_admin is not None:
            await _set_admin(tx, user_id, is_admin)
        if deactivated is False:
            await tx.conn.execute("UPDATE users SET deactivated_at = NULL WHERE user_id = ?", (user_id,))
        after = await get_member(tx.conn, user_id)
        # One event per change that happened (asking for what already is records nothing).
        if member.status != after.status:
            kind = "user.deactivated" if after.status == "deactivated" else "user.reactivated"
            await tx.emit(kind, member_event_data(after), actor_id=admin_id, user_id=user_id)
        if member.is_admin != after.is_admin:
            await tx.emit("user.role_changed", {**member_event_data(after), "wasAdmin": member.is_admin},
                          actor_id=admin_id, user_id=user_id)
        return after


def member_event_data(member: TeamMember) -> dict:
    """An account in its events (SPEC §9): who it is and its standing, nothing secret."""
    return {"userId": member.user_id, "email": member.email, "isAdmin": member.is_admin, "status": member.status}


async def _set_admin(tx: Tx, user_id: str, is_admin: bool) -> None:
    if not is_admin and await is_last_active_admin(tx.conn, user_id):
        raise Conflict("the service needs an admin: make another account admin first")
    await tx.conn.execute("UPDATE users SET is_admin = ? WHERE user_id = ?", (is_admin, user_id))


async def _deactivate(tx: Tx, admin_id: str, user_id: str) -> None:
    """It cannot log in; its console sessions and pending links are deleted, its refresh
    tokens revoked, its API keys deleted, its access tokens refused for good (their version
    is left behind); its cards keep answering scans. Reactivated, it logs in with its old
    password; its keys, sessions and tokens stay gone."""
    conn = tx.conn
    if await is_last_active_admin(conn, user_id):
        raise Conflict("the service needs an active admin: make another account admin first")
    await conn.execute(
        "UPDATE users SET deactivated_at = ?, token_version = token_version + 1 WHERE user_id = ?",
        (tx.now_text, user_id),
    )
    await revoke_sessions(conn, user_id, tx.now)
    keys = await fetch_all(
        conn, "DELETE FROM api_keys WHERE user_id = ? RETURNING key_id, name, prefix, created_at, last_used_at", (user_id,)
    )
    for key in keys:
        await tx.emit("apikey.revoked", {**key_event_data(ApiKey(**dict(key))), "reason": "deactivated"},
                      actor_id=admin_id, user_id=user_id)
    await conn.execute("DELETE FROM password_resets WHERE user_id = ? AND used_at IS NULL", (user_id,))
    await conn.execute("DELETE FROM email_changes WHERE user_id = ? AND used_at IS NULL", (user_id,))


async def transfer_cards(
    db: Database, public_cards: PublicCards, admin_id: str, from_user_id: str, to_user_id: str
) -> int:
    """Hand all of one account's cards to another; slugs, counts, scans and invitations stay
    as they are, so printed codes keep working. Returns how many moved. Raises NotFound
    (either account), Invalid (the same account, or a deactivated recipient)."""
    if from_user_id == to_user_id:
        raise Invalid("the cards already belong to this account", errors=[{"field": "toUserId", "message": "is the same account"}])
    async with db.write() as tx:
        conn = tx.conn
        giver = await get_member(conn, from_user_id)
        recipient = await get_member(conn, to_user_id)
        if recipient.status == "deactivated":
            raise Invalid("a deactivated account cannot take cards", errors=[{"field": "toUserId", "message": "is deactivated"}])
        rows = await fetch_all(
            conn, "UPDATE cards SET user_id = ? WHERE user_id = ? RETURNING slug, card_id, full_name", (to_user_id, from_user_id)
        )
        slugs = [row["slug"] for row in rows]
        # The caches hold whole card rows, owner included: the edges' too, through the change sequence.
        await cards.changed(tx, public_cards, slugs)
        # One event per card, the new owner's (whose card it now is); the data names both sides.
        for row in rows:
            data = {"cardId": row["card_id"], "slug": row["slug"], "fullName": row["full_name"],
                    "fromUserId": giver.user_id, "toUserId": recipient.user_id}
            await tx.emit("card.transferred", data, actor_id=admin_id, user_id=recipient.user_id)
    return len(rows)


# --- handlers ------------------------------------------------------------------------

ADMIN = (*AUTHENTICATED, 403)


@get(
    "/", operation_id="listUsers", summary="The instance's users, newest first (admin)",
    responses=problems(*ADMIN, 400, 422),
)
async def list_users_handler(
    db: DatabaseDep,
    search: Annotated[str | None, QueryParameter(max_length=254, description="part of the email, any case")] = None,
    limit: pagination.Limit = pagination.DEFAULT_LIMIT,
    cursor: pagination.Cursor = None,
) -> TeamMemberPage:
    items, next_cursor = await list_users(db, search, limit, cursor)
    return TeamMemberPage(items=items, next_cursor=next_cursor)


@get(
    "/invitations", operation_id="listTeamInvitations", summary="Team invitations not used yet (admin)",
    responses=problems(*ADMIN),
)
async def list_invitations_handler(db: DatabaseDep) -> list[TeamInvitation]:
    return await list_invitations(db)


@post(
    "/invitations", operation_id="inviteUser", status_code=201,
    summary="Invite someone by email to register (admin); 409 when the address has an account",
    description="The emailed link is single-use, valid 7 days, and registers only the invited address, "
    "even when REGISTRATION is invite or closed.",
    responses=problems(*ADMIN, *BODY, *WRITE, 409),
)
async def invite_user_handler(
    request: Request[User, Any, Any], data: JSONBody[InviteRequest], db: DatabaseDep, settings: SettingsDep
) -> TeamInvitation:
    return await invite_user(db, request.app.state.outbox, settings, request.user.user_id, data.email)


@patch(
    "/{userId:str}", operation_id="updateUser", summary="Make a user admin or not, deactivate or reactivate them (admin)",
    description="409 when the change would leave no active admin.",
    responses=problems(*ADMIN, *BODY, *WRITE, 404, 409),
)
async def update_user_handler(
    request: Request[User, Any, Any], userId: FromPath[str], data: JSONBody[UpdateUserRequest], db: DatabaseDep
) -> TeamMember:
    is_admin = None if data.is_admin is msgspec.UNSET else data.is_admin
    deactivated = None if data.deactivated is msgspec.UNSET else data.deactivated
    return await update_user(db, request.user.user_id, userId, is_admin=is_admin, deactivated=deactivated)


@post(
    "/{userId:str}/transfer-cards", operation_id="transferCards", status_code=200,
    summary="Hand all of a user's cards to another user (admin); slugs and counts stay",
    responses=problems(*ADMIN, *BODY, *WRITE, 404),
)
async def transfer_cards_handler(
    request: Request[User, Any, Any], userId: FromPath[str], data: JSONBody[TransferCardsRequest], db: DatabaseDep
) -> TransferredCards:
    moved = await transfer_cards(db, request.app.state.public_cards, request.user.user_id, userId, data.to_user_id)
    return TransferredCards(moved=moved)


router = Router(
    "/admin/users",
    route_handlers=[list_users_handler, list_invitations_handler, invite_user_handler, update_user_handler, transfer_cards_handler],
    guards=[require_admin],
    tags=["team"],
)
