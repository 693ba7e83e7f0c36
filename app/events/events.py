"""The events table: its types, the public shape of an event, and the reads the event API,
the live stream and the webhook sender share. Rows are written only by `Tx.emit`
(app/db.py), inside the transaction of the change they record.

Who sees what: an admin every event; a member the events whose `user_id` is theirs (about
them, or about one of their cards). Events are kept `EVENTS_RETENTION` and pruned in small
batches (`prune`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any, Literal

import aiosqlite
import msgspec

from app.db import Database, fetch_all, isoformat

EventType = Literal[
    "user.registered", "user.invited", "user.deactivated", "user.reactivated", "user.role_changed",
    "card.created", "card.updated", "card.deleted", "card.transferred", "card.scanned",
    "lead.captured", "share.created", "invitation.opened", "invitation.clicked", "invitation.converted",
    "apikey.created", "apikey.revoked", "system.alert",
]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
PRUNE_BATCH = 500
log = logging.getLogger("app.events")


class Event(msgspec.Struct, rename="camel"):
    """An event as the API, the stream and webhooks show it."""

    event_id: str
    type: str
    occurred_at: str
    actor_id: str | None
    data: dict[str, Any]


class EventPage(msgspec.Struct, rename="camel"):
    items: list[Event]
    next_cursor: str | None


_COLUMNS = "id, event_id, type, occurred_at, actor_id, data"


def event_of(row: Any) -> Event:
    return Event(event_id=row["event_id"], type=row["type"], occurred_at=row["occurred_at"], actor_id=row["actor_id"],
                 data=json.loads(row["data"]))


async def events_after(
    conn: aiosqlite.Connection, *, viewer: str | None, after: str | None, types: list[str] | None = None, limit: int = 100,
) -> list[Event]:
    """Events after the eventId `after` (all when None), oldest first: those of `viewer`'s
    user id, or all of them when `viewer` is None (an admin)."""
    return await select_events(conn, viewer=viewer, types=types, bound=None if after is None else ("event_id > ?", after),
                               order="id", limit=limit)


async def select_events(
    conn: aiosqlite.Connection, *, viewer: str | None, types: list[str] | None, bound: tuple[str, str] | None,
    order: str, limit: int,
) -> list[Event]:
    """The events `viewer` may see (all when None: an admin), of `types` (all when empty),
    within `bound` (an eventId condition and its value), in `order`: the one query behind the
    event API, the stream and the Activity page."""
    where, params = ["1"], []
    if bound is not None:
        where.append(bound[0])
        params.append(bound[1])
    if viewer is not None:
        where.append("user_id = ?")
        params.append(viewer)
    if types:
        where.append(f"type IN ({', '.join('?' * len(types))})")
        params += types
    rows = await fetch_all(
        conn, f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?", (*params, limit)
    )
    return [event_of(row) for row in rows]


async def latest_event_id(conn: aiosqlite.Connection) -> str | None:
    row = await (await conn.execute("SELECT event_id FROM events ORDER BY id DESC LIMIT 1")).fetchone()
    return row[0] if row else None


async def latest_event(db: Database) -> str | None:
    """The newest eventId (None when there is none): where a page's live updates start."""
    async with db.read() as conn:
        return await latest_event_id(conn)


async def prune(db: Database, retention: timedelta) -> int:
    """Delete events older than `retention`, PRUNE_BATCH at a time (each its own short
    transaction, so the writer is never held long). Returns how many went."""
    gone = 0
    while True:
        async with db.write() as tx:
            cursor = await tx.conn.execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE occurred_at < ? ORDER BY id LIMIT ?)",
                (isoformat(tx.now - retention), PRUNE_BATCH),
            )
        gone += cursor.rowcount
        if cursor.rowcount < PRUNE_BATCH:
            return gone


async def keep_pruning(db: Database, retention: timedelta, interval: float = 3600.0) -> None:
    """`prune` now and every `interval` seconds until cancelled; a failure is logged and tried again."""
    while True:
        try:
            await prune(db, retention)
        except Exception:
            log.exception("pruning old events failed")
        await asyncio.sleep(interval)


class EventBell:
    """Rung after every commit that recorded events (registered in `Database.event_listeners`);
    the live streams and the webhook sender wait on it instead of polling."""

    def __init__(self, db: Database) -> None:
        self._next = asyncio.Event()
        db.event_listeners.append(self.ring)

    def ring(self) -> None:
        self._next.set()
        self._next = asyncio.Event()

    def next_ring(self) -> asyncio.Event:
        """Take this before reading, wait on it after: an event committed in between has rung it."""
        return self._next

    @staticmethod
    async def wait(ring: asyncio.Event, timeout: float) -> bool:
        """Whether `ring` rang within `timeout` seconds."""
        try:
            await asyncio.wait_for(ring.wait(), timeout)
        except TimeoutError:
            return False
        return True
