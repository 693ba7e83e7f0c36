"""The team admin's pages (admins only; anyone else gets the 403 page): the users with
search, invitations by email, one user's page (admin on and off, deactivate and
reactivate, hand their cards to someone else, each confirmed where it breaks something),
the k-factor with its weekly cohorts, and the diagnostics. Every change is an operation
of app.accounts.team; the numbers come from kfactor.k_factor and monitoring.collect_diagnostics.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, QueryParameter

from app.accounts import team
from app.api import pagination
from app.config import SettingsDep
from app.console import charts, first_run
from app.console.account import BAD_EMAIL
from app.console.web import ADMINS_ONLY, field_error, form_of, page, see_other, when
from app.db import Database, DatabaseDep
from app.errors import Conflict, Invalid, NotFound
from app.fields import Email
from app.ops import monitoring
from app.sharing import kfactor

PER_PAGE = 50
PERIODS = {"7d": "7 days", "30d": "30 days", "90d": "90 days"}


def _admin_only(request: Request) -> None:
    if not request.user.is_admin:
        raise PermissionDeniedException(ADMINS_ONLY)


def _row(member: team.TeamMember) -> dict[str, Any]:
    return {
        "user_id": member.user_id, "email": member.email, "is_admin": member.is_admin, "active": member.status == "active",
        "card_count": member.card_count, "last_login": when(member.last_login_at), "created": when(member.created_at),
        "email_verified": member.email_verified,
    }


async def _member(db: Database, user_id: str) -> dict[str, Any]:
    """Raises NotFound."""
    async with db.read() as conn:
        return _row(await team.get_member(conn, user_id))


async def _active_others(db: Database, user_id: str) -> list[dict[str, Any]]:
    """Every active account but this one: who can take its cards."""
    found, cursor = [], None
    while True:
        members, cursor = await team.list_users(db, limit=100, cursor=cursor)
        found += [_row(m) for m in members if m.status == "active" and m.user_id != user_id]
        if cursor is None:
            return sorted(found, key=lambda m: m["email"])


# --- users and invitations -----------------------------------------------------------


async def _team_page(request: Request, db: Database, *, query: str = "", cursor: str | None = None, email: str = "",
                     errors: dict | None = None, status: int = 200) -> Response:
    members, next_cursor = await team.list_users(db, query or None, PER_PAGE, cursor)
    invitations = [
        {"email": i.email, "sent": when(i.created_at), "expires": when(i.expires_at)} for i in await team.list_invitations(db)
    ]
    return page(
        request, "console/team/list.html", status=status, section="team", members=[_row(m) for m in members], query=query,
        cursor=cursor, next_cursor=next_cursor, invitations=invitations, email=email, errors=errors or {},
    )


@get("/team")
async def team_list(
    request: Request, db: DatabaseDep, q: Annotated[str, QueryParameter(max_length=254)] = "", cursor: pagination.Cursor = None
) -> Response:
    _admin_only(request)
    return await _team_page(request, db, query=q.strip(), cursor=cursor)


@post("/team/invite")
async def invite(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    _admin_only(request)
    email = (await form_of(request)).get("email", "").strip()
    error = BAD_EMAIL if field_error(email, Email) else None
    if error is None:
        try:
            await team.invite_user(db, request.app.state.outbox, settings, request.user.user_id, email)
        except Conflict:
            error = "This address has an account already"
        else:
            return see_other("/app/team", flash="invited")
    return await _team_page(request, db, email=email, errors={"email": error}, status=422)


# --- one user ------------------------------------------------------------------------


async def _user_page(request: Request, db: Database, user_id: str, *, errors: dict | None = None, status: int = 200) -> Response:
    member = await _member(db, user_id)
    return page(
        request, "console/team/user.html", status=status, section="team", member=member,
        is_self=user_id == request.user.user_id, errors=errors or {},
        recipients=[("", "Choose an account")] + [(m["user_id"], m["email"]) for m in await _active_others(db, user_id)],
    )


@get("/team/users/{userId:str}")
async def user_page(request: Request, userId: FromPath[str], db: DatabaseDep) -> Response:
    _admin_only(request)
    return await _user_page(request, db, userId)


@post("/team/users/{userId:str}/admin")
async def set_admin(request: Request, userId: FromPath[str], db: DatabaseDep) -> Response:
    _admin_only(request)
    make_admin = (await form_of(request)).get("isAdmin") == "yes"
    try:
        await team.update_user(db, request.user.user_id, userId, is_admin=make_admin)
    except Conflict:
        return await _user_page(request, db, userId, status=409,
                                errors={"form": "The team needs an active admin: make another account admin first."})
    return see_other(f"/app/team/users/{userId}", flash="admin-on" if make_admin else "admin-off")


@get("/team/users/{userId:str}/deactivate")
async def deactivate_form(request: Request, userId: FromPath[str], db: DatabaseDep) -> Response:
    _admin_only(request)
    return page(request, "console/team/deactivate.html", section="team", member=await _member(db, userId))


@post("/team/users/{userId:str}/deactivate")
async def deactivate(request: Request, userId: FromPath[str], db: DatabaseDep) -> Response:
    _admin_only(request)
    try:
        await team.update_user(db, request.user.user_id, userId, deactivated=True)
    except Conflict:
        return await _user_page(request, db, userId, status=409,
                                errors={"form": "The team needs an active admin: make another account admin first."})
    return see_other(f"/app/team/users/{userId}", flash="deactivated")


@post("/team/users/{userId:str}/reactivate")
async def reactivate(request: Request, userId: FromPath[str], db: DatabaseDep) -> Response:
    _admin_only(request)
    await team.update_user(db, request.user.user_id, userId, deactivated=False)
    return see_other(f"/app/team/users/{userId}", flash="reactivated")


async def _recipient(db: Database, user_id: str, to: str) -> dict[str, Any] | None:
    return next((m for m in await _active_others(db, user_id) if m["user_id"] == to), None)


@get("/team/users/{userId:str}/transfer")
async def transfer_form(
    request: Request, userId: FromPath[str], db: DatabaseDep, to: Annotated[str, QueryParameter(max_length=64)] = ""
) -> Response:
    """The user page's select arrives here: a confirmation naming both accounts."""
    _admin_only(request)
    member = await _member(db, userId)
    recipient = await _recipient(db, userId, to)
    if recipient is None:
        return await _user_page(request, db, userId, status=422, errors={"to": "Choose an active account to take the cards"})
    return page(request, "console/team/transfer.html", section="team", member=member, recipient=recipient)


