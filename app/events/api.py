"""The event API (SPEC §9): `GET /v1/events` pages through the events the caller may see,
oldest first after a cursor (what a poller resuming wants), and `GET /v1/events/stream`
sends them live as Server-Sent Events (app/events/stream.py).

A member sees the events whose user is them (about them or one of their cards); an admin
sees every event.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Router, get
from litestar.openapi.spec import Schema
from litestar.openapi.spec.enums import OpenAPIType
from litestar.params import HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent

from app.accounts.users import User
from app.api.methods import HEAD_ONLY
from app.api.openapi import media_types
from app.api.problems import AUTHENTICATED, problems
from app.db import DatabaseDep
from app.errors import Invalid
from app.events.events import EVENT_TYPES, EventPage, events_after
from app.events.stream import EventStreams

# An eventId: a ULID in Crockford's base32 (app/db.py, Database.next_event_id).
EVENT_ID = r"^[0-9A-HJKMNP-TV-Z]{26}$"
After = Annotated[str | None, QueryParameter(
    pattern=EVENT_ID, description="only events after this eventId (a previous page's nextCursor, or the last eventId seen)",
)]
Types = Annotated[
    list[str] | None,
    QueryParameter(
        name="type", max_items=len(EVENT_TYPES), description="only these types: repeat the parameter or separate them by commas",
    ),
]
LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID", pattern=EVENT_ID, description="resume after this eventId (sent by EventSource when it reconnects)",
    ),
]
Limit = Annotated[int, QueryParameter(ge=1, le=100, description="items per page")]
DEFAULT_LIMIT = 50


def parse_types(values: list[str] | None) -> list[str] | None:
    """The types asked for (`type=a&type=b` or `type=a,b`), None for all. Raises Invalid naming an unknown one."""
    types = [name.strip() for value in values or () for name in value.split(",") if name.strip()]
    if unknown := [name for name in types if name not in EVENT_TYPES]:
        raise Invalid(f"unknown event type {unknown[0][:40]!r}", [
            {"field": "type", "message": f"is not an event type ({', '.join(EVENT_TYPES)})", "source": "query"},
        ])
    return types or None


def viewer_of(user: User) -> str | None:
    """Whose events `user` sees: None (all) for an admin, else their own user id."""
    return None if user.is_admin else user.user_id


@get(
    "/", operation_id="listEvents", summary="Events the caller may see, oldest first after a cursor",
    description=(
        "A member sees the events about them and their cards; an admin sees all. `nextCursor` is set when more "
        "events follow; to follow new ones, pass the last eventId you saw as `after`."
    ),
    responses=problems(*AUTHENTICATED, 400, 422),
)
async def list_events_handler(
    request: Request[User, Any, Any], db: DatabaseDep, types: Types = None, after: After = None,
    limit: Limit = DEFAULT_LIMIT,
) -> EventPage:
    wanted = parse_types(types)
    async with db.read() as conn:
        events = await events_after(conn, viewer=viewer_of(request.user), after=after, types=wanted, limit=limit + 1)
    page = events[:limit]
    return EventPage(items=page, next_cursor=page[-1].event_id if len(events) > limit else None)


def stream_response(
    request: Request, user: User, after: str | None, last_event_id: str | None, types: list[str] | None,
) -> ServerSentEvent:
    """The SSE response for `user`, resuming after Last-Event-ID (a reconnect) or else `after`.
    Raises Invalid (a type) and Limited (too many streams)."""
    streams: EventStreams = request.app.state.event_streams
    wanted = parse_types(types)
    return streams.response(
        user.user_id, admin=user.is_admin, after=last_event_id or after, types=wanted, head=bool(request.scope.get(HEAD_ONLY)),
    )


# One event of the stream, as an SSE parser hands it over (the `itemSchema` convention of
# OpenAPI 3.2, which readers such as schemathesis apply to text/event-stream): its fields
# are text, `data` the event as JSON. Comment lines (the heartbeat) carry no event.
SSE_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    description="Server-Sent Events: `id:` the eventId, `event:` the type, `data:` the event as JSON; a comment line every 15 s",
    properties={
        "id": Schema(type=OpenAPIType.STRING, description="the eventId"),
        "event": Schema(type=OpenAPIType.STRING, description="the event's type"),
        "data": Schema(type=OpenAPIType.STRING, description="the event as JSON: eventId, type, occurredAt, actorId, data"),
        "retry": Schema(type=OpenAPIType.STRING, description="how long a client waits before reconnecting, in ms"),
    },
)


@get(
    "/stream", operation_id="streamEvents", summary="Events the caller may see, live, as Server-Sent Events",
    description=(
        "Starts after `Last-Event-ID` (or `after`), else from now. At most 5 streams per account and 200 in all (429 beyond)."
    ),
    media_type="text/event-stream", responses=problems(*AUTHENTICATED, 400, 422),
    operation_class=media_types(200, {"text/event-stream": SSE_SCHEMA}),
)
async def stream_events_handler(
    request: Request[User, Any, Any], types: Types = None, after: After = None, last_event_id: LastEventId = None,
) -> ServerSentEvent:
    return stream_response(request, request.user, after, last_event_id, types)


router = Router("/events", route_handlers=[list_events_handler, stream_events_handler], tags=["events"])
