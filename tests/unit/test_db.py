"""The database: migrations applied in order and recorded, pragmas, one writer, atomic writes."""

from __future__ import annotations

import asyncio
import time

import pytest

from app import db as dbmodule
from app.db import Database, migrate
from app.sqlite import sqlite3


def test_migrations_are_applied_once_and_recorded(tmp_path):
    path = tmp_path / "m.db"
    applied = migrate(path)
    files = sorted(p.name for p in dbmodule.MIGRATIONS_DIR.glob("*.sql"))
    assert applied == files
    assert migrate(path) == []
    recorded = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM migrations ORDER BY name")]
    assert recorded == files


def test_a_failing_migration_leaves_nothing_behind(tmp_path, monkeypatch):
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_ok.sql").write_text("CREATE TABLE a (x INTEGER);")
    (folder / "0002_broken.sql").write_text("CREATE TABLE b (x INTEGER);\nINSERT INTO nowhere VALUES (1);")
    monkeypatch.setattr(dbmodule, "MIGRATIONS_DIR", folder)
    path = tmp_path / "m.db"
    with pytest.raises(sqlite3.OperationalError):
        migrate(path)
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "a" in tables and "b" not in tables
    assert [r[0] for r in conn.execute("SELECT name FROM migrations")] == ["0001_ok.sql"]


def test_pragmas_and_rollback(tmp_path):
    async def scenario():
        database = Database(tmp_path / "p.db")
        await database.open()
        try:
            async with database.read() as conn:
                async with conn.execute("PRAGMA journal_mode") as cur:
                    assert (await cur.fetchone())[0] == "wal"
                async with conn.execute("PRAGMA foreign_keys") as cur:
                    assert (await cur.fetchone())[0] == 1
                async with conn.execute("PRAGMA busy_timeout") as cur:
                    assert (await cur.fetchone())[0] == 5000
            with pytest.raises(RuntimeError):
                async with database.write() as tx:
                    await tx.conn.execute("INSERT INTO retired_slugs VALUES ('half-written', 'now')")
                    raise RuntimeError("fail mid-transaction")
            async with database.read() as conn:
                async with conn.execute("SELECT count(*) FROM retired_slugs") as cur:
                    assert (await cur.fetchone())[0] == 0
        finally:
            await database.close()

    asyncio.run(scenario())


def test_replicated_databases_leave_checkpoints_to_litestream(tmp_path):
    async def scenario():
        database = Database(tmp_path / "r.db", replicated=True)
        await database.open()
        try:
            async with database.write() as tx:
                async with tx.conn.execute("PRAGMA wal_autocheckpoint") as cur:
                    assert (await cur.fetchone())[0] == 0
        finally:
            await database.close()

    asyncio.run(scenario())


def test_only_a_transaction_that_changed_something_waits_for_the_replica(tmp_path):
    """The replication lag counts commits the replica does not hold yet. A transaction that
    changed nothing (the outbox finding no due mail) writes no WAL frame, so Litestream
    never replicates anything for it: counted, it read as a lag growing for minutes."""

    async def scenario():
        database = Database(tmp_path / "r.db", replicated=True)
        await database.open()
        try:
            before = time.time()
            async with database.write() as tx:
                await tx.conn.execute("UPDATE migrations SET applied_at = applied_at WHERE name = 'none such'")
            assert database.oldest_commit_after(before) is None
            async with database.write() as tx:
                await tx.conn.execute("UPDATE migrations SET applied_at = applied_at")
            assert database.oldest_commit_after(before) == database.last_commit_at >= before
        finally:
            await database.close()

    asyncio.run(scenario())


def test_commits_a_full_log_could_not_hold_count_until_they_are_replicated(tmp_path, monkeypatch):
    """The commit log for the replication lag is bounded. A commit after it filled used to be
    logged as soon as some replicated entries made room, after a gap of commits it never
    held; once the log's own were replicated, that later one read as the oldest waiting,
    and the gap's commits, not replicated, went uncounted."""
    monkeypatch.setattr(dbmodule, "COMMIT_LOG", 3)
    database = Database(tmp_path / "log.db", replicated=True)  # the bookkeeping alone: never opened
    for at in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):  # seconds apart: a slot each
        database._record_commit(at)
    assert database.oldest_commit_after(2.5) == 3.0  # room for more in the log now
    database._record_commit(7.0)
    assert database.oldest_commit_after(3.5) == 4.0  # the first commit the log could not hold
    assert database.oldest_commit_after(6.5) == 6.5  # 7.0 waits, counted from what is confirmed
    assert database.oldest_commit_after(7.5) is None  # all replicated: the log takes commits again
    database._record_commit(8.0)
    assert database.oldest_commit_after(7.5) == 8.0


def test_concurrent_writes_all_land(tmp_path):
    async def scenario():
        database = Database(tmp_path / "c.db")
        await database.open()
        try:
            async def write(i):
                async with database.write() as tx:
                    await tx.conn.execute("INSERT INTO retired_slugs VALUES (?, 'now')", (f"slug-{i}",))

            await asyncio.gather(*(write(i) for i in range(200)))
            async with database.read() as conn:
                async with conn.execute("SELECT count(*) FROM retired_slugs") as cur:
                    return (await cur.fetchone())[0]
        finally:
            await database.close()

    assert asyncio.run(scenario()) == 200


def test_a_write_cancelled_while_it_begins_leaves_no_transaction_open(tmp_path):
    """Shutdown cancels the counter flusher wherever it is, even while BEGIN is queued."""

    async def scenario():
        database = Database(tmp_path / "c.db")
        await database.open()
        try:
            async def write_one():
                async with database.write() as tx:
                    await tx.conn.execute("INSERT INTO retired_slugs VALUES ('cancelled', 'now')")

            task = asyncio.create_task(write_one())
            await asyncio.sleep(0)  # the task now waits for BEGIN IMMEDIATE on the writer's thread
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            async with database.write() as tx:
                await tx.conn.execute("INSERT INTO retired_slugs VALUES ('after', 'now')")
            async with database.read() as conn:
                async with conn.execute("SELECT slug FROM retired_slugs") as cur:
                    assert [row[0] for row in await cur.fetchall()] == ["after"]
        finally:
            await database.close()

    asyncio.run(scenario())


def test_a_failed_commit_rolls_back_and_the_writer_keeps_working(tmp_path):
    # A deferred foreign key is checked at COMMIT, which then fails with the transaction
    # still open; the writer must roll it back, or every later write would fail.
    async def scenario():
        database = Database(tmp_path / "f.db")
        await database.open()
        try:
            with pytest.raises(sqlite3.IntegrityError):
                async with database.write() as tx:
                    await tx.conn.execute("PRAGMA defer_foreign_keys = ON")
                    await tx.conn.execute(
                        "INSERT INTO api_keys (key_id, user_id, name, key_hash, prefix, created_at)"
                        " VALUES ('k', 'no-such-user', 'n', 'h', 'p', 'now')"
                    )
            async with database.write() as tx:
                await tx.conn.execute("INSERT INTO retired_slugs VALUES ('after', 'now')")
            async with database.read() as conn:
                async with conn.execute("SELECT (SELECT count(*) FROM api_keys), (SELECT count(*) FROM retired_slugs)") as cur:
                    return tuple(await cur.fetchone())
        finally:
            await database.close()

    assert asyncio.run(scenario()) == (0, 1)
