"""Operations: health, diagnostics, Prometheus metrics and their access token, request ids
in logs, and the gauges read from the database file and the replica.

Every HTTP request gets a request id (the caller's `X-Request-ID` when it is sane, else a
new one): it is answered in `X-Request-ID`, set in a context variable that a logging
filter copies into every log line written while serving the request, and ends the
request's one access-log line.

Gauges that come from the database (email queue depth, k-factor) are refreshed when
/metrics is scraped, so they are as fresh as the scrape and cost nothing in between.
"""

from __future__ import annotations

import hmac
import logging
import math
import re
import shutil
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

import msgspec
from litestar import Request, Response, Router, get
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders, State
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.openapi import ResponseSpec
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Info

from app import __version__, mail, qr
from app.api.guards import require_admin
from app.api.problems import AUTHENTICATED, problems
from app.config import Settings, SettingsDep
from app.db import Database, DatabaseDep, fetch_all, fetch_one
from app.events import webhooks
from app.ops import tally
from app.ops.replication import LagMonitor, ReplicationState
from app.sharing import kfactor
from app.sqlite import sqlite3

log = logging.getLogger("app.ops")
access_log = logging.getLogger("app.access")

# The replica is "lagging" past this, the threshold of the QRContactReplicationLag alert.
LAG_WARNING_SECONDS = 60
ACTIVE_WINDOW_SECONDS = 15 * 60


# --- metrics read at scrape time -----------------------------------------------------

REPLICATION_LAG = Gauge(
    "replication_lag_seconds",
    "Age of the oldest commit the Litestream replica does not hold yet (0 when it holds all; NaN without replication)",
)
DATABASE_BYTES = Gauge("sqlite_database_bytes", "Size of the SQLite database file")
WAL_BYTES = Gauge("sqlite_wal_bytes", "Size of the SQLite write-ahead log")
# The file system the data folder is on (Fly's volume, a disk): the QRContactDataVolumeFull alert.
DATA_VOLUME_USED = Gauge("data_volume_used_bytes", "Bytes used on the file system that holds the data folder")
DATA_VOLUME_SIZE = Gauge("data_volume_size_bytes", "Size of the file system that holds the data folder")
ACTIVE_USERS = Gauge("active_users", "Distinct users who made an authenticated request in the last 15 minutes")
BACKUP_LAST_VERIFIED = Gauge(
    "backup_last_verified_timestamp_seconds",
    "When the service last restored the replica and found it intact (Unix time; 0 before this process's "
    "first check, NaN when the check is off), see app/ops/backups.py",
)
BACKUP_VERIFY_FAILURES = Counter(
    "backup_verify_failures", "Checks of the replica that failed to restore it or found the copy damaged"
)
SQLITE_INFO = Info("sqlite", "The SQLite library the app links")
SQLITE_INFO.info({"version": sqlite3.sqlite_version})


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def volume_usage(folder: Path) -> tuple[int, int]:
    """Bytes used and the size of the file system holding the folder ((0, 0) when it is not there yet)."""
    try:
        usage = shutil.disk_usage(folder)
    except FileNotFoundError:
        return 0, 0
    return usage.total - usage.free, usage.total


def wal_path(db: Database) -> Path:
    return db.path.with_name(db.path.name + "-wal")


