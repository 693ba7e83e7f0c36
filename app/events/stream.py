"""The live event stream (SPEC §9): Server-Sent Events of what a viewer may see, for the
API's `GET /v1/events/stream` and the console's `/app/events/stream` alike.

Each stream reads the events after its cursor, sends them (`id:` the eventId, `event:` the
type, `data:` the Event JSON), then waits on the app's EventBell: it takes the bell's next
ring *before* reading, so an event committed between the read and the wait has rung it
already and nothing is missed, and nothing polls. A comment goes out when the bell has
been quiet for `heartbeat` seconds, so proxies and clients see the connection alive.

Streams are bounded per user and in all (429 beyond), and `close_all` ends every one of
them: the HTTP server calls it when it begins to shut down (app/public/door.py), because
uvicorn waits for open responses to finish before it runs the lifespan's shutdown.
"""

from __future__ import annotations

import collections
import weakref
from collections.abc import AsyncIterator

import msgspec
from litestar.response import ServerSentEvent, ServerSentEventMessage

from app.db import Database
from app.errors import Limited
from app.events.events import EventBell, events_after, latest_event_id

HEARTBEAT = 15.0  # seconds of quiet before a comment line
PER_USER = 5
IN_ALL = 200
BATCH = 100  # events read (and sent) at a time
RETRY_MS = 2000  # how long a browser's EventSource waits before it reconnects


class Slot:
    """One open stream counted against its user's bound and the total; given back once."""

    __slots__ = ("_streams", "user_id", "_held")

    def __init__(self, streams: EventStreams, user_id: str) -> None:
        self._streams, self.user_id, self._held = streams, user_id, True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._streams._release(self.user_id)


class EventStreams:
    """The app's open streams: their bounds, the heartbeat, and closing them all at shutdown.
    One per app, at `app.state.event_streams`; tests may set `heartbeat` and the bounds."""

    def __init__(self, db: Database, bell: EventBell, *, heartbeat: float = HEARTBEAT,
                 per_user: int = PER_USER, in_all: int = IN_ALL) -> None:
        self.db, self.bell = db, bell
        self.heartbeat, self.per_user, self.in_all = heartbeat, per_user, in_all
        self.open: collections.Counter[str] = collections.Counter()
        self.closing = False

    @property
    def count(self) -> int:
        return sum(self.open.values())

    def acquire(self, user_id: str) -> Slot:
        """A slot for one more stream of `user_id`. Raises Limited past either bound (and
        when the server is shutting down)."""
        if self.closing:
            raise Limited("the server is restarting: connect again in a few seconds", retry_after=5)
        if self.open[user_id] >= self.per_user:
            raise Limited(f"at most {self.per_user} event streams per account are open at once", retry_after=30)
        if self.count >= self.in_all:
            raise Limited("too many event streams are open: try again later", retry_after=30)
        self.open[user_id] += 1
        return Slot(self, user_id)

    def _release(self, user_id: str) -> None:
        self.open[user_id] -= 1
        if self.open[user_id] <= 0:
            del self.open[user_id]

    def close_all(self) -> None:
        """End every stream (each sends what it has and returns) and refuse new ones. Idempotent."""
        if not self.closing:
            self.closing = True
            self.bell.ring()  # wakes every stream, which then sees `closing`

    def response(
        self, user_id: str, *, admin: bool, after: str | None, types: list[str] | None, head: bool = False,
    ) -> ServerSentEvent:
        """The SSE response of one stream for this viewer (all events for an admin, their own
        for a member), starting after the eventId `after` (from now when None); for a HEAD,
        the same status and headers with no stream. Raises Limited."""
        slot = self.acquire(user_id)
        if head:
            slot.release()
            return ServerSentEvent((), headers={"Cache-Control": "no-store"})
        messages = self.messages(slot, viewer=None if admin else user_id, after=after, types=types)
        # Should the response never start iterating (the client gone at once), the generator
        # is dropped without running its `finally`: the slot is given back when it is collected.
        weakref.finalize(messages, slot.release)
        return ServerSentEvent(messages, headers={"Cache-Control": "no-store"})

    async def messages(self, slot: Slot, *, viewer: str | None, after: str | None,
                       types: list[str] | None) -> AsyncIterator[ServerSentEventMessage]:
        try:
            cursor = after
            if cursor is None:
                async with self.db.read() as conn:
                    cursor = await latest_event_id(conn)
            # The first line says the stream is open and from where (clients and tests wait for it).
            yield ServerSentEventMessage(data=None, comment=f"open after {cursor or 'the start'}", retry=RETRY_MS)
            while not self.closing:
                ring = self.bell.next_ring()  # before reading: see the module docstring
                async with self.db.read() as conn:
                    events = await events_after(conn, viewer=viewer, after=cursor, types=types, limit=BATCH)
                for event in events:
                    yield ServerSentEventMessage(data=msgspec.json.encode(event).decode(), event=event.type, id=event.event_id)
                    cursor = event.event_id
                if len(events) == BATCH:
                    continue  # more are waiting
                if not await self.bell.wait(ring, self.heartbeat) and not self.closing:
                    yield ServerSentEventMessage(data=None, comment="heartbeat")
        finally:
            slot.release()
