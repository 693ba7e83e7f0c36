"""The application factory: `create_app(settings)` wires every module into one Litestar app.

Route table (each handler lives in the module named):
  /v1/auth/*                 accounts   register, verify-email, login, refresh, logout
  /v1/me, /v1/api-keys       accounts   the account, its export and API keys
  /v1/cards...               cards      CRUD and QR downloads
  /v1/cards/{id}/stats       stats      scan statistics, JSON or CSV
  /v1/cards/{id}/share, /v1/cards/{id}/invitations, /v1/viral/k-factor   sharing
  /c/{slug}, /p/{slug}[.vcf], /q/{slug}.png|svg   scans   public pages
  /i/{token}[/open.gif]      sharing    tracked invitation links
  /verify-email              accounts   the page the verification email links to
  /health, /metrics          ops
Background work, started and stopped by the lifespan: scans.Counters (flushes counts and
scan events every second) and mail.Outbox (sends queued email).
  /schema                    OpenAPI document and interactive docs
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from litestar import Litestar, Request, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig

from app import __version__, accounts, cards, errors, mail, ops, scans, sharing, stats
from app.config import Settings
from app.db import Database

log = logging.getLogger("app")


def client_ip(settings: Settings):
    """The client address rate limits use: Fly-Client-IP only behind a trusted proxy."""

    def identify(request: Request) -> str:
        if settings.trust_proxy_headers and (forwarded := request.headers.get("fly-client-ip")):
            return forwarded
        return request.client.host if request.client else "unknown"

    return identify


def create_app(settings: Settings) -> Litestar:
    db = Database(settings.database_path, replicated=settings.replication_enabled)
    outbox = mail.Outbox(settings, listeners={"invitation": sharing.EMAIL_LISTENER})
    state = State({"settings": settings, "db": db, "outbox": outbox, **scans.make_state(db)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await db.open()
        flusher = asyncio.create_task(state.counters.run(db))
        outbox.start(db)
        try:
            yield
        finally:
            # The delivery in progress may finish; queued mail waits in the table for the next start.
            await outbox.stop()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            await state.counters.flush(db)
            await db.close()

    auth = accounts.jwt_auth(settings)
    rate_limit = RateLimitConfig(
        rate_limit=("minute", settings.rate_limit_per_minute),
        identifier_for_request=client_ip(settings),
    )
    api = Router(
        "/v1",
        route_handlers=[accounts.auth_router, accounts.me_router, cards.router, stats.router, sharing.router],
        middleware=[rate_limit.middleware, auth.middleware],
        security=[{"BearerToken": []}, {"ApiKey": []}],
    )
    prometheus = PrometheusConfig(
        app_name="qrcontact",
        prefix="http",
        group_path=True,
        exclude=["^/metrics$"],
        buckets=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    )
    openapi = OpenAPIConfig(
        title="QR Contact",
        version=__version__,
        description="Digital contact cards with QR codes. Authenticate with a bearer access token or X-API-Key.",
        path="/schema",
        render_plugins=[SwaggerRenderPlugin(), ScalarRenderPlugin(path="/scalar")],
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(type="http", scheme="Bearer", bearer_format="JWT"),
                "ApiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
            }
        ),
    )
    return Litestar(
        route_handlers=[
            api,
            *scans.handlers,
            *sharing.tracking_handlers,
            *accounts.public_handlers,
            ops.health,
            ops.MetricsController,
        ],
        dependencies={
            "db": Provide(lambda: db, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
        },
        state=state,
        lifespan=[lifespan],
        plugins=[errors.problem_details],
        middleware=[prometheus.middleware],
        openapi_config=openapi,
        request_max_body_size=64 * 1024,
        # Logging is configured once by the command line (JSON lines), not by the app.
        logging_config=None,
    )
