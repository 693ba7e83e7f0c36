"""The card change sequence, the primary's side: what changed after a given point.

Every operation that changes a public card writes its slug to `card_changes` in its own
transaction (app.cards.store.record_changes; migration 0005). An edge asks for the slugs changed
after the newest change its copy holds, over the private network, on the primary's
internal port (`GET /internal/changes`, bearer EDGE_TOKEN): a slug changed after its copy
is sent to the primary rather than answered from the copy, and the edge follows the
replica only while its copy is behind this sequence (app/edge/local_copy.py).

A waiting long poll costs nothing: it sleeps on the `ChangeBell` (app/public/card_cache.py),
which every operation that changes a public card rings after its commit (through
`PublicCards.forget`), and reads the sequence again only then.

The sequence belongs to a *history* (migration 0008): a random id made with the database
and made anew by every restore (`replication.renew_history`), since a restored database may number
other changes with the seqs an edge has already heard. Every answer names it; an edge
that hears another one starts over from a fresh copy of this history.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Annotated

import aiosqlite
import msgspec
from litestar import Request, get
from litestar.exceptions import ValidationException
from litestar.params import QueryParameter

from app.api.problems import problems
from app.db import Database, DatabaseDep, fetch_all, fetch_one
from app.public.card_cache import ChangeBell
from app.sqlite import sqlite3

# The most changes one answer carries; an edge behind by more asks again at once.
PAGE = 1000
# The longest a request may wait for a change (a long poll).
MAX_WAIT = 25.0
# The largest seq SQLite can hold: a larger `after` could never be answered.
MAX_SEQ = 2**63 - 1


class CardChange(msgspec.Struct, rename="camel"):
    seq: int
    slug: str
    changed_at: str


class CardChanges(msgspec.Struct, rename="camel"):
    changes: list[CardChange]
    latest: int  # the newest seq on the primary
    history: str | None  # which history the seqs belong to (None before migration 0008)


async def changes_after(conn: aiosqlite.Connection, after: int, limit: int = PAGE) -> list[CardChange]:
    rows = await fetch_all(
        conn, "SELECT seq, slug, changed_at FROM card_changes WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
    )
    return [CardChange(row["seq"], row["slug"], row["changed_at"]) for row in rows]


async def latest_seq(conn: aiosqlite.Connection) -> int:
    row = await fetch_one(conn, "SELECT coalesce(max(seq), 0) AS seq FROM card_changes")
    return int(row["seq"])


async def history_id(conn: aiosqlite.Connection) -> str | None:
    """The database's history id; None for a database without migration 0008."""
    try:
        row = await fetch_one(conn, "SELECT id FROM history")
    except sqlite3.OperationalError:
        return None
    return None if row is None else row["id"]


async def wait_for_changes(
    db: Database, bell: ChangeBell, after: int, wait: float, closing: Callable[[], bool] = lambda: False,
    heard_in: str | None = None,
) -> CardChanges:
    """The changes after `after`, waiting up to `wait` seconds for one when there is none yet
    (and not once `closing()` says the server is stopping: it waits for requests in flight).
    A caller whose seqs belong to another history (`heard_in`, or an `after` past the
    newest) is answered at once: it has to start over, not wait."""
    deadline = time.monotonic() + min(wait, MAX_WAIT)
    while True:
        ring = bell.next_ring()
        async with db.read() as conn:
            changes = await changes_after(conn, after)
            latest = changes[-1].seq if changes else await latest_seq(conn)
            history = await history_id(conn)
        left = deadline - time.monotonic()
        elsewhere = (heard_in is not None and heard_in != history) or after > latest
        if changes or elsewhere or left <= 0 or closing():
            return CardChanges(changes, latest, history)
        await bell.wait(ring, left)


After = Annotated[int, QueryParameter(ge=0, le=MAX_SEQ, description="the newest seq the caller has heard of")]
Wait = Annotated[float, QueryParameter(ge=0, le=MAX_WAIT, description="seconds to wait for a change when there is none")]
History = Annotated[str | None, QueryParameter(pattern="^[0-9a-f]{32}$", description="the history `after` belongs to")]


@get(
    "/internal/changes", operation_id="cardChanges", summary="Card slugs changed after a seq (edges)",
    responses=problems(400, 401, 422),
)
async def card_changes(
    request: Request, db: DatabaseDep, after: After = 0, wait: Wait = 0.0, history: History = None
) -> CardChanges:
    # NaN passes every comparison's check, and would make the poll wait for good.
    if math.isnan(wait):
        raise ValidationException(extra=[{"key": "wait", "message": "is not a number", "source": "query"}])
    state = request.app.state
    return await wait_for_changes(
        db, state.card_change_bell, after, wait, closing=lambda: state.get("internal_closing", False), heard_in=history
    )
