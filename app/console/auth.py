"""The console's door: log in, log out, register."""

from __future__ import annotations

from litestar import Request, Response, get, post
from litestar.params import FromQuery

from app.accounts import registration, sessions
from app.accounts.users import count_users
from app.api import limits
from app.config import Settings, SettingsDep
from app.console.sessions import COOKIE, VALID_FOR, end_web_session, start_web_session
from app.console.web import PASSWORD, field_error, form_of, page, safe_next, see_other, sentence, session_cookie
from app.db import Database, DatabaseDep
from app.errors import Conflict, Forbidden, Limited, Unauthenticated
from app.fields import Email, InviteToken, Password

PUBLIC = {"public": True}
BAD_EMAIL = "Enter an email address like name@example.com"


def _registration_open(settings: Settings) -> bool:
    return settings.registration != "closed"


async def _first_account(db: Database) -> bool:
    """Whether nobody has registered yet: the first account is allowed whatever REGISTRATION
    says, and becomes the admin, so the pages say so instead of "closed"."""
    async with db.read() as conn:
        return await count_users(conn) == 0


async def _login_page(request: Request, db: Database, settings: Settings, *, status: int = 200, email: str = "",
                      next: str = "/app/cards", errors: dict | None = None, headers: dict | None = None) -> Response:
    response = page(
        request, "console/login.html", status=status, email=email, next=next, errors=errors or {},
        registration_open=_registration_open(settings), first_account=await _first_account(db),
    )
    response.headers.update(headers or {})
    return response


@get("/login", opt={**PUBLIC, "rate_limited": True})
async def login_form(request: Request, db: DatabaseDep, settings: SettingsDep, next: FromQuery[str | None] = None) -> Response:
    if request.user is not None:
        return see_other(safe_next(next))
    return await _login_page(request, db, settings, next=safe_next(next))


@post("/login", opt=PUBLIC)
async def login(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    form = await form_of(request)
    email, password, next = form.get("email", "").strip(), form.get("password", ""), safe_next(form.get("next"))
    errors = {}
    if field_error(email, Email):
        errors["email"] = BAD_EMAIL
    if not password or len(password) > PASSWORD.max_length:
        errors["password"] = "Enter your password"
    if errors:
        return await _login_page(request, db, settings, status=422, email=email, next=next, errors=errors)
    client = limits.client_ip(request)
    try:
        user = await sessions.authenticate(db, request.app.state.login_throttle, email, password, client)
    except Unauthenticated:
        errors = {"form": "Wrong email or password."}
        return await _login_page(request, db, settings, status=401, email=email, next=next, errors=errors)
    except Limited as exc:
        headers = {"Retry-After": str(exc.retry_after)}
        errors = {"form": f"Too many failed attempts for this account. Wait {exc.retry_after} seconds, then try again."}
        return await _login_page(request, db, settings, status=429, email=email, next=next, errors=errors, headers=headers)
    try:
        token = await start_web_session(db, user)
    except Forbidden:
        errors = {"form": "This account is deactivated. Ask your team's admin."}
        return await _login_page(request, db, settings, status=403, email=email, next=next, errors=errors)
    return see_other(next, cookies=[session_cookie(settings, token, int(VALID_FOR.total_seconds()))])


@post("/logout", opt=PUBLIC)
async def logout(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    if token := request.cookies.get(COOKIE):
        await end_web_session(db, token)
    return see_other("/app/login", flash="logged-out", cookies=[session_cookie(settings, "", 0)])


async def _register_page(request: Request, db: Database, settings: Settings, *, status: int = 200, values: dict,
                         errors: dict | None = None) -> Response:
    return page(request, "console/register.html", status=status, values=values, errors=errors or {},
                registration=settings.registration, first_account=await _first_account(db))


@get("/register", opt=PUBLIC)
async def register_form(request: Request, db: DatabaseDep, settings: SettingsDep, invite: FromQuery[str | None] = None) -> Response:
    if request.user is not None:
        return see_other("/app/cards")
    invite = invite if invite and not field_error(invite, InviteToken) else ""
    return await _register_page(request, db, settings, values={"email": "", "marketingConsent": False, "invite": invite})


@post("/register", opt=PUBLIC)
async def register(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    form = await form_of(request)
    values = {
        "email": form.get("email", "").strip(),
        "marketingConsent": form.get("marketingConsent") == "yes",
        "invite": form.get("invite", ""),
    }
    password = form.get("password", "")
    errors = {}
    if field_error(values["email"], Email):
        errors["email"] = BAD_EMAIL
    if message := field_error(password, Password):
        errors["password"] = message
    invite = values["invite"] if values["invite"] and not field_error(values["invite"], InviteToken) else None
    if errors:
        return await _register_page(request, db, settings, status=422, values=values, errors=errors)
    try:
        user = await registration.create_account(
            db, request.app.state.outbox, request.app.state.public_cards, settings,
            values["email"], password, values["marketingConsent"], invite,
        )
    except Conflict:
        errors = {"email": "An account with this email already exists. Log in instead?"}
        return await _register_page(request, db, settings, status=409, values=values, errors=errors)
    except Forbidden as exc:
        return await _register_page(request, db, settings, status=403, values=values, errors={"form": sentence(exc.message)})
    token = await start_web_session(db, user)
    cookie = session_cookie(settings, token, int(VALID_FOR.total_seconds()))
    # An invitation link proved the address, so no confirmation email was sent.
    flash = "registered-invited" if user.email_verified else "registered"
    return see_other("/app/cards", flash=flash, cookies=[cookie])


handlers = [login_form, login, logout, register_form, register]
