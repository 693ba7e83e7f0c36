"""The Activity page (SPEC §9: admins the team's events, members their own, who did what
when, filterable by type, newest first), and what the console's script reads to show scans
arriving live: the event stream under the session cookie (EventSource sends no headers),
the same stream as /v1/events/stream, and a card's counts as its page draws them."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import ServerSentEvent

from app.accounts.users import User
from app.cards import cards, stats
from app.console.card_stats import period
from app.console.web import page
from app.db import DatabaseDep
from app.events import activity
from app.events.api import After, LastEventId, Types, parse_types, stream_response, viewer_of
from app.events.events import EVENT_TYPES

PER_PAGE = 50
Before = Annotated[str, QueryParameter(max_length=26, pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$|^$")]


@get("/activity")
async def activity_page(request: Request[User, Any, Any], db: DatabaseDep, types: Types = None, cursor: Before = "") -> Response:
    wanted = parse_types(types)
    async with db.read() as conn:
        items, next_cursor = await activity.activity(
            conn, viewer=viewer_of(request.user), before=cursor or None, types=wanted, limit=PER_PAGE,
        )
    return page(
        request, "console/activity/list.html", section="activity", entries=items, next_cursor=next_cursor,
        chosen=(wanted or [""])[0], types=[(name, activity.LABELS[name]) for name in EVENT_TYPES],
        team=request.user.is_admin,
    )


@get("/events/stream")
async def console_stream(
    request: Request[User, Any, Any], types: Types = None, after: After = None, last_event_id: LastEventId = None,
) -> ServerSentEvent:
    return stream_response(request, request.user, after, last_event_id, types)


@get("/cards/{cardId:str}/counts")
async def card_counts(
    request: Request[User, Any, Any], cardId: FromPath[str], db: DatabaseDep, days: FromQuery[int | None] = None,
) -> Response:
    """The card's scans, views and saves as its page shows them: all of them, stored and not
    yet written, as on the card page; or the totals of the stats page's period (`days`)."""
    card = await cards.card_of(db, request.user.user_id, cardId)
    if days is None:
        scans, views, saves = request.app.state.counters.pending(card.card_id)
        counts = {"scans": card.scan_count + scans, "views": card.view_count + views, "saves": card.save_count + saves}
    else:
        totals = (await stats.card_report(db, card, period(days))).totals
        counts = {"scans": totals.scans, "views": totals.views, "saves": totals.saves}
    return Response(counts, headers={"Cache-Control": "no-store"})


handlers = [activity_page, console_stream, card_counts]
