"""The card change sequence, the primary's side: what changed after a given point.

Every operation that changes a public card writes its slug to `card_changes` in its own
transaction (cards.record_changes; migration 0005). An edge asks for the slugs changed
after the newest change its copy holds, over the private network, on the primary's
internal port (`GET /internal/changes`, bearer EDGE_TOKEN): a slug changed after its copy
is sent to the primary rather than answered from the copy, and the edge follows the
replica only while its copy is behind this sequence (app/edge_copy.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiosqlite
import msgspec
from litestar import Request, get
from litestar.params import FromQuery

from app.db import Database, DatabaseDep, fetch_all, fetch_one

# The most changes one answer carries; an edge behind by more asks again at once.
PAGE = 1000
# How long a request may wait for a change (a long poll), and how often it looks meanwhile.
MAX_WAIT = 25.0
LOOK_EVERY = 0.05


class CardChange(msgspec.Struct, rename="camel"):
    seq: int
    slug: str
    changed_at: str


class CardChanges(msgspec.Struct, rename="camel"):
    changes: list[CardChange]
    latest: int  # the newest seq on the primary


async def changes_after(conn: aiosqlite.Connection, after: int, limit: int = PAGE) -> list[CardChange]:
    rows = await fetch_all(
        conn, "SELECT seq, slug, changed_at FROM card_changes WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
    )
    return [CardChange(row["seq"], row["slug"], row["changed_at"]) for row in rows]


async def latest_seq(conn: aiosqlite.Connection) -> int:
    row = await fetch_one(conn, "SELECT coalesce(max(seq), 0) AS seq FROM card_changes")
    return int(row["seq"])


async def wait_for_changes(db: Database, after: int, wait: float, closing: Callable[[], bool] = lambda: False) -> CardChanges:
    """The changes after `after`, waiting up to `wait` seconds for one when there is none yet
    (and not once `closing()` says the server is stopping: it waits for requests in flight)."""
    deadline = time.monotonic() + min(max(wait, 0.0), MAX_WAIT)
    while True:
        async with db.read() as conn:
            changes = await changes_after(conn, after)
            latest = changes[-1].seq if changes else await latest_seq(conn)
        if changes or time.monotonic() >= deadline or closing():
            return CardChanges(changes, latest)
        # A read of an indexed range every LOOK_EVERY seconds per waiting edge costs the
        # primary next to nothing, and needs no signal from the card operations.
        await asyncio.sleep(LOOK_EVERY)


@get("/internal/changes", operation_id="cardChanges", summary="Card slugs changed after a seq (edges)")
async def card_changes(
    request: Request, db: DatabaseDep, after: FromQuery[int] = 0, wait: FromQuery[float] = 0.0
) -> CardChanges:
    state = request.app.state
    return await wait_for_changes(db, after, wait, closing=lambda: state.get("internal_closing", False))