@post("/team/users/{userId:str}/transfer")
async def transfer(request: Request, userId: FromPath[str], db: DatabaseDep) -> Response:
    _admin_only(request)
    to = (await form_of(request)).get("to", "")
    try:
        moved = await team.transfer_cards(db, request.app.state.public_cards, request.user.user_id, userId, to)
    except (Invalid, NotFound) as exc:
        if isinstance(exc, NotFound):
            await _member(db, userId)  # a missing user is the 404 page; a missing recipient is the field's error
        return await _user_page(request, db, userId, status=422, errors={"to": "Choose an active account to take the cards"})
    return see_other(f"/app/team/users/{userId}", flash=f"cards-moved:{moved}")


# --- growth --------------------------------------------------------------------------

# In SVG units; the chart is drawn 26-40 rem wide (console.css), so its 13-unit labels read at 11-17 px.
CHART = {"width": 480, "height": 220, "left": 32, "right": 4, "top": 12, "bottom": 32}


def cohort_chart(cohorts: list[kfactor.Cohort]) -> dict[str, Any]:
    """Bar pairs per week (new accounts, converted invitations) laid out for the SVG."""
    c = CHART
    plot_w, plot_h = c["width"] - c["left"] - c["right"], c["height"] - c["top"] - c["bottom"]
    top = charts.nice_top(max([max(x.cohort_size, x.conversions) for x in cohorts] or [0]))
    slot = plot_w / max(len(cohorts), 1)
    bar = min(slot * 0.35, 28)
    groups = []
    for index, cohort in enumerate(cohorts):
        x = c["left"] + index * slot + (slot - 2 * bar) / 2
        bars = []
        for offset, value, kind in ((0, cohort.cohort_size, "accounts"), (bar, cohort.conversions, "conversions")):
            height = plot_h * value / top
            bars.append({"x": round(x + offset, 1), "y": round(c["top"] + plot_h - height, 1), "width": round(bar, 1),
                         "height": round(height, 1), "kind": kind, "value": value})
        label_every = max(1, len(cohorts) // 8)  # at most about eight week labels fit at phone width
        groups.append({"bars": bars, "label": cohort.cohort_week.split("-")[1] if index % label_every == 0 else "",
                       "label_x": round(x + bar, 1)})
    ticks = [{"value": top * i // 4, "y": round(c["top"] + plot_h - plot_h * i / 4, 1)} for i in range(5)]
    return {**c, "groups": groups, "ticks": ticks, "baseline": c["top"] + plot_h, "plot_right": c["width"] - c["right"]}


@get("/team/growth")
async def growth(request: Request, db: DatabaseDep, period: Annotated[str, QueryParameter(max_length=8)] = "30d") -> Response:
    _admin_only(request)
    if period not in PERIODS:
        period = "30d"
    result = await kfactor.report(db, period)
    totals = {
        "accounts": sum(c.cohort_size for c in result.cohorts), "sent": sum(c.invitations_sent for c in result.cohorts),
        "conversions": sum(c.conversions for c in result.cohorts),
    }
    return page(
        request, "console/team/growth.html", section="team", period=period, periods=PERIODS, k_factor=result.k_factor,
        cohorts=result.cohorts, totals=totals, chart=cohort_chart(result.cohorts),
    )


# --- system --------------------------------------------------------------------------


def _bytes(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # unreachable


def _duration(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d"] if days else []
    return " ".join([*parts, f"{hours} h", f"{minutes} min"])


@get("/team/system")
async def system(request: Request, db: DatabaseDep, settings: SettingsDep) -> Response:
    _admin_only(request)
    d = await monitoring.collect_diagnostics(request.app.state, db, settings)
    replication = d.replication
    return page(
        request, "console/team/system.html", section="team", d=d, uptime=_duration(d.uptime_seconds),
        size=_bytes(d.database.size_bytes), wal=_bytes(d.database.wal_bytes),
        lag=None if replication.lag_seconds is None else f"{replication.lag_seconds:.1f} s",
        checked=when(replication.replica_checked_at),
        caches=[(name, c.hits, c.misses, None if c.hit_rate is None else f"{c.hit_rate:.1%}") for name, c in d.caches.items()],
        public_base_url=settings.public_base_url, smtp_set=bool(settings.smtp_url),
        unset={gap.setting for gap in first_run.gaps(settings)},
    )


handlers = [
    team_list, invite, user_page, set_admin, deactivate_form, deactivate, reactivate, transfer_form, transfer, growth, system,
]
