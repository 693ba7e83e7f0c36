"""The account pages: a forgotten password (ask for a link, then choose a new one), and the
account itself (email change confirmed by a link to the new address, password change,
marketing consent, export, deletion). Every write is an operation of app.accounts.
"""

from __future__ import annotations

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath

from app.accounts import emails, me, passwords, users
from app.config import SettingsDep
from app.console.sessions import COOKIE
from app.console.web import PASSWORD, field_error, form_of, page, see_other, session_cookie, when
from app.db import DatabaseDep
from app.errors import Conflict, Invalid
from app.fields import Email, LinkToken, Password
from app.tokens import token_hash

PUBLIC = {"public": True}
BAD_EMAIL = "Enter an email address like name@example.com"
LABELS = {
    "email": "Email", "newEmail": "New email address", "password": "Your password", "currentPassword": "Current password",
    "newPassword": "New password", "confirmEmail": "Your email address",
}


def _link_token(token: str) -> str | None:
    return None if field_error(token, LinkToken) else token


# --- a forgotten password ------------------------------------------------------------


@get("/password-reset", opt=PUBLIC)
async def reset_request_form(request: Request) -> Response:
    return page(request, "console/account/reset_request.html", email="")


@post("/password-reset", opt=PUBLIC)
async def reset_request(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    email = (await form_of(request)).get("email", "").strip()
    if field_error(email, Email):
        return page(request, "console/account/reset_request.html", status=422, email=email, errors={"email": BAD_EMAIL})
    work = passwords.reset_after_the_answer(db, request.app.state.outbox, settings, email)
    return see_other("/app/password-reset", flash="reset-sent", background=work)


def _reset_page(request: Request, token: str, *, status: int = 200, errors: dict | None = None) -> Response:
    return page(request, "console/account/reset_form.html", status=status, token=token, errors=errors or {})


def _reset_gone(request: Request) -> Response:
    return page(request, "console/account/reset_gone.html", status=410)


@get("/password-reset/{token:str}", opt=PUBLIC)
async def reset_form(request: Request, token: FromPath[str], db: DatabaseDep) -> Response:
    if not _link_token(token) or not await passwords.reset_link_is_usable(db, token):
        return _reset_gone(request)
    return _reset_page(request, token)


@post("/password-reset/{token:str}", opt=PUBLIC)
async def reset(request: Request, token: FromPath[str], db: DatabaseDep, settings: SettingsDep) -> Response:
    if not _link_token(token):
        return _reset_gone(request)
    password = (await form_of(request)).get("newPassword", "")
    if message := field_error(password, Password):
        return _reset_page(request, token, status=422, errors={"newPassword": message})
    try:
        await passwords.confirm_password_reset(db, token, password)
    except Invalid:
        return _reset_gone(request)
    # Every session of the account ended, this browser's too: log in with the new password.
    return see_other("/app/login", flash="password-reset", cookies=[session_cookie(settings, "", 0)])


# --- the account page ----------------------------------------------------------------


def _account_page(request: Request, *, status: int = 200, errors: dict | None = None, values: dict | None = None) -> Response:
    user: users.User = request.user
    return page(
        request, "console/account/show.html", status=status, section="account", errors=errors or {}, labels=LABELS,
        values={"newEmail": "", "confirmEmail": "", **(values or {})},
        consent_at=when(user.marketing_consent_at), created_at=when(user.created_at), last_login_at=when(user.last_login_at),
    )


@get("/account")
async def account(request: Request) -> Response:
    return _account_page(request)


@post("/account/email")
async def change_email(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    form = await form_of(request)
    new_email, password = form.get("newEmail", "").strip(), form.get("password", "")
    errors = {}
    if field_error(new_email, Email):
        errors["newEmail"] = BAD_EMAIL
    if not password or len(password) > PASSWORD.max_length:
        errors["password"] = "Enter your password"
    if not errors:
        try:
            await emails.request_email_change(db, request.app.state.outbox, settings, request.user.user_id, new_email, password)
        except Invalid as exc:
            field = (exc.errors or [{}])[0].get("field")
            errors = {"password": "That is not your password"} if field == "password" else {"newEmail": "That is your address already"}
        except Conflict:
            errors = {"newEmail": "Another account has this address"}
        else:
            return see_other("/app/account", flash="email-change-sent")
    return _account_page(request, status=422, errors=errors, values={"newEmail": new_email})


@post("/account/verify-email")
async def resend_verification(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    try:
        await emails.resend_verification(db, request.app.state.outbox, settings, request.user.user_id)
    except Conflict:
        return see_other("/app/account", flash="email-confirmed-already")
    return see_other("/app/account", flash="verification-sent")


@post("/account/password")
async def change_password(request: Request, db: DatabaseDep) -> Response:
    form = await form_of(request)
    current, new = form.get("currentPassword", ""), form.get("newPassword", "")
    errors = {}
    if not current or len(current) > PASSWORD.max_length:
        errors["currentPassword"] = "Enter your current password"
    if message := field_error(new, Password):
        errors["newPassword"] = message
    if not errors:
        try:
            await passwords.change_password(
                db, request.user.user_id, current, new, keep_web_session_hash=token_hash(request.cookies[COOKIE])
            )
        except Invalid:
            errors = {"currentPassword": "That is not your current password"}
        else:
            return see_other("/app/account", flash="password-changed")
    return _account_page(request, status=422, errors=errors)


@post("/account/consent")
async def change_consent(request: Request, db: DatabaseDep) -> Response:
    consent = (await form_of(request)).get("marketingConsent") == "yes"
    await users.change_marketing_consent(db, request.user.user_id, consent)
    return see_other("/app/account", flash="consent-saved")


@get("/account/export")
async def export(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    """The same JSON as GET /v1/me/export, as a file to keep."""
    data = await me.export_account(db, request.app.state, settings, request.user)
    return Response(
        msgspec.json.encode(data), media_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="qrcontact-export.json"', "Cache-Control": "no-store"},
    )


@post("/account/delete")
async def delete(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    typed = (await form_of(request)).get("confirmEmail", "").strip()
    if typed.casefold() != request.user.email.casefold():
        errors = {"confirmEmail": "Type your email address exactly as shown to delete the account"}
        return _account_page(request, status=422, errors=errors, values={"confirmEmail": typed})
    try:
        await users.delete_account(db, request.app.state.public_cards, request.user.user_id)
    except Conflict:
        errors = {"confirmEmail": "You are the only admin: make another account admin on the Team page first"}
        return _account_page(request, status=409, errors=errors, values={"confirmEmail": typed})
    return see_other("/app/login", flash="account-deleted", cookies=[session_cookie(settings, "", 0)])


# --- the link sent to a new address --------------------------------------------------
# The GET only shows a button (mail scanners open links); the POST spends the token.


@get("/account/email/{token:str}")
async def confirm_email_form(request: Request, token: FromPath[str], db: DatabaseDep) -> Response:
    new_email = await emails.email_change_of(db, token, request.user.user_id) if _link_token(token) else None
    if new_email is None:
        return page(request, "console/account/email_confirm.html", status=410, section="account", token=None, new_email=None,
                    problem="gone")
    return page(request, "console/account/email_confirm.html", section="account", token=token, new_email=new_email, problem=None)


@post("/account/email/{token:str}")
async def confirm_email(request: Request, token: FromPath[str], db: DatabaseDep) -> Response:
    problem = None
    if not _link_token(token):
        problem = "gone"
    else:
        try:
            await emails.confirm_email_change(db, token, request.user.user_id)
        except Invalid:
            problem = "gone"
        except Conflict:
            problem = "taken"
    if problem:
        return page(request, "console/account/email_confirm.html", status=410 if problem == "gone" else 409, section="account",
                    token=None, new_email=None, problem=problem)
    return see_other("/app/account", flash="email-changed")


handlers = [
    reset_request_form, reset_request, reset_form, reset, account, resend_verification, change_email, change_password,
    change_consent, export, delete, confirm_email_form, confirm_email,
]
