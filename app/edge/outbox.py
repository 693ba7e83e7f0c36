"""An edge's counted scans and views on their way to the primary (SPEC §7).

At an edge the database is a read-only copy, so the Counters' sink is an `EdgeOutbox`:
a small SQLite file of the edge's own (DATA_DIR/edge-outbox.db) where each flush lands
as one or more numbered batches, in one transaction. A `Shipper` sends them in order to
the primary's `POST /internal/scan-batches` (app/edge/scan_batches.py applies each once) and
deletes a batch only after the primary's 2xx; while the primary is down it retries with
backoff, and what is in the file survives a restart or a `kill -9`. So the loss on a hard
kill is what the Counters held in memory: at most the last second, as on the primary.

The file says which outbox it is (a random id made with the file) and numbers its batches
with AUTOINCREMENT, so a number is never used twice; the primary remembers per outbox the
last number applied. Shipping one batch at a time, in order, is what makes that enough.
A batch the primary refuses as out of order (409: batches before it are missing there) is
never skipped: it stays first in the file, the shipper logs it as an error, counts it
(`edge_batches_refused_total`, alert QRContactEdgeBatchRefused) and tries again, as after
any failure, until an operator has looked (docs/edge-regions.md, "Counting at the edges").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import socket
import uuid
from pathlib import Path

import aiosqlite
import httpx
import msgspec
from prometheus_client import Counter, Gauge

from app.config import Settings
from app.db import Clock, isoformat, utc_clock
from app.edge.scan_batches import MAX_BATCH_ROWS, ScanBatch, ShippedCount, ShippedEvent
from app.public.counters import CardCount, EventRow
from app.sqlite import sqlite3

log = logging.getLogger("app.edge_outbox")

OUTBOX_NAME = "edge-outbox.db"
SHIP_PATH = "/internal/scan-batches"
SHIP_TIMEOUT = 10.0
# Waits after failed attempts grow from BACKOFF_FIRST to BACKOFF_MAX (with jitter): a
# primary back from a restart gets the waiting batches within two seconds, and a
# primary that stays down gets one cheap attempt per edge every two seconds, not a flood.
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 2.0

OUTBOX_DEPTH = Gauge("edge_outbox_depth", "Batches of counted scans waiting at this edge to be shipped to the primary")
SHIPPED = Counter("edge_batches_shipped", "Batches this edge shipped and the primary acknowledged")
FAILED = Counter(
    "edge_batches_failed", "Attempts to ship a batch that the primary did not acknowledge (down, refused, timed out)"
)
REFUSED = Counter(
    "edge_batches_refused", "Attempts to ship a batch that the primary refused as out of order (409): batches before it are missing there"
)

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS outbox (outbox_id TEXT NOT NULL)",
    # `body` is exactly what is sent: the batch's JSON, its number inside.
    "CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL, created_at TEXT NOT NULL)",
    # Leads the edge took while the primary was unreachable (app/edge/leads.py), each with
    # the lead_id minted here: the primary applies a lead id once, however often it is sent.
    "CREATE TABLE IF NOT EXISTS leads (seq INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB NOT NULL, created_at TEXT NOT NULL)",
]


def edge_name(settings: Settings) -> str:
    """What the edge calls itself in its batches: its Fly region, else its host name."""
    name = settings.fly_region or socket.gethostname()
    return re.sub(r"[^A-Za-z0-9._-]", "-", name)[:64] or "edge"


class EdgeOutbox:
    """The edge's outbox file; the Counters' sink at an edge (`write`)."""

    def __init__(self, path: Path, edge: str, clock: Clock = utc_clock) -> None:
        self.path, self.edge = path, edge
        self.clock = clock  # what dates a batch (the edge has no Database to hold one)
        self.outbox_id = ""
        self.depth = 0  # batches in the file
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()  # one transaction at a time on the one connection
        self._added = asyncio.Event()
        self.leads_added = asyncio.Event()  # set when a lead is kept (and at open, to look)

    @classmethod
    def for_settings(cls, settings: Settings) -> EdgeOutbox:
        return cls(settings.data_dir / OUTBOX_NAME, edge_name(settings))

    async def open(self) -> None:
        """Open (or create) the file. Raises sqlite3.Error."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = await aiosqlite.Connection(lambda: sqlite3.connect(self.path, isolation_level=None), iter_chunk_size=64)
        # FULL: a committed batch survives a power cut too, not only a killed process; it
        # costs one fsync a second.
        for statement in ("PRAGMA busy_timeout = 5000", "PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", *_SCHEMA):
            await self._conn.execute(statement)
        async with self._transaction() as conn:
            row = await (await conn.execute("SELECT outbox_id FROM outbox")).fetchone()
            if row is None:
                row = (uuid.uuid4().hex,)
                await conn.execute("INSERT INTO outbox (outbox_id) VALUES (?)", row)
            self.outbox_id = row[0]
            (self.depth,) = await (await conn.execute("SELECT count(*) FROM batches")).fetchone()
        OUTBOX_DEPTH.set(self.depth)
        if self.depth:
            self._added.set()
        self.leads_added.set()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @contextlib.asynccontextmanager
    async def _transaction(self):
        assert self._conn is not None, "the edge outbox is not open"
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                await self._conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    await self._conn.execute("ROLLBACK")
                raise

    async def holds_more(self) -> bool:
        """An edge announces nothing itself: its batches become events at the primary."""
        return False

    async def write(self, counts: list[CardCount], events: list[EventRow]) -> None:
        """Keep a flush as batches of at most MAX_BATCH_ROWS rows each, in one transaction. Raises sqlite3.Error."""
        pieces = max(1, -(-max(len(counts), len(events)) // MAX_BATCH_ROWS))
        async with self._transaction() as conn:
            now = isoformat(self.clock())
            for piece in range(pieces):
                rows = slice(piece * MAX_BATCH_ROWS, (piece + 1) * MAX_BATCH_ROWS)
                cursor = await conn.execute("INSERT INTO batches (body, created_at) VALUES (x'', ?)", (now,))
                seq = cursor.lastrowid
                body = msgspec.json.encode(ScanBatch(
                    outbox_id=self.outbox_id, seq=seq, edge=self.edge,
                    counts=[ShippedCount(*count) for count in counts[rows]],
                    events=[ShippedEvent(*event) for event in events[rows]],
                ))
                await conn.execute("UPDATE batches SET body = ? WHERE seq = ?", (body, seq))
        self.depth += pieces
        OUTBOX_DEPTH.set(self.depth)
        self._added.set()

    async def oldest(self) -> tuple[int, bytes] | None:
        """The first batch waiting (its number and body), or None."""
        assert self._conn is not None, "the edge outbox is not open"
        async with self._lock:
            row = await (await self._conn.execute("SELECT seq, body FROM batches ORDER BY seq LIMIT 1")).fetchone()
        return None if row is None else (row[0], bytes(row[1]))

    async def remove(self, seq: int) -> None:
        """Forget a batch the primary has acknowledged."""
        async with self._transaction() as conn:
            cursor = await conn.execute("DELETE FROM batches WHERE seq = ?", (seq,))
        self.depth -= cursor.rowcount
        OUTBOX_DEPTH.set(self.depth)

    async def keep_lead(self, body: bytes) -> None:
        """Keep a lead for the primary (durable once this returns). Raises sqlite3.Error."""
        async with self._transaction() as conn:
            await conn.execute("INSERT INTO leads (body, created_at) VALUES (?, ?)", (body, isoformat(self.clock())))
        self.leads_added.set()

    async def oldest_lead(self) -> tuple[int, bytes] | None:
        assert self._conn is not None, "the edge outbox is not open"
        async with self._lock:
            row = await (await self._conn.execute("SELECT seq, body FROM leads ORDER BY seq LIMIT 1")).fetchone()
        return None if row is None else (row[0], bytes(row[1]))

    async def remove_lead(self, seq: int) -> None:
        async with self._transaction() as conn:
            await conn.execute("DELETE FROM leads WHERE seq = ?", (seq,))

    async def wait_for_batches(self) -> None:
        """Return once a batch is waiting."""
        while self.depth == 0:
            self._added.clear()
            await self._added.wait()


class ShipFailed(Exception):
    """The primary did not acknowledge a batch (unreachable, refused, timed out, or a non-2xx answer)."""


class Shipper:
    """Sends the outbox's batches to the primary's internal port, in order, one at a time."""

    def __init__(self, outbox: EdgeOutbox, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        assert settings.primary_internal_url and settings.edge_token, "an edge has both (checked in app.config)"
        self.outbox = outbox
        # `transport` lets tests put the primary's app in process (httpx.ASGITransport).
        self._client = httpx.AsyncClient(
            base_url=settings.primary_internal_url, transport=transport, timeout=SHIP_TIMEOUT,
            headers={"Authorization": f"Bearer {settings.edge_token}", "Content-Type": "application/json"},
        )
        self._task: asyncio.Task | None = None
        self.failures = 0  # in a row, since the last acknowledged batch

    async def ship_waiting(self) -> int:
        """Ship every batch waiting now, oldest first; returns how many. Raises ShipFailed,
        leaving the batch that failed (and those after it) in the outbox."""
        shipped = 0
        while (batch := await self.outbox.oldest()) is not None:
            seq, body = batch
            try:
                response = await self._client.post(SHIP_PATH, content=body)
            except httpx.HTTPError as exc:
                self._failed()
                raise ShipFailed(f"batch {seq}: {type(exc).__name__}: {exc}") from exc
            if not response.is_success:
                self._failed()
                if response.status_code == 409:
                    self._refused(seq, response.text[:300])
                raise ShipFailed(f"batch {seq}: the primary answered {response.status_code}: {response.text[:200]}")
            # Applied now or before: either way the primary has it.
            await self.outbox.remove(seq)
            SHIPPED.inc()
            if self.failures:
                log.info("shipping scan batches to the primary resumed after %d failed attempts", self.failures)
                self.failures = 0
            shipped += 1
        return shipped

    def _failed(self) -> None:
        FAILED.inc()
        self.failures += 1

    def _refused(self, seq: int, answer: str) -> None:
        REFUSED.inc()
        # An error, not a warning: retrying will not help until someone looks; once per
        # run of failures, as the warning below.
        if self.failures == 1:
            log.error("the primary refused scan batch %d of %s as out of order; it stays in the outbox: %s",
                      seq, self.outbox.path, answer)

    async def run(self) -> None:
        """Ship as batches arrive, retrying with backoff, until cancelled."""
        while True:
            await self.outbox.wait_for_batches()
            try:
                await self.ship_waiting()
            except ShipFailed as exc:
                # Every failure is counted (edge_batches_failed); the log says so once
                # per outage, not once per attempt.
                if self.failures == 1:
                    log.warning("shipping scan batches to the primary failed; retrying: %s", exc)
                await asyncio.sleep(backoff(self.failures))
            except Exception:
                log.exception("shipping scan batches failed unexpectedly; retrying")
                await asyncio.sleep(BACKOFF_MAX)

    def start(self) -> None:
        self._task = asyncio.create_task(self.run())

    async def stop(self, last_try: float = 5.0) -> None:
        """Stop the loop, then try for up to `last_try` seconds to ship what waits (a drained
        edge leaves nothing behind when the primary is up); the rest stays in the file."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            if last_try > 0 and self.outbox.depth:
                await asyncio.wait_for(self.ship_waiting(), last_try)
        except (ShipFailed, TimeoutError) as exc:
            log.warning("scan batches left in the outbox for the next start: %s", exc or "out of time")
        finally:
            await self._client.aclose()
        if self.outbox.depth:
            log.warning("%d scan batches wait in %s for the next start", self.outbox.depth, self.outbox.path)


def backoff(failures: int) -> float:
    """Seconds to wait after `failures` failed attempts in a row."""
    ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(failures - 1, 10))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret
