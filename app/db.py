"""The SQLite database: pragmas, migrations, one writer and a few readers.

Every write goes through `Database.write()`: one connection behind a lock, one short
`BEGIN IMMEDIATE` transaction, committed before the caller answers, so an acknowledged
write is in the WAL. With WAL and `synchronous=NORMAL` a killed process loses no
committed transaction (only a power cut may lose the last ones, which the replica bounds).
Reads use their own connections and never wait for the writer.

The writer yields a `Tx`: the connection, the transaction's one `now` (read from the
database's `clock`, which tests set), and the work to do once it has committed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite
from litestar.di import NamedDependency

from app.errors import Unavailable
from app.sqlite import sqlite3

log = logging.getLogger("app.db")
events_log = logging.getLogger("app.events")  # a JSON line for each event recorded (SPEC §9)
HERE = Path(__file__).parent
# Installed wheels carry the migrations inside the package; a source checkout has them
# at the top level.
MIGRATIONS_DIR = next(p for p in (HERE / "migrations", HERE.parent / "migrations") if p.is_dir())
READERS = 4
# Seconds a client refused by a primary that lost its role waits before trying again.
REFUSED_RETRY_AFTER = 5
# Commit times kept for the replication-lag measurement (see app.ops.replication.LagMonitor):
# one entry per COMMIT_GRAIN-second slot holding that slot's newest commit, and no more
# than COMMIT_LOG entries (over an hour of steady writes without a confirmation).
COMMIT_GRAIN = 0.05
COMMIT_LOG = 100_000
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def pragmas(replicated: bool) -> list[str]:
    """The connection pragmas, busy_timeout first so that the others can wait for a lock."""
    statements = [
        "PRAGMA busy_timeout = 5000",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = NORMAL",
        "PRAGMA foreign_keys = ON",
        # Each connection's own page cache: 512 KiB rather than SQLite's 2 MiB, which the
        # five connections filled with the rows of every card scanned (6 MiB of the app's
        # memory with 10,000 cards); the file's pages stay in the OS's cache, and the
        # console's year of stats reads as fast (docs/performance.md).
        "PRAGMA cache_size = -512",
    ]
    if replicated:
        # Litestream checkpoints the WAL itself once it has copied it; an automatic
        # checkpoint could otherwise recycle WAL pages it has not read yet.
        statements.append("PRAGMA wal_autocheckpoint = 0")
    return statements


# Where every stored time comes from: a function answering an aware UTC datetime.
Clock = Callable[[], datetime]


def utc_clock() -> datetime:
    """The real clock, and every Database's unless a test sets another."""
    return datetime.now(UTC)


def utcnow() -> str:
    """The current UTC time in the stored form, for the steps that run before any Database
    exists (recording a migration, renewing the history after a restore)."""
    return isoformat(utc_clock())


