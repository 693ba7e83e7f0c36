"""The /v1/me routes: the caller's own account, its marketing consent, email address,
export and deletion."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, patch, post
from litestar.datastructures import State
from litestar.params import JSONBody

from app.accounts.api_keys import ApiKey, list_api_keys
from app.accounts.emails import VERIFICATIONS_PER_HOUR, confirm_email_change, request_email_change, resend_verification
from app.accounts.users import PublicUser, User, change_marketing_consent, delete_account
from app.api.problems import AUTHENTICATED, BODY, LIMITED, WRITE, problems
from app.cards import cards, stats, store
from app.cards.types import ContactCard
from app.config import Settings, SettingsDep
from app.db import Database, DatabaseDep
from app.fields import Email, LinkToken
from app.leads import leads
from app.sharing import sharing


class UpdateMeRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    marketing_consent: bool


class ChangeEmailRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    new_email: Email
    password: Annotated[str, msgspec.Meta(max_length=1024)]


class ConfirmEmailRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    token: LinkToken


class EmailChangeAccepted(msgspec.Struct, rename="camel"):
    detail: str = "a link to confirm the new address is on its way to it"


class VerificationSent(msgspec.Struct, rename="camel"):
    detail: str = "a new confirmation link is on its way to the account's address"


class AccountExport(msgspec.Struct, rename="camel"):
    user: PublicUser
    cards: list[ContactCard]
    api_keys: list[ApiKey]
    invitations: list[sharing.Invitation]
    scans: list[stats.ScanEvent]
    leads: list[leads.Lead]


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


async def export_account(db: Database, state: State, settings: Settings, user: User) -> AccountExport:
    """Everything the account owns, as GET /v1/me/export and the console's download give it."""
    async with db.read() as conn:
        rows = await store.list_all_cards(conn, user.user_id)
        keys = await list_api_keys(conn, user.user_id)
        invitations = await sharing.list_user_invitations(conn, user.user_id)
        events = await stats.list_user_events(conn, user.user_id)
        lead_rows = await leads.list_leads(conn, user.user_id)
    return AccountExport(
        user=user.public(),
        cards=[await cards.to_response(row, state, settings) for row in rows],
        api_keys=keys,
        invitations=invitations,
        scans=events,
        leads=[lead for _, lead in lead_rows],
    )


@get("/me/export", operation_id="exportMe", summary="All of the account's data as JSON", responses=problems(*AUTHENTICATED))
async def export_me(request: Request[User, Any, Any], db: DatabaseDep, settings: SettingsDep) -> AccountExport:
    return await export_account(db, request.app.state, settings, request.user)


@post(
    "/me/email", operation_id="changeEmail", status_code=202,
    summary="Ask to change the address: a link goes to the new one (422 when the password is wrong)",
    description="409 when another account has the address. The link is valid for 24 hours.",
    responses=problems(*AUTHENTICATED, *BODY, *WRITE, 409),
)
async def change_email_handler(
    request: Request[User, Any, Any], data: JSONBody[ChangeEmailRequest], db: DatabaseDep, settings: SettingsDep
) -> EmailChangeAccepted:
    outbox = request.app.state.outbox
    await request_email_change(db, outbox, settings, request.user.user_id, data.new_email, data.password)
    return EmailChangeAccepted()


@post(
    "/me/email/confirm", operation_id="confirmEmailChange", status_code=204,
    summary="Confirm the new address with the token from the link (by the same account)",
    description="409 when another account took the address meanwhile; the address is verified after.",
    responses=problems(*AUTHENTICATED, *BODY, *WRITE, 409),
)
async def confirm_email_handler(request: Request[User, Any, Any], data: JSONBody[ConfirmEmailRequest], db: DatabaseDep) -> None:
    await confirm_email_change(db, data.token, request.user.user_id)


@post(
    "/me/verify-email", operation_id="resendVerification", status_code=202,
    summary="Send the account's address a new confirmation link",
    description=f"409 when the address is confirmed already; 429 past {VERIFICATIONS_PER_HOUR} in an hour.",
    responses=problems(*AUTHENTICATED, *LIMITED, *WRITE, 409),
)
async def resend_verification_handler(request: Request[User, Any, Any], db: DatabaseDep, settings: SettingsDep) -> VerificationSent:
    await resend_verification(db, request.app.state.outbox, settings, request.user.user_id)
    return VerificationSent()


handlers = [get_me, update_me, delete_me, export_me, change_email_handler, confirm_email_handler, resend_verification_handler]
