"""Operations: health, Prometheus metrics and their access token."""

from __future__ import annotations

import hmac
import logging
from typing import Any

import msgspec
from litestar import Response, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler
from litestar.openapi import ResponseSpec
from litestar.plugins.prometheus import PrometheusController

from app import __version__
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


@get(
    "/health", operation_id="health", summary="Liveness and the state of the database", tags=["operations"],
    exclude_from_auth=True,
    responses={503: ResponseSpec(Health, description="The database is not usable", generate_examples=False)},
)
async def health(db: DatabaseDep, settings: SettingsDep) -> Response[Health]:
    database = await database_check(db)
    checks = {
        "database": database,
        "replication": "on" if settings.replication_enabled else "off",
        "queue": "ok",
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


class MetricsController(PrometheusController):
    path = "/metrics"
    guards = [require_metrics_token]
    include_in_schema = False


