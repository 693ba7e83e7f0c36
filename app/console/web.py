"""What every console page shares: rendering, static files, the session hook, CSRF and
the Origin check, flash messages, and the friendly error pages.

A page handler gets the signed-in account as `request.user` (None on the public pages,
marked `opt={"public": True}`), reads its form with `form_of`, and answers
`page(request, "console/x.html", ...)` with plain data, or `see_other(url, flash=...)`
after a successful POST (POST-redirect-GET).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import msgspec
from litestar import Request, Response, get
from litestar.background_tasks import BackgroundTask
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException, NotFoundException, PermissionDeniedException
from litestar.middleware.csrf import CSRFMiddleware
from litestar.params import FromPath
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.template import TemplateConfig
from litestar.types import ASGIApp, Receive, Scope, Send
from litestar.types import Message as ASGIMessage

from app.api import problems
from app.config import Settings
from app.console import first_run
from app.console.sessions import COOKIE, COOKIE_PATH, cookie_is_secure, user_for_web_session
from app.errors import DomainError, Limited, Unavailable
from app.fields import Label, Message, Password, limits_of
from app.sqlite import sqlite3
from app.static_files import ASSETS, static_url

log = logging.getLogger("app.console")
HERE = Path(__file__).parent.parent
TEMPLATES = HERE / "templates"
HOME = "/app/cards"

# No inline script or style anywhere: the stylesheet and the one script are files of our
# own origin; QR thumbnails may be data: URLs.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages show an account's data: never kept by a shared cache or the back-forward cache of another user.
    "Cache-Control": "no-store",
}


# --- static files: content-hashed names, cached for a year (app/static_files.py) -----


# No session lookup, no CSRF cookie: a response cached for a year must not set one.
STATIC_OPT = {"public": True, "sessionless": True, "exclude_from_csrf": True}


@get("/static/{name:str}", opt=STATIC_OPT, include_in_schema=False, sync_to_thread=False)
def static_file(name: FromPath[str]) -> Response[bytes]:
    asset = ASSETS.get(name)
    if asset is None:
        raise NotFoundException()
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"}
    return Response(asset.body, media_type=asset.media_type, headers=headers)


# --- templates -----------------------------------------------------------------------


# The limits the API's types set, stated by the forms that lead to it (minlength, maxlength, hints).
PASSWORD = limits_of(Password)
PASSWORD_RULE = f"At least {PASSWORD.min_length} characters. A few unrelated words make a good one."
FORM_LIMITS = {"password": PASSWORD, "label": limits_of(Label), "message": limits_of(Message)}


def _configure(engine: JinjaTemplateEngine) -> None:
    env = engine.engine
    env.undefined = jinja2.StrictUndefined  # a misspelt name fails the test, not the page silently
    env.trim_blocks = env.lstrip_blocks = True
    env.globals["static"] = static_url
    env.globals["limits"] = FORM_LIMITS
    env.globals["password_rule"] = PASSWORD_RULE
    env.filters["when"] = when
    env.filters["when_day"] = when_day


def when(stamp: str | None) -> str:
    """A stored UTC time (ISO 8601) as people read it: "30 Nov 2026, 14:05 UTC" ("" for none).
    The templates' `when` filter, and what handlers put in a page's data."""
    if not stamp:
        return ""
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(UTC)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"


def when_day(day: str) -> str:
    """A UTC day (2026-11-30) as people read it: "Mon 30 Nov 2026"."""
    value = datetime.fromisoformat(day)
    return f"{value:%a} {value.day} {value:%b %Y}"


template_config = TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=_configure)


# --- flash messages ------------------------------------------------------------------
# The cookie carries only a key of this table (and perhaps a count), so nothing a third
# party writes into it can put words on a page.

FLASH_COOKIE = "qrc_flash"
FLASHES = {
    "card-created": "Card created.",
    "card-saved": "Changes saved.",
    "card-deleted": "Card deleted.",
    "photo-saved": "Photo saved.",
    "photo-removed": "Photo removed.",
    "logo-saved": "Logo saved.",
    "logo-removed": "Logo removed.",
    "registered": "Welcome! We sent you an email: open its link to confirm your address.",
    "registered-invited": "Welcome! Your account is ready.",
    "logged-out": "You are logged out.",
    "shared-emails": "Invitation sent to {count}.",
    "shared-links": "Invitations made for {count}: emails go out by themselves; tap each button below to send the others.",
    "shared-none": "Nothing new was sent: everyone here already had an invitation from you today.",
    "lead-deleted": "Lead deleted.",
    "key-revoked": "API key revoked. Programs using it can no longer sign in with it.",
    "webhook-test-sent": "Test message queued: it appears in the deliveries below once sent.",
    "webhook-retried": "The delivery is being tried again now.",
    "webhook-enabled": "Webhook turned on.",
    "webhook-disabled": "Webhook turned off: events are not sent to it until you turn it on again.",
    "webhook-deleted": "Webhook deleted.",
    # account and team pages (console/account.py, console/team.py)
    "reset-sent": "If an account has this address, a link to choose a new password is on its way. It works once, within an hour.",
    "password-reset": "Your new password is set, and every other session is logged out. Log in with it.",
    "password-changed": "Password changed. Your other sessions are logged out; this one stays.",
    "verification-sent": "A new confirmation link is on its way to your address. It works for 48 hours.",
    "email-confirmed-already": "Your address is confirmed already.",
    "email-change-sent": "We sent a link to your new address. Open it, logged in, to finish the change.",
    "email-changed": "Your email address is changed.",
    "consent-saved": "Your choice about product news is saved.",
    "account-deleted": "Your account and everything it held are deleted.",
    "invited": "Invitation sent.",
    "admin-on": "They are an admin now.",
    "admin-off": "They are no longer an admin.",
    "deactivated": "Account deactivated. Their cards keep working.",
    "reactivated": "Account reactivated. They can log in again.",
    "cards-moved": "Cards handed over: {count}.",
    "brand-saved": "Brand saved. Every card shows it now.",
    "brand-logo-saved": "Team logo saved.",
    "brand-logo-removed": "Team logo removed.",
}


def _flash_text(value: str) -> str | None:
    key, _, count = value.partition(":")
    text = FLASHES.get(key)
    if text and count.isdigit():
        text = text.format(count=int(count))
    return text


# --- rendering -----------------------------------------------------------------------


def page(request: Request, template: str, *, status: int = 200, section: str | None = None, **context: Any) -> Template:
    """A console page: the template with the signed-in user, the nav section and any flash message."""
    flash = request.cookies.get(FLASH_COOKIE)
    cookies = [Cookie(key=FLASH_COOKIE, value="", path=COOKIE_PATH, max_age=0)] if flash else []
    viewer = request.scope.get("user")
    return Template(
        template,
        context={
            "viewer": viewer,
            "section": section,
            "flash": _flash_text(flash) if flash else None,
            # The admins' first-run banner (app/console/first_run.py).
            "setup_gaps": first_run.gaps(request.app.state.settings) if viewer is not None and viewer.is_admin else [],
            "errors": {},
            **context,
        },
        status_code=status,
        headers=PAGE_HEADERS,
        cookies=cookies,
    )


# Scans are answered on the event loop (app/public/fast_path.py), so the pages that take milliseconds
# to draw (a year of stats, a list of cards) are drawn in a thread. In one thread: while it
# runs Python it holds the GIL, and the loop waits for it at most a switch interval (set
# in cli.run_app); with a thread per page being drawn, the loop would queue behind each.
DRAWER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="console-drawer")


async def off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """`fn(*args)` in the console's drawing thread."""
    return await asyncio.get_running_loop().run_in_executor(DRAWER, fn, *args)


