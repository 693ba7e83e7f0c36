"""The `qrcontact` command: serve, migrate, restore, verify-backup, promote, probe.

`serve` on an edge (ROLE=edge) runs the app alone: it keeps a read-only copy of the
primary's replica itself (app/edge/local_copy.py). On the primary, `serve` restores a missing
database from the replica and migrates it, then replaces
itself with `litestream replicate -exec "qrcontact run-app"`: Litestream replicates while
the app runs (the app serves only once Litestream has the database open), and makes a
last sync after the app has drained and exited on SIGTERM. Which of the two a node is, once
an edge has been promoted (`promote`), is the replica's lease's to say (app/ops/failover.py).
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import json
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from app.config import ConfigError, Settings
from app.sqlite import FIXED_VERSION, sqlite3

if TYPE_CHECKING:
    from litestar import Litestar

LOCK_NAME = "qrcontact.lock"
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
SWITCH_INTERVAL = 0.0005  # seconds; see run_app


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if request_id := getattr(record, "request_id", None):
            entry["request_id"] = request_id
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str) -> None:
    from app.ops.monitoring import RequestIdFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    # On the handler, so records from every logger (the app's, uvicorn's) carry the id.
    handler.addFilter(RequestIdFilter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def private_data_folder(settings: Settings) -> None:
    """Make the data folder 0700, new or not: what an older version or another umask left
    in it is then out of other users' reach too."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        settings.data_dir.chmod(0o700)
    except PermissionError:  # a folder another user owns: say so, and serve as before
        logging.getLogger("app").warning("cannot make the data folder %s private (mode 0700): it is not ours", settings.data_dir)


def hold_lock(settings: Settings) -> int:
    """Lock the data folder for as long as this process lives. Raises BlockingIOError if taken."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(settings.data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def limit_malloc_arenas() -> bool:
    """glibc gives each thread that allocates its own malloc arena (the database connections'
    threads, the drawing threads), and memory freed in one is not reused by another: with
    MALLOC_ARENAS, 10,000 cached codes take 6 MiB less, the scan path's speed unchanged
    (docs/performance.md). Set before the app starts a thread; an operator's
    MALLOC_ARENA_MAX wins (glibc has read it). Returns whether the C library took it."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    import ctypes

    try:
        return ctypes.CDLL(None).mallopt(M_ARENA_MAX, MALLOC_ARENAS) == 1
    except (OSError, AttributeError):  # not glibc
        return False


def run_app(settings: Settings) -> int:
    import uvicorn

    from app.main import create_app

    try:
        hold_lock(settings)
    except BlockingIOError:
        print(f"qrcontact: another qrcontact is already using {settings.data_dir}", file=sys.stderr)
        return 1
    limit_malloc_arenas()  # before the app starts its threads
    log = logging.getLogger("app")
    if sqlite3.sqlite_version_info < FIXED_VERSION:
        log.warning(
            "SQLite %s has the WAL-reset bug fixed in 3.51.3, which can corrupt the database when the app "
            "and Litestream write at the same moment: no pysqlite3 wheel for this platform (docs/operations.md, 'SQLite versions')",
            sqlite3.sqlite_version,
        )
    # uvicorn drains on SIGTERM (and SIGINT, Fly's default kill signal) and then re-raises
    # the signal to whatever handler was here before; a drained shutdown is a success,
    # so that handler exits 0.
    signal.signal(signal.SIGTERM, drained)
    signal.signal(signal.SIGINT, drained)
    app = create_app(settings)
    # Everything built so far (modules, routes, the app) lives as long as the process.
    # Frozen, the garbage collector stops walking it: a full collection walked some
    # hundred thousand objects each time, 30 ms and more with the event loop stopped,
    # which under a crowd of scans came every few seconds (bench/scanners.py).
    gc.collect()
    gc.freeze()
    # A thread running Python (a console page drawn, a QR code rendered, rows read) keeps the
    # GIL until the loop has waited this long for it: 5 ms by default, more than a scan's
    # whole answer takes under a crowd (docs/performance.md, "Console and scans on one machine").
    sys.setswitchinterval(SWITCH_INTERVAL)
    uvicorn.run(app, host=settings.host, port=settings.port, **server_options(app))
    return 0


def drained(*_) -> None:
    """After uvicorn has drained: exit 0, or, at an edge `promote` named the primary
    (app/ops/failover.py), become `qrcontact serve` again in this process, as the primary."""
    from app.ops import failover

    if failover.Restart.wanted:
        os.execv(sys.executable, [sys.executable, "-m", "app.cli", "serve"])
    sys.exit(0)


def server_options(app: Litestar) -> dict:
    """How uvicorn serves the app (tests start their live servers with the same)."""
    from app.public.door import protocol

    return {
        # httptools, with the scanner fast path asked first (app/public/door.py); the event
        # streams ended when shutdown begins, or uvicorn would wait for them (app/events/stream.py).
        "http": protocol(app.state.fast_path, streams.close_all if (streams := app.state.get("event_streams")) else None),
        "ws": "none",  # no WebSocket route: uvicorn would import a WebSocket library for nothing
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,
        "timeout_graceful_shutdown": 20,
    }


