"""Operations: health, Prometheus metrics and their access token.

Gauges that come from the database (email queue depth, k-factor) are refreshed when
/metrics is scraped, so they are as fresh as the scrape and cost nothing in between.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.plugins.prometheus import PrometheusController

from app import __version__, mail, sharing
from app.config import Settings, SettingsDep
from app.db import Database, DatabaseDep, fetch_one

log = logging.getLogger("app.ops")


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str]
    version: str


async def database_check(db: Database) -> str:
    try:
        async with db.read() as conn:
            await fetch_one(conn, "SELECT count(*) FROM migrations")
        return "ok"
    except Exception as exc:  # any failure here means the database is not usable
        log.error("health check: database unusable: %s", exc)
        return f"error: {type(exc).__name__}"


@get("/health", operation_id="health", summary="Liveness and the state of the database", tags=["operations"], exclude_from_auth=True)
async def health(db: DatabaseDep, settings: SettingsDep, state: State) -> Response[Health]:
    database = await database_check(db)
    checks = {
        "database": database,
        "replication": "on" if settings.replication_enabled else "off",
        # ok, "retrying: …" while SMTP fails, "stopped" if the worker is not running.
        "queue": await mail.health_check(state.outbox, db) if database == "ok" else "unknown",
    }
    healthy = database == "ok"
    return Response(
        Health(status="ok" if healthy else "error", checks=checks, version=__version__),
        status_code=200 if healthy else 503,
        headers={"Cache-Control": "no-store"},
    )


def require_metrics_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard: the METRICS_TOKEN as a bearer token, when one is set. Raises NotAuthorizedException."""
    expected = connection.app.state.settings.metrics_token
    if expected is None:
        return
    given = connection.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise NotAuthorizedException("metrics need the METRICS_TOKEN as a bearer token")


async def refresh_gauges(request: Request) -> None:
    """Before a scrape: read the database-backed gauges. A failure is logged, never fatal."""
    db: Database = request.app.state.db
    try:
        await mail.refresh_gauges(db)
        await sharing.refresh_gauges(db)
    except Exception:
        log.exception("metrics: could not refresh the database gauges")


class MetricsController(PrometheusController):
    path = "/metrics"
    guards = [require_metrics_token]
    before_request = refresh_gauges
    include_in_schema = False