async def page_off_loop(
    request: Request, template: str, *, status: int = 200, section: str | None = None, **context: Any
) -> Response:
    """The response `page()` gives, its template drawn in the drawing thread (see DRAWER)."""
    response = page(request, template, status=status, section=section, **context)
    engine, values = request.app.template_engine, response.create_template_context(request)
    html = await off_loop(lambda: engine.get_template(template).render(**values))
    return Response(html, status_code=status, media_type="text/html", headers=response.headers, cookies=response.cookies)


def see_other(
    url: str, *, flash: str | None = None, cookies: list[Cookie] | None = None, background: BackgroundTask | None = None
) -> Redirect:
    """303 to a page of ours after a POST, with an optional flash message (a FLASHES key), and
    optional work to do once it is sent."""
    cookies = list(cookies or [])
    if flash is not None:
        assert flash.partition(":")[0] in FLASHES, flash
        cookies.append(Cookie(key=FLASH_COOKIE, value=flash, path=COOKIE_PATH, max_age=60, httponly=True, samesite="lax"))
    return Redirect(url, status_code=303, cookies=cookies, background=background)


async def form_of(request: Request) -> dict[str, str]:
    """The submitted form as plain strings (the last value of a repeated name); the CSRF field left out."""
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str) and key != "_csrf_token"}