def isoformat(moment: datetime) -> str:
    """An aware datetime in the form every table stores (UTC, microseconds, `Z`)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def migrate(path: Path) -> list[str]:
    """Apply pending migrations in name order; returns the names applied. Raises sqlite3.Error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in pragmas(replicated=False)[:2]:
            conn.execute(statement)
        conn.execute(
            "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        done = {name for (name,) in conn.execute("SELECT name FROM migrations")}
        applied = []
        for file in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if file.name in done:
                continue
            # One transaction per file: a failing migration leaves nothing behind.
            try:
                conn.execute("BEGIN IMMEDIATE")
                for statement in _statements(file.read_text()):
                    conn.execute(statement)
                conn.execute("INSERT INTO migrations (name, applied_at) VALUES (?, ?)", (file.name, utcnow()))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            applied.append(file.name)
        return applied
    finally:
        conn.close()


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return [s for s in statements if s.rstrip(";").strip()]


class Tx:
    """One write transaction: its connection, its time, and what follows its commit.

    `now` is read once from the database's clock when the transaction begins, so every
    row an operation writes carries the same time, and `now_text` is that time in the
    stored form. `emit(type, data, ...)` writes an event row (SPEC §9) inside the
    transaction, so a change and its event exist together or not at all; once committed,
    the events are logged and the database's event listeners (the live stream, the
    webhook sender) are woken. `after_commit(fn)` registers a plain function (forget a
    cached card, wake the outbox, count a metric) to call once COMMIT has succeeded, in
    the order registered, and never after a rollback.
    """

    __slots__ = ("conn", "now", "now_text", "_after_commit", "_db", "_emitted")

    def __init__(self, conn: aiosqlite.Connection, now: datetime, db: Database | None = None) -> None:
        self.conn = conn
        self.now = now
        self.now_text = isoformat(now)
        self._after_commit: list[Callable[[], object]] = []
        self._db = db
        self._emitted: list[tuple[str, str, str | None, str | None]] = []

    def after_commit(self, fn: Callable[[], object]) -> None:
        """Call `fn()` once this transaction has committed (not if it rolls back)."""
        self._after_commit.append(fn)

    async def emit(self, type: str, data: dict, *, actor_id: str | None = None, user_id: str | None = None) -> str:
        """Record an event of `type` about `data` (its public shape: JSON, never a secret),
        done by `actor_id` (None: the system or a visitor) and belonging to `user_id` (who
        may see it besides admins). Returns its eventId."""
        assert self._db is not None, "events are written through Database.write()"
        event_id = self._db.next_event_id(self.now)
        await self.conn.execute(
            "INSERT INTO events (event_id, type, occurred_at, actor_id, user_id, data) VALUES (?, ?, ?, ?, ?, ?)",
            (event_id, type, self.now_text, actor_id, user_id, json.dumps(data, separators=(",", ":"), ensure_ascii=False)),
        )
        if not self._emitted:
            self._after_commit.append(self._announce)
        self._emitted.append((event_id, type, actor_id, user_id))
        return event_id

    async def emit_many(self, type: str, items: list[tuple[dict, str | None]], *, actor_id: str | None = None) -> None:
        """`emit` of many events of one type at once, `(data, user_id)` each, in one statement:
        a counter flush records one event per card it wrote, and a statement per event would
        make a large flush several times slower."""
        assert self._db is not None, "events are written through Database.write()"
        if not items:
            return
        rows = []
        for data, user_id in items:
            event_id = self._db.next_event_id(self.now)
            rows.append((event_id, type, self.now_text, actor_id, user_id, json.dumps(data, separators=(",", ":"), ensure_ascii=False)))
            self._emitted.append((event_id, type, actor_id, user_id))
        await self.conn.executemany(
            "INSERT INTO events (event_id, type, occurred_at, actor_id, user_id, data) VALUES (?, ?, ?, ?, ?, ?)", rows
        )
        if self._announce not in self._after_commit:
            self._after_commit.append(self._announce)

    def _announce(self) -> None:
        for event_id, type, actor_id, user_id in self._emitted:
            events_log.info("event %s", type, extra={"fields": {"event": type, "event_id": event_id, "actor_id": actor_id,
                                                                "user_id": user_id}})
        assert self._db is not None
        for listener in self._db.event_listeners:
            listener()

    def _committed(self) -> None:
        for fn in self._after_commit:
            try:
                fn()
            except Exception:
                # The data is committed and the caller is told so: a failing follow-up
                # (a cache, a metric) must not turn that into an error, nor skip the rest.
                log.exception("after-commit step %r failed", fn)


class Database:
    """One writer connection behind a lock, a small pool of readers, and the clock every
    stored time is read from (`clock`, a function; tests set their own)."""

    def __init__(self, path: Path, replicated: bool = False, clock: Clock = utc_clock) -> None:
        self.path = path
        self.replicated = replicated
        self.clock = clock
        self._writer: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all_readers: list[aiosqlite.Connection] = []
        # Wall-clock times of recent commits, oldest first; see `oldest_commit_after`.
        self.commit_times: collections.deque[float] = collections.deque()
        self.last_commit_at: float | None = None  # None until this process commits
        # The first commit a full log could not hold; None while the log holds every one.
        self.unlogged_since: float | None = None
        # Called after each commit that recorded events (the live stream, the webhook sender).
        self.event_listeners: list[Callable[[], None]] = []
        self._last_event: tuple[int, int] = (0, 0)  # (milliseconds, randomness) of the last eventId
        # Set when this primary lost its role to another (app/ops/failover.py): every write
        # is refused with errors.Unavailable from then on.
        self.refuse_writes: str | None = None

    def next_event_id(self, now: datetime) -> str:
        """A ULID for an event: 48 bits of milliseconds and 80 of randomness, in Crockford's
        base32, increasing (within a millisecond, and when the clock steps back, the last
        one plus one): events are written by the one writer, so text order is commit order."""
        millis = int(now.timestamp() * 1000)
        last_millis, last_random = self._last_event
        if millis <= last_millis:
            millis, randomness = last_millis, last_random + 1
        else:
            randomness = secrets.randbits(79)  # room to count up within the millisecond
        self._last_event = (millis, randomness)
        value = (millis << 80) | randomness
        return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def open(self) -> None:
        """Migrate, then open the connections. Raises sqlite3.Error.

        Under `qrcontact serve` the command has migrated already, before Litestream
        started, so nothing is pending here.
        """
        if applied := await asyncio.to_thread(migrate, self.path):
            log.info("migrations applied: %s", ", ".join(applied))
        self._writer = await self._connect()
        await _lower_thread_priority(self._writer)
        for _ in range(READERS):
            reader = await self._connect()
            self._all_readers.append(reader)
            self._readers.put_nowait(reader)

    async def close(self) -> None:
        for conn in [*self._all_readers, self._writer]:
            if conn is not None:
                await conn.close()
        self._all_readers.clear()
        self._writer = None

    async def _connect(self) -> aiosqlite.Connection:
        # aiosqlite.connect would open it with Python's own sqlite3 module.
        conn = await aiosqlite.Connection(lambda: sqlite3.connect(self.path, isolation_level=None), iter_chunk_size=64)
        conn.row_factory = sqlite3.Row
        for statement in pragmas(self.replicated):
            await conn.execute(statement)
        return conn

    def now(self) -> datetime:
        """The clock's time, for reads that compare with stored times (a write uses `Tx.now`)."""
        return self.clock()

    def seconds(self) -> float:
        """The clock's time as Unix seconds, for the scan counters' hot path."""
        # The real clock read as a float costs a seventh of a datetime, on every scan.
        return time.time() if self.clock is utc_clock else self.clock().timestamp()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A `BEGIN IMMEDIATE` transaction on the one writer, committed on exit, rolled back on
        error; its after-commit steps run once it has committed. Raises errors.Unavailable
        when this primary lost its role (`refuse_writes`)."""
        assert self._writer is not None, "database is not open"
        if self.refuse_writes is not None:
            raise Unavailable(self.refuse_writes, retry_after=REFUSED_RETRY_AFTER)
        writer = self._writer
        async with self._write_lock:
            changes = writer.total_changes
            try:
                await writer.execute("BEGIN IMMEDIATE")
                # Read once the lock is held, so the times written follow the commit order.
                tx = Tx(writer, self.clock(), self)
                yield tx
                # The commit's moment for the replication lag is read before COMMIT: the
                # commit lands in the WAL on the writer's thread, and Litestream may cut it
                # into a file before this coroutine runs again (a turn of the loop under a
                # crowd of scans). Read after, it could be later than that file, which then
                # did not count as holding it: a lag of a second that was not there.
                committing_at = time.time()
                # COMMIT can fail too (a full disk when the WAL grows): it must roll back
                # like any other failure, or the writer would stay inside a dead transaction
                # and refuse every later write.
                await writer.execute("COMMIT")
            except BaseException:
                # Unconditionally: after SQLITE_FULL SQLite may already have rolled back, and
                # when the task is cancelled while a statement (BEGIN included) still waits on
                # the connection's thread, it runs anyway, so `in_transaction` cannot be
                # trusted yet. A ROLLBACK queued behind it always ends the transaction.
                try:
                    await writer.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # none was open; the original error is the one to report
                raise
            # A transaction that changed nothing (the outbox finding no due mail) adds no
            # WAL frame, so Litestream has nothing to replicate: counted, it would read
            # as a lag that grows until the next real write.
            if writer.total_changes != changes:
                self._record_commit(committing_at)
        tx._committed()

    def _record_commit(self, at: float) -> None:
        self.last_commit_at = at
        times = self.commit_times
        if times and int(times[-1] / COMMIT_GRAIN) == int(at / COMMIT_GRAIN):
            # Same slot: keep its newest commit, so a slot counts as replicated only
            # once all of it is.
            times[-1] = at
        elif len(times) < COMMIT_LOG and self.unlogged_since is None:
            times.append(at)
        elif self.unlogged_since is None:
            # A full log keeps its oldest entries, and takes no new one until every commit
            # it could not hold is replicated: one appended after the gap would read as
            # the oldest waiting once the log's own were replicated.
            self.unlogged_since = at

    def oldest_commit_after(self, moment: float) -> float | None:
        """The time of the oldest commit at or after `moment` (None if none), forgetting older ones."""
        times = self.commit_times
        while times and times[0] < moment:
            times.popleft()
        if times:
            return times[0]
        if self.unlogged_since is None:
            return None
        if self.last_commit_at is not None and self.last_commit_at < moment:
            self.unlogged_since = None  # every commit the log could not hold is replicated
            return None
        # Some commit the log could not hold waits: count from the first of them, or from
        # `moment` if that is later, rather than report no lag.
        return max(moment, self.unlogged_since)

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[aiosqlite.Connection]:
        """A reader connection from the pool (autocommit: each statement sees the latest commit)."""
        conn = await self._readers.get()
        try:
            yield conn
        finally:
            self._readers.put_nowait(conn)


# The writer's thread yields the CPU to the event loop when both want it: a flush of
# scan events is tens of thousands of rows under a crowd, and the requests should not
# queue behind it (on one core it would otherwise take half the CPU while it runs).
# With nice 10 it still gets about a tenth of a saturated core, and all of an idle one.
WRITER_NICE = 10


def _nice_this_thread(increment: int) -> int:
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
    return 0


async def _lower_thread_priority(conn: aiosqlite.Connection) -> None:
    """Run `_nice_this_thread` on the connection's own thread, as an SQL function (the public way in)."""
    try:
        await conn.create_function("qrcontact_nice", 1, _nice_this_thread)
        await conn.execute("SELECT qrcontact_nice(?)", (WRITER_NICE,))
    except (sqlite3.Error, OSError):  # not Linux, or not allowed: the default priority is fine
        pass


async def fetch_one(conn: aiosqlite.Connection, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
    async with conn.execute(sql, params) as cursor:
        return await cursor.fetchone()


async def fetch_all(conn: aiosqlite.Connection, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
    async with conn.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


# How handlers ask for the app's database (injected by name, see main.create_app).
DatabaseDep = NamedDependency[Database]
