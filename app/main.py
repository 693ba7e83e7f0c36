"""The application factory: `create_app(settings)` wires every module into one Litestar app.

Route table (each handler lives in the module named):
  /v1/auth/*                 accounts   register, login, refresh, logout
  /v1/me, /v1/api-keys       accounts   the account, its export and API keys
  /v1/cards...               cards      CRUD and QR downloads
  /c/{slug}, /q/{slug}.png|svg  scans   scan redirect and public QR images (answer_scan,
                                        answer_qr); exact GET/HEAD requests reach them
                                        through scanner.ScannerApp, a raw ASGI fast path in
                                        front of Litestar, every other shape through the
                                        Litestar handlers scans.scan / scans.public_qr
  /p/{slug}[.vcf]            scans      the card page and its vCard
  /health, /metrics          ops
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

from app import __version__, accounts, cards, errors, ops, scans
from app.config import Settings
from app.db import Database
from app.scanner import FastPath, ScannerApp

log = logging.getLogger("app")


def client_ip(settings: Settings):
    """The client address rate limits use: Fly-Client-IP only behind a trusted proxy."""

    def identify(request: Request) -> str:
        peer = request.client.host if request.client else None
        return scans.client_address(settings, request.headers.get("fly-client-ip"), peer)

    return identify


def create_app(settings: Settings) -> Litestar:
    db = Database(settings.database_path, replicated=settings.replication_enabled)
    state = State({"settings": settings, "db": db, **scans.make_state(db, settings)})

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await db.open()
        flusher = asyncio.create_task(state.counters.run(db))
        try:
            yield
        finally:
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
        route_handlers=[accounts.auth_router, accounts.me_router, cards.router],
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
    app = ScannerApp(
        route_handlers=[
            api,
            *scans.handlers,
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
    app.fast_path = FastPath(state.public, prometheus)
    return app
