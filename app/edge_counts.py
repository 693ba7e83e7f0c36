"""Scans and views counted at edges, applied at the primary (SPEC §7).

An edge's Counters write each flush into its outbox file as numbered batches
(app/edge_outbox.py), shipped in order to `POST /internal/scan-batches` on the primary's
internal port (app/internal.py). Here: the batch as it travels, and `apply_scan_batch`,
the one operation that applies it once, through the same `write_counts` as the primary's
own flush. Nothing cached needs forgetting afterwards: counts are read from the database
(plus the primary's own pending ones) and the public pages' card cache shows none.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import post
from litestar.params import JSONBody
from msgspec import Meta
from prometheus_client import Counter

from app.counters import DeviceClass, write_counts
from app.db import Database, DatabaseDep, utcnow
from app.errors import BODY, problems

# Rows of either kind in one batch; an edge splits a larger flush into several batches.
# At most a few hundred bytes a row (a referrer host is at most 253 characters), so a
# batch stays under the internal port's body limit (internal.MAX_BODY_BYTES).
MAX_BATCH_ROWS = 2000
# More hits than any card gets in a second anywhere; refuses absurd numbers outright.
MAX_HITS = 1_000_000_000
# The largest number SQLite stores in an INTEGER column.
MAX_SEQ = 2**63 - 1

APPLIED = Counter("edge_batches_applied", "Scan batches received from edges, by outcome", ["result"])
for _result in ("applied", "duplicate"):
    APPLIED.labels(_result)

HexId = Annotated[str, Meta(pattern="^[0-9a-f]{32}$")]
Hits = Annotated[int, Meta(ge=0, le=MAX_HITS)]


class ShippedCount(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A card's count increments: app.counters.CardCount as it travels."""

    card_id: HexId  # the public card_id: the one id a card keeps in every copy
    scans: Hits
    views: Hits


class ShippedEvent(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A scan_events row: app.counters.EventRow as it travels."""

    card_id: HexId
    kind: Literal["scan", "view"]
    occurred_at: Annotated[str, Meta(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")]
    device_class: DeviceClass
    referrer_host: Annotated[str, Meta(min_length=1, max_length=253)] | None
    country: Annotated[str, Meta(pattern="^[A-Z]{2}$")] | None
    hits: Annotated[int, Meta(ge=1, le=MAX_HITS)]


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


async def apply_scan_batch(db: Database, batch: ScanBatch) -> bool:
    """Apply an edge's batch once: True if applied now, False if it had been. Raises sqlite3.Error."""
    params = {"outbox_id": batch.outbox_id, "edge": batch.edge, "seq": batch.seq, "now": utcnow()}
    async with db.write() as conn:
        cursor = await conn.execute(_RECORD_BATCH, params)
        new = cursor.rowcount == 1
        if new:
            await write_counts(
                conn,
                [(c.card_id, c.scans, c.views) for c in batch.counts],
                [(e.card_id, e.kind, e.occurred_at, e.device_class, e.referrer_host, e.country, e.hits) for e in batch.events],
            )
    APPLIED.labels("applied" if new else "duplicate").inc()
    return new


@post(
    "/internal/scan-batches", operation_id="applyScanBatch", status_code=200,
    summary="Apply a batch of scans and views counted at an edge, once", responses=problems(401, *BODY, 503),
)
async def receive_scan_batch(data: JSONBody[ScanBatch], db: DatabaseDep) -> BatchResult:
    # 200 for a new and an already-applied batch alike: either way the edge may forget it.
    return BatchResult(applied=await apply_scan_batch(db, data))