def serve(settings: Settings) -> int:
    from app.ops import failover, replication

    if not settings.replication_enabled:
        return run_app(settings)  # the app migrates as it opens the database
    # Who is the primary is the lease's to say, not ROLE's, once an edge has been promoted.
    os.environ[failover.BASE_VARIABLE] = settings.replica_url
    try:
        settings, held = failover.resolve(settings)
    except failover.LeaseError as exc:
        print(f"qrcontact: {exc}", file=sys.stderr)
        return 1
    if settings.is_edge:
        # An edge writes nothing to replicate: it restores and follows its own read-only
        # copy of the primary's replica (app/edge/local_copy.py), and migrates nothing.
        return run_app(settings)
    try:
        lock = hold_lock(settings)
    except BlockingIOError:
        print(f"qrcontact: another qrcontact is already using {settings.data_dir}", file=sys.stderr)
        return 1
    try:
        if held is not None:  # a promoted primary: the newest epoch's replica, into a new history
            failover.restore_newest(settings, replication.restore_if_replica_exists)
        applied = replication.prepare(settings)
    except (replication.ReplicationError, sqlite3.Error) as exc:
        print(f"qrcontact: {exc}", file=sys.stderr)
        return 1
    logging.getLogger("app").info("migrations applied: %s", ", ".join(applied) or "none pending")
    # Released here (its descriptor would not survive the exec anyway); `run-app` takes it again.
    os.close(lock)
    command = replication.replicate_command(settings, [sys.executable, "-m", "app.cli", "run-app"])
    # exec: Litestream becomes this process, so the container's signals reach it directly.
    env = replication.environment(settings)
    if held is not None:  # the app under Litestream: the primary of this epoch, at its path
        env.update(ROLE="primary", REPLICA_URL=settings.replica_url)
        if settings.fly_region:
            env["PRIMARY_REGION"] = settings.fly_region
    os.execve(command[0], command, env)
    return 1  # not reached


def promote(settings: Settings, public_url: str | None, internal_url: str | None) -> int:
    """Make this node the primary (app/ops/failover.py): claim the next epoch, then either
    the running service restarts itself as the primary, or this command becomes it."""
    from app.ops import failover

    os.environ[failover.BASE_VARIABLE] = settings.replica_url
    try:
        lease = failover.promote(settings, public_url, internal_url)
    except failover.LeaseError as exc:
        print(f"qrcontact: {exc}", file=sys.stderr)
        return 1
    print(f"this node is the primary of epoch {lease.epoch}: {failover.describe(lease)}")
    try:
        fd = hold_lock(settings)
    except BlockingIOError:
        print(f"the service running here restarts as the primary within {failover.LEASE_EVERY:.0f} s")
        return 0
    os.close(fd)
    print("no service runs here: serving as the primary now")
    return serve(settings)


def restore(settings: Settings, timestamp: str | None) -> int:
    from app.ops import replication

    try:
        fd = hold_lock(settings)
    except BlockingIOError:
        print("qrcontact: the service is running; stop it before restoring", file=sys.stderr)
        return 1
    try:
        replication.restore(settings, timestamp)
    except replication.ReplicationError as exc:
        print(f"qrcontact: {exc}", file=sys.stderr)
        return 1
    finally:
        os.close(fd)
    print(f"restored {settings.database_path}")
    return 0


def verify_backup(settings: Settings) -> int:
    from app.ops import replication

    try:
        result = replication.verify_backup(settings)
    except replication.ReplicationError as exc:
        print(f"qrcontact: {exc}", file=sys.stderr)
        return 1
    print(f"integrity_check: {result}")
    return 0 if result == "ok" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qrcontact", description="Digital contact cards with QR codes.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="start the service (under Litestream unless REPLICA_URL=off)")
    commands.add_parser("run-app", help="start the app alone; what serve runs under Litestream")
    commands.add_parser("migrate", help="apply pending database migrations")
    restore_parser = commands.add_parser("restore", help="restore the database from the replica")
    restore_parser.add_argument("--timestamp", help="point in time, RFC 3339 (e.g. 2026-01-02T15:04:05Z)")
    commands.add_parser("verify-backup", help="restore the replica to a temp file and check its integrity")
    promote_parser = commands.add_parser("promote", help="make this edge the primary (failover; docs/operations.md)")
    promote_parser.add_argument("--public-url", help="this node's public origin, for the edges' proxy (default http://HOST:PORT)")
    promote_parser.add_argument("--internal-url", help="this node's internal port as edges reach it (default http://HOST:INTERNAL_PORT)")
    probe_parser = commands.add_parser("probe", help="smoke-test a running service: health, a card's link, page and vCard, the docs")
    probe_parser.add_argument("url", help="the service's base URL, e.g. https://cards.example.com")
    probe_parser.add_argument("--slug", help="a card to check: its short link, page and vCard (HEAD only: nothing counted)")
    args = parser.parse_args(argv)
    if args.command == "probe":  # a client of a service, maybe on another host: no settings, no data folder
        from app.ops import probe  # httpx, which `serve` itself does not need

        return probe.run(args.url, args.slug)

    # Whatever the caller's umask, every file this process and its children (Litestream,
    # the app under it) create is the service user's alone: the database, its WAL and
    # SHM, the edge outbox, outbox emails with live reset and invitation links, the JWT
    # secret, the replica folder and restored copies. A umask, because SQLite, Litestream
    # and tempfile create most of them.
    os.umask(0o077)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"qrcontact: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    private_data_folder(settings)

    if args.command == "serve":
        return serve(settings)
    if args.command == "run-app":
        return run_app(settings)
    if args.command == "migrate":
        from app.db import migrate

        applied = migrate(settings.database_path)
        print("applied: " + (", ".join(applied) if applied else "nothing pending"))
        return 0
    if args.command in ("restore", "verify-backup"):  # the current primary's replica (app/ops/failover.py)
        from app.ops import failover

        try:
            settings = failover.current(settings)
        except failover.LeaseError as exc:
            print(f"qrcontact: {exc}", file=sys.stderr)
            return 1
    if args.command == "restore":
        return restore(settings, args.timestamp)
    if args.command == "promote":
        return promote(settings, args.public_url, args.internal_url)
    return verify_backup(settings)


if __name__ == "__main__":
    sys.exit(main())
