"""Scans, views and saves counted at edges, applied at the primary (SPEC §7).

An edge's Counters write each flush into its outbox file as numbered batches
(app/edge/outbox.py), shipped in order to `POST /internal/scan-batches` on the primary's
internal port (app/edge/internal.py). Here: the batch as it travels, and `apply_scan_batch`,
the one operation that applies it once, through the same `write_counts` as the primary's
own flush. Nothing cached needs forgetting afterwards: counts are read from the database
(plus the primary's own pending ones) and the public pages' card cache shows none.

An outbox's batches are applied in order without gaps: a batch numbered more than one
past the last applied is refused (409), never applied, since the primary would then
count every batch below it as applied already. The one exception is a restore of the
primary (migration 0008's history): the batches it undid are gone from the edge too.

The format only grows at the end of its rows: a count's `saves` and an event's `source`
(SPEC §8) came later, with defaults, so a batch from an edge of the version before (rows
without them) is applied as it was meant: no saves, events without a source. An edge of
this version needs a primary of this version (an older one refuses the longer rows as
422 and the edge keeps them until the primary is upgraded): upgrade the primary first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import aiosqlite
import msgspec
from litestar import post
from litestar.params import JSONBody
from msgspec import Meta
from prometheus_client import Counter

from app.api.problems import BODY, problems
from app.db import Database, DatabaseDep, fetch_one
from app.errors import Conflict
from app.public.counters import DeviceClass, Source, hold_scans, scanned_data, write_counts

# Rows of either kind in one batch; an edge splits a larger flush into several batches.
# At most a few hundred bytes a row (a referrer host is at most 253 characters), so a
# batch stays under the internal port's body limit (internal.MAX_BODY_BYTES).
MAX_BATCH_ROWS = 2000
# More hits than any card gets in a second anywhere; refuses absurd numbers outright.
MAX_HITS = 1_000_000_000
# The largest number SQLite stores in an INTEGER column.
MAX_SEQ = 2**63 - 1
OCCURRED_AT = "%Y-%m-%dT%H:%M:%SZ"

APPLIED = Counter("edge_batches_applied", "Scan batches received from edges, by outcome", ["result"])
for _result in ("applied", "duplicate", "refused"):
    APPLIED.labels(_result)

HexId = Annotated[str, Meta(pattern="^[0-9a-f]{32}$")]
Hits = Annotated[int, Meta(ge=0, le=MAX_HITS)]


class ShippedCount(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A card's count increments: app.public.counters.CardCount as it travels."""

    card_id: HexId  # the public card_id: the one id a card keeps in every copy
    scans: Hits
    views: Hits
    saves: Hits = 0  # absent from an edge of the version before