def safe_next(value: str | None) -> str:
    """A console path to go to after login; anything else (another site, //host, \\host) is the cards list."""
    if not value or len(value) > 2000 or "\\" in value or any(ord(ch) < 0x20 for ch in value):
        return HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not (parts.path == "/app" or parts.path.startswith("/app/")):
        return HOME
    return value


def login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/app/login" if request.method != "GET" or here in ("/app", HOME) else f"/app/login?next={quote(here, safe='/')}"


# --- the session hook and the Origin check -------------------------------------------


def same_origin(request: Request, settings: Settings) -> bool:
    """Whether a state-changing request comes from our own pages.

    Browsers send `Sec-Fetch-Site` (and `Origin` on every POST); a request from another
    site is refused whatever token it carries. A client sending neither (curl, an old
    browser) is left to the CSRF token.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    ours = {urlsplit(settings.public_base_url)._replace(path="", query="", fragment="").geturl()}
    if host := request.headers.get("host"):
        ours |= {f"http://{host}", f"https://{host}"}
    return origin in ours


async def session_hook(request: Request) -> Response | None:
    """Every console request: who is signed in (request.user, None when nobody is); pages not
    marked public send a visitor to the login; a POST from another origin is refused."""
    settings: Settings = request.app.state.settings
    if request.method == "POST" and not same_origin(request, settings):
        raise PermissionDeniedException(FOREIGN_ORIGIN)
    opt = request.route_handler.opt
    token = request.cookies.get(COOKIE) if not opt.get("sessionless") else None
    user = await user_for_web_session(request.app.state.db, token) if token else None
    request.scope["user"] = user
    if user is None and not opt.get("public"):
        return Redirect(login_url(request), status_code=303)
    return None


def counts_against_the_rate_limit(request: Request) -> bool:
    """Which console requests the per-client rate limit (RATE_LIMIT_PER_MINUTE, shared with
    /v1) counts: every POST, since each may hash a password, send an email or write, and
    the pages marked `rate_limited` (the login page). Reading other pages stays free."""
    return request.method == "POST" or bool(request.route_handler.opt.get("rate_limited"))


def session_cookie(settings: Settings, token: str, max_age: int) -> Cookie:
    return Cookie(
        key=COOKIE, value=token, path=COOKIE_PATH, max_age=max_age, httponly=True, secure=cookie_is_secure(settings), samesite="lax"
    )


def one_page_at_a_time(app: ASGIApp) -> ASGIApp:
    """The console's pages drawn one after another, never side by side.

    Pages are drawn by the process that answers scans, on its event loop and in its
    drawing thread (DRAWER). Four people loading a year of stats at once kept the loop
    busy with four pages' database round trips, Litestar handling and writes, and scans
    waited behind them (docs/performance.md, "Console and scans on one machine"). In
    turn, one page at a time, the loop is free between the steps of the one page being
    drawn, and the console's throughput is what it was (the drawing thread and the GIL
    were its bound already).

    Only GET and HEAD wait their turn (forms and uploads do not queue behind reports),
    and only until the answer starts: sending it to a slow phone holds no one up. The
    turn is the app's (`state.console_pages`), not this middleware's: Litestar makes a
    middleware per route, and pages of every route take turns.
    """

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await app(scope, receive, send)
            return
        gate: asyncio.Semaphore = scope["litestar_app"].state.console_pages
        await gate.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                gate.release()

        async def send_and_let_the_next_in(message: ASGIMessage) -> None:
            if message["type"] == "http.response.start":
                release()  # drawn: writing it out waits on the client alone
            await send(message)

        try:
            await app(scope, receive, send_and_let_the_next_in)
        finally:
            release()

    return handle


def csrf_config(settings: Settings) -> CSRFConfig:
    """Litestar's double-submit CSRF check for the console's forms (its token is in each form
    as `_csrf_token`, its cookie on /app only). The key is derived from JWT_SECRET, so
    tokens outlive a restart. The app keeps it as `state.console_csrf` (CsrfCheck)."""
    secret = hmac.new(settings.jwt_secret.encode(), b"console csrf", hashlib.sha256).hexdigest()
    return CSRFConfig(
        secret=secret,
        cookie_name="qrc_csrf",
        cookie_path=COOKIE_PATH,
        cookie_httponly=True,
        cookie_secure=cookie_is_secure(settings),
        cookie_samesite="lax",
    )


class CsrfCheck:
    """Litestar's CSRFMiddleware with the app's config (`state.console_csrf`), made again
    only when the app is bound to other settings (main.bind)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._made: tuple[CSRFConfig | None, CSRFMiddleware | None] = (None, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        config: CSRFConfig = scope["litestar_app"].state.console_csrf
        made_for, check = self._made
        if check is None or made_for is not config:
            check = CSRFMiddleware(self.app, config)
            self._made = (config, check)
        await check(scope, receive, send)


# --- error pages ---------------------------------------------------------------------

FOREIGN_ORIGIN = "This form was sent from another site, so nothing was changed."
ADMINS_ONLY = "Only the team's admins can open the Team pages. Ask one of them if you need something changed there."
# Said to people in place of the HTTP reason phrase ("Forbidden", "Unprocessable Content").
ERROR_TITLE = {
    403: "Not allowed",
    404: "Page not found",
    413: "Too large",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Try again in a minute",
}
ERROR_TEXT = {
    400: "The request could not be understood. Go back and try again.",
    403: "You are not allowed to do that. If you sent a form, it may have expired: go back, reload the page and send it again.",
    404: "There is nothing here. It may have been deleted, or the link is wrong.",
    405: "That does not work on this page.",
    409: "That conflicts with what is stored.",
    413: "That was too large to send. Pictures can be up to 10 MB.",
    422: "Some values were not acceptable.",
    429: "Too many attempts. Please wait a moment and try again.",
    500: "Something went wrong on our side. Please try again; if it keeps happening, tell your admin.",
    503: "The service cannot save anything right now. Please try again in a minute.",
}


def error_page(request: Request, status: int, detail: str | None = None, headers: Mapping[str, str] | None = None) -> Template:
    response = page(
        request,
        "console/error.html",
        status=status,
        title=ERROR_TITLE.get(status) or HTTPStatus(status).phrase,
        status_code=status,
        detail=detail or ERROR_TEXT.get(status, ERROR_TEXT[400] if status < 500 else ERROR_TEXT[500]),
    )
    response.headers.update(headers or {})
    return response


def http_error(request: Request, exc: HTTPException) -> Response:
    status = exc.status_code
    if status >= 500:
        problems.ERRORS.labels("http").inc()
    # Litestar's own messages are for programmers; people get the friendly text.
    detail = exc.detail if exc.detail in (FOREIGN_ORIGIN, ADMINS_ONLY) else None
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "retry-after"}
    return error_page(request, status, detail, headers)