class ActiveUsers:
    """Users seen on authenticated requests, by when they were last seen."""

    def __init__(self, window: float = ACTIVE_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._seen: dict[str, float] = {}

    def seen(self, user_id: str) -> None:
        # Re-inserted at the end, so the dict stays ordered by last sight.
        self._seen.pop(user_id, None)
        self._seen[user_id] = self.clock()

    def count(self) -> int:
        cutoff = self.clock() - self.window
        while self._seen:
            oldest = next(iter(self._seen))
            if self._seen[oldest] >= cutoff:
                break
            del self._seen[oldest]
        return len(self._seen)


def bind_gauges(db: Database, monitor: LagMonitor, active: ActiveUsers) -> None:
    """Point the scrape-time gauges at this app's database, replica monitor and users.

    prometheus_client's registry is process-wide; one process serves one app, and tests
    that build several apps get the gauges of the latest one.
    """
    DATABASE_BYTES.set_function(lambda: file_size(db.path))
    WAL_BYTES.set_function(lambda: file_size(wal_path(db)))
    DATA_VOLUME_USED.set_function(lambda: volume_usage(db.path.parent)[0])
    DATA_VOLUME_SIZE.set_function(lambda: volume_usage(db.path.parent)[1])
    ACTIVE_USERS.set_function(active.count)

    def lag() -> float:
        value = monitor.lag()
        return math.nan if value is None else value

    REPLICATION_LAG.set_function(lag)


# --- request ids and the access log --------------------------------------------------

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
REQUEST_ID_SHAPE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Probed every few seconds by the platform: their access lines only show at DEBUG.
QUIET_PATHS = frozenset({"/health", "/metrics"})


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every log record made while a request is being served."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def request_context(app: ASGIApp) -> ASGIApp:
    """Wrap the whole app: request id, access-log line, active-user sighting (the app's
    `state.active_users`)."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if REQUEST_ID_SHAPE.fullmatch(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableScopeHeaders.from_message(message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            user = scope.get("user")
            if user is not None and hasattr(user, "user_id"):
                scope["litestar_app"].state.active_users.seen(user.user_id)
            # The route's template, so capability tokens and slugs stay out of the log.
            path = scope.get("path_template") or scope["path"][:200]
            level = logging.DEBUG if scope["path"] in QUIET_PATHS else logging.INFO
            access_log.log(
                level,
                "%s %s %d",
                scope["method"],
                path,
                status,
                extra={"fields": {"method": scope["method"], "path": path, "status": status,
                                  "duration_ms": round((time.perf_counter() - started) * 1000, 2)}},
            )
            REQUEST_ID.reset(token)

    return handle


# --- health --------------------------------------------------------------------------


class ReplicationHealth(msgspec.Struct, rename="camel"):
    enabled: bool
    litestream_running: bool | None
    lag_seconds: float | None


class Health(msgspec.Struct, rename="camel"):
    status: str
    checks: dict[str, str]
    version: str
    replication: ReplicationHealth


async def database_check(db: Database) -> str:
    try:
        async with db.read() as conn:
            await fetch_one(conn, "SELECT count(*) FROM migrations")
        return "ok"
    except Exception as exc:  # any failure here means the database is not usable
        log.error("health check: database unusable: %s", exc)
        return f"error: {type(exc).__name__}"


def replication_check(state: ReplicationState) -> str:
    if not state.enabled:
        return "off"
    if state.running is False:
        return "litestream not running"
    if state.lag_seconds is not None and state.lag_seconds > LAG_WARNING_SECONDS:
        return f"lagging {state.lag_seconds:.0f}s"
    return "ok"


@get(
    "/health", operation_id="health", summary="Liveness, the database and the replica", tags=["operations"],
    exclude_from_auth=True,
    responses={503: ResponseSpec(Health, description="The database is not usable", generate_examples=False)},
)
async def health(request: Request, db: DatabaseDep) -> Response[Health]:
    database = await database_check(db)
    replication: ReplicationState = request.app.state.replication.state()
    checks = {
        "database": database,
        "replication": replication_check(replication),
        # ok, "retrying: …" while SMTP fails, "stopped" if the worker is not running.
        "queue": await mail.health_check(request.app.state.outbox, db) if database == "ok" else "unknown",
    }
    # Only an unusable database fails the check: a lagging replica is for alerts, and a
    # restart (what a failing check leads to) would not make it catch up.
    healthy = database == "ok"
    return Response(
        Health(
            status="ok" if healthy else "error",
            checks=checks,
            version=__version__,
            replication=ReplicationHealth(replication.enabled, replication.running, _round(replication.lag_seconds)),
        ),
        status_code=200 if healthy else 503,
        headers={"Cache-Control": "no-store"},
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- diagnostics ---------------------------------------------------------------------


class DatabaseDiagnostics(msgspec.Struct, rename="camel"):
    path: str
    size_bytes: int
    wal_bytes: int
    quick_check: str
    journal_mode: str
    sqlite_version: str


class ReplicationDiagnostics(msgspec.Struct, rename="camel"):
    enabled: bool
    replica: str
    litestream_running: bool | None
    lag_seconds: float | None
    replica_txid: str | None
    replica_checked_at: str | None


class CacheDiagnostics(msgspec.Struct, rename="camel"):
    hits: int
    misses: int
    hit_rate: float | None


class QueueDiagnostics(msgspec.Struct, rename="camel"):
    depth: int


class Diagnostics(msgspec.Struct, rename="camel"):
    version: str
    uptime_seconds: float
    database: DatabaseDiagnostics
    replication: ReplicationDiagnostics
    queue: QueueDiagnostics
    caches: dict[str, CacheDiagnostics]


async def quick_check(db: Database) -> str:
    async with db.read() as conn:
        rows = await fetch_all(conn, "PRAGMA quick_check")
    return "\n".join(str(row[0]) for row in rows)


async def journal_mode(db: Database) -> str:
    async with db.read() as conn:
        row = await fetch_one(conn, "PRAGMA journal_mode")
    return str(row[0]) if row else "unknown"


def replica_location(settings: Settings) -> str:
    """The replica URL without its query (endpoint and region are not secret, but noisy)."""
    return settings.replica_url.split("?", 1)[0]


def cache_rates() -> dict[str, CacheDiagnostics]:
    tally.fold_all()  # the scanner paths count their cache lookups as tallies
    counts: dict[str, list[int]] = {}
    for index, counter in enumerate((qr.CACHE_HITS, qr.CACHE_MISSES)):
        for metric in counter.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    counts.setdefault(sample.labels["cache"], [0, 0])[index] = int(sample.value)
    return {
        name: CacheDiagnostics(hits, misses, round(hits / (hits + misses), 4) if hits + misses else None)
        for name, (hits, misses) in sorted(counts.items())
    }


async def queue_depth(db: Database) -> int:
    """Email jobs waiting to be sent."""
    async with db.read() as conn:
        waiting, _ = await mail.queue_state(conn)
    return waiting


@get(
    "/diagnostics", operation_id="adminDiagnostics", summary="Database, replica, queue and cache state (admin)",
    responses=problems(*AUTHENTICATED, 403),
)
async def diagnostics(request: Request, db: DatabaseDep, settings: SettingsDep) -> Diagnostics:
    return await collect_diagnostics(request.app.state, db, settings)


async def collect_diagnostics(state: State, db: Database, settings: Settings) -> Diagnostics:
    """What GET /v1/admin/diagnostics answers, and the console's System page shows."""
    replication: ReplicationState = state.replication.state()
    checked = replication.checked_at
    return Diagnostics(
        version=__version__,
        uptime_seconds=round(time.monotonic() - state.started_at, 3),
        database=DatabaseDiagnostics(
            path=str(db.path),
            size_bytes=file_size(db.path),
            wal_bytes=file_size(wal_path(db)),
            quick_check=await quick_check(db),
            journal_mode=await journal_mode(db),
            sqlite_version=sqlite3.sqlite_version,
        ),
        replication=ReplicationDiagnostics(
            enabled=replication.enabled,
            replica=replica_location(settings) if replication.enabled else "off",
            litestream_running=replication.running,
            lag_seconds=_round(replication.lag_seconds),
            replica_txid=f"{replication.replica_txid:016x}" if replication.replica_txid is not None else None,
            replica_checked_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(checked)) if checked else None,
        ),
        queue=QueueDiagnostics(depth=await queue_depth(db)),
        caches=cache_rates(),
    )