class ShippedEvent(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A scan_events row: app.public.counters.EventRow as it travels."""

    card_id: HexId
    kind: Literal["scan", "view", "save"]
    occurred_at: Annotated[str, Meta(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")]
    device_class: DeviceClass
    referrer_host: Annotated[str, Meta(min_length=1, max_length=253)] | None
    country: Annotated[str, Meta(pattern="^[A-Z]{2}$")] | None
    hits: Annotated[int, Meta(ge=1, le=MAX_HITS)]
    source: Source | None = None  # absent from an edge of the version before

    def __post_init__(self) -> None:
        # The pattern lets 2026-02-30 through; stored, it would sit in no day of any report.
        try:
            datetime.strptime(self.occurred_at, OCCURRED_AT)
        except ValueError:
            raise ValueError(f"{self.occurred_at} is not a moment of the calendar") from None


class ScanBatch(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """One batch from an edge's outbox: batch `seq` of outbox file `outbox_id` (numbered from 1)."""

    outbox_id: HexId
    seq: Annotated[int, Meta(ge=1, le=MAX_SEQ)]
    edge: Annotated[str, Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")]  # the edge's region or host, for operators
    counts: Annotated[list[ShippedCount], Meta(max_length=MAX_BATCH_ROWS)]
    events: Annotated[list[ShippedEvent], Meta(max_length=MAX_BATCH_ROWS)]


class BatchResult(msgspec.Struct, rename="camel"):
    applied: bool  # False: applied before (sent again after a lost acknowledgement), nothing done


# The batch is new when its number is past the last one applied from its outbox (or the
# outbox is new): then the row is written and changes() is 1; otherwise the WHERE keeps
# the row as it is and changes() is 0.
_RECORD_BATCH = """
    INSERT INTO edge_outboxes (outbox_id, edge, last_seq, first_applied_at, last_applied_at)
    VALUES (:outbox_id, :edge, :seq, :now, :now)
    ON CONFLICT (outbox_id) DO UPDATE SET last_seq = excluded.last_seq, edge = excluded.edge,
        last_applied_at = excluded.last_applied_at
    WHERE excluded.last_seq > edge_outboxes.last_seq
"""


# The last batch applied from the outbox, and whether numbers may be skipped up to the
# next: only when the restore that began this history undid what came after it (a row
# last written before the history began, or no row in a restored history).
_LAST_APPLIED = """
    SELECT coalesce(edge_outboxes.last_seq, 0) AS last_seq,
           coalesce(edge_outboxes.last_applied_at < history.began_at, history.began_by = 'restore') AS may_skip
    FROM history LEFT JOIN edge_outboxes ON edge_outboxes.outbox_id = ?
"""


async def refuse_a_gap(conn: aiosqlite.Connection, batch: ScanBatch) -> None:
    """Raises Conflict when batches of the outbox between the last applied and this one are missing."""
    row = await fetch_one(conn, _LAST_APPLIED, (batch.outbox_id,))
    last, may_skip = (row["last_seq"], bool(row["may_skip"])) if row is not None else (0, True)
    if batch.seq > last + 1 and not may_skip:
        raise Conflict(
            f"batch {batch.seq} comes after batch {last}: the batches between were never applied",
            errors=[{"field": "seq", "message": f"the next batch of this outbox is {last + 1}"}],
        )


async def apply_scan_batch(db: Database, batch: ScanBatch) -> bool:
    """Apply an edge's batch once: True if applied now, False if it had been. Raises
    Conflict (a batch more than one past the last applied) and sqlite3.Error."""
    counts = [(c.card_id, c.scans, c.views, c.saves) for c in batch.counts]
    events = [
        (e.card_id, e.kind, e.occurred_at, e.device_class, e.referrer_host, e.country, e.hits, e.source) for e in batch.events
    ]
    scanned = scanned_data(counts, events)  # worked out before taking the writer
    try:
        async with db.write() as tx:
            conn = tx.conn
            await refuse_a_gap(conn, batch)
            params = {"outbox_id": batch.outbox_id, "edge": batch.edge, "seq": batch.seq, "now": tx.now_text}
            cursor = await conn.execute(_RECORD_BATCH, params)
            new = cursor.rowcount == 1
            if new:
                await write_counts(conn, counts, events)
                # Announced by the primary's next flush, with whatever else reached the card
                # that second (a batch sent again is not new: nothing held twice).
                await hold_scans(tx, scanned)
            tx.after_commit(APPLIED.labels("applied" if new else "duplicate").inc)
    except Conflict:
        # Counted although nothing commits: the refusal is what the edge is answered.
        APPLIED.labels("refused").inc()
        raise
    return new


@post(
    "/internal/scan-batches", operation_id="applyScanBatch", status_code=200,
    summary="Apply a batch of scans, views and saves counted at an edge, once", responses=problems(401, 409, *BODY, 503),
)
async def receive_scan_batch(data: JSONBody[ScanBatch], db: DatabaseDep) -> BatchResult:
    # 200 for a new and an already-applied batch alike: either way the edge may forget it.
    return BatchResult(applied=await apply_scan_batch(db, data))