def domain_error(request: Request, exc: DomainError) -> Response:
    status = next(problems.DOMAIN_STATUS[kind] for kind in type(exc).__mro__ if kind in problems.DOMAIN_STATUS)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Limited | Unavailable) else None
    return error_page(request, status, sentence(exc.message), headers)


def sentence(message: str, end: str = ".") -> str:
    """A domain error's message (written for the API: "registration is closed") as a page says it."""
    return message[:1].upper() + message[1:] + end


def storage_error(request: Request, exc: sqlite3.Error) -> Response:
    problem = problems.storage_to_problem(exc)  # logs and counts it
    return error_page(request, problem.status_code, None, problem.headers)


def unexpected_error(request: Request, exc: Exception) -> Response:
    problems.unexpected_to_problem(exc)  # logs the traceback and counts it
    return error_page(request, 500)


EXCEPTION_HANDLERS = {
    HTTPException: http_error,
    DomainError: domain_error,
    sqlite3.Error: storage_error,
    Exception: unexpected_error,
}


@get("/{rest:path}", opt={"public": True}, include_in_schema=False, sync_to_thread=False)
def not_found(rest: FromPath[str]) -> None:
    """Any other path under /app: the friendly 404 (an unmatched path never reaches the router's handlers)."""
    raise NotFoundException()


# --- form fields ---------------------------------------------------------------------

def field_error(value: Any, kind: Any, bad_format: str = "Has characters or a shape that is not allowed") -> str | None:
    """Why `value` is not a `kind` (a field type of app/fields.py), said for people; None when it is.
    msgspec decides; the type's own limits say which of them the value is past."""
    try:
        msgspec.convert(value, kind, strict=False)
    except msgspec.ValidationError:
        return _what_is_wrong(value, limits_of(kind), bad_format)
    return None


def _what_is_wrong(value: Any, limits: msgspec.Meta, bad_format: str) -> str:
    # In msgspec's order: the length (or the bounds of a number), then the pattern.
    if isinstance(value, str):
        if limits.min_length is not None and len(value) < limits.min_length:
            return f"Use at least {limits.min_length} characters"
        if limits.max_length is not None and len(value) > limits.max_length:
            return f"Use at most {limits.max_length} characters"
        if limits.pattern is not None:
            return bad_format
    elif isinstance(value, int):
        if limits.ge is not None and value < limits.ge:
            return f"Must be at least {limits.ge}"
        if limits.le is not None and value > limits.le:
            return f"Must be at most {limits.le}"
    return "Not a valid value"