admin_router = Router("/admin", route_handlers=[diagnostics], guards=[require_admin], tags=["operations"])


# --- /metrics ------------------------------------------------------------------------


def require_metrics_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard: the METRICS_TOKEN as a bearer token, when one is set. Raises NotAuthorizedException."""
    expected = connection.app.state.settings.metrics_token
    if expected is None:
        return
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise NotAuthorizedException("metrics need the METRICS_TOKEN as a bearer token")


async def refresh_gauges(request: Request) -> None:
    """Before a scrape: add in the scanner paths' tallies (app/ops/tally.py) and read the
    database-backed gauges. A failure is logged, never fatal."""
    tally.fold_all()
    db: Database = request.app.state.db
    try:
        await mail.refresh_gauges(db)
        await kfactor.refresh_gauges(db)
        await webhooks.refresh_gauges(db)
    except Exception:
        log.exception("metrics: could not refresh the database gauges")


class MetricsController(PrometheusController):
    path = "/metrics"
    guards = [require_metrics_token]
    before_request = refresh_gauges
    include_in_schema = False


def prometheus_config() -> PrometheusConfig:
    """Litestar's Prometheus middleware as every app here (primary or edge) measures requests."""
    return PrometheusConfig(
        app_name="qrcontact",
        prefix="http",
        group_path=True,
        exclude=["^/metrics$"],
        buckets=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    )
