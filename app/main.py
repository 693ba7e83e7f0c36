"""The application factory: `create_app(settings)` wires every module into one Litestar app.

Route table (each handler lives in the module named):
  /v1/auth/*                 accounts   register, verify-email, login, refresh, logout,
                                        password (change), password-reset[/confirm]
  /v1/me, /v1/api-keys       accounts   the account, its email, export and API keys
  /v1/admin/users...         accounts   the team admin: users, invitations, admin, deactivate,
                                        transfer-cards (accounts.team)
  /v1/cards...               cards      CRUD and QR downloads
  /v1/cards/{id}/stats       stats      scan statistics, JSON or CSV
  /v1/cards/{id}/share, /v1/cards/{id}/invitations   sharing
  /v1/viral/k-factor         kfactor    weekly cohorts and the k-factor (admin)
  /c/{slug}, /q/{slug}.png|svg  scans   scan redirect and public QR images: the Litestar
                                        handlers scans.scan / scans.public_qr; exact GET/HEAD
                                        requests whose card and image are cached are answered
                                        before them by scanner.ScannerProtocol, in the HTTP
                                        server (scans.answer_scan_now / answer_qr_now)
  /p/{slug}[.vcf]            scans      the card page and its vCard
  /v1/admin/diagnostics      ops        database, replica, queue and cache state (admin)
  /i/{token}[/open.gif]      sharing    tracked invitation links
  /verify-email              accounts   the page the verification email links to
  /health, /metrics          ops
  /, /app/*                  console    the web console (app/console/): login, register, cards
                                        pages, their static files; its own session cookie,
                                        CSRF check and HTML error pages
  /schema                    OpenAPI document and interactive docs (openapi.py)
HEAD answers wherever GET does (head_like_get below), with the GET's status and headers.
Background work, started and stopped by the lifespan: counters.Counters (flushes counts and
scan events every second to the database) and mail.Outbox (sends queued email). On the
primary with EDGE_TOKEN set, a second server answers the internal port (app/internal.py):
  POST /internal/scan-batches  edge_counts   batches of scans counted at edges
  GET /internal/changes        card_changes  the card change sequence edges follow
An edge (ROLE=edge) is another app, app/edge.py's create_edge_app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from litestar import Litestar, Request, Response, Router
from litestar.datastructures import MutableScopeHeaders, State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig
from litestar.routes import HTTPRoute
from litestar.stores.memory import MemoryStore
from litestar.stores.registry import StoreRegistry
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from litestar.utils import normalize_path

from app import __version__, accounts, backups, cards, console, errors, kfactor, limits, mail, ops, scans, sharing, stats
from app.config import Settings
from app.db import Database
from app.openapi import OfflineSwagger, StrictStructSchemaPlugin, docs_router
from app.replication import LagMonitor, start_replicating
from app.scanner import FastPath

if TYPE_CHECKING:
    from app.internal import InternalServer

log = logging.getLogger("app")


def create_app(settings: Settings) -> Litestar:
    if settings.is_edge:
        from app.edge import create_edge_app

        return create_edge_app(settings)
    db = Database(settings.database_path, replicated=settings.replication_enabled)
    monitor = LagMonitor(settings, db)
    active_users = ops.ActiveUsers()
    stores = StoreRegistry({"rate_limit": MemoryStore(), "login_throttle": MemoryStore()})
    outbox = mail.Outbox(settings, listeners={"invitation": sharing.record_email_outcome})
    state = State({
        "settings": settings,
        "db": db,
        "outbox": outbox,
        "replication": monitor,
        "started_at": time.monotonic(),
        "login_throttle": limits.LoginThrottle(stores.get("login_throttle")),
        **scans.make_state(db, settings),
    })

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Shutdown runs after uvicorn has drained the requests in flight; under `serve`,
        # Litestream makes its last sync only once this process has exited, so
        # everything written here (the counters) reaches the replica.
        await db.open()
        # Under `serve`, nothing is served (so nothing acknowledged) before Litestream
        # has the database open: from then on its shutdown syncs every commit. Unless the
        # object store is unreachable: then the service starts anyway, after a grace.
        still_waiting = await start_replicating(settings)
        state.started_at = time.monotonic()
        ops.bind_gauges(db, monitor, active_users)
        internal = await start_internal_port(settings, db, state)
        tasks = [
            asyncio.create_task(state.counters.run()),
            asyncio.create_task(limits.sweep([stores.get("rate_limit"), stores.get("login_throttle")])),
        ]
        if settings.replication_enabled:
            tasks.append(asyncio.create_task(monitor.run()))
        if still_waiting is not None:
            tasks.append(still_waiting)
        tasks += backups.start_verification(settings)
        outbox.start(db)
        try:
            yield
        finally:
            # Batches being applied finish; an edge sends again what was not acknowledged.
            if internal is not None:
                await internal.stop()
            # The delivery in progress may finish; queued mail waits in the table for the next start.
            await outbox.stop()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await state.counters.flush()
            await db.close()

    auth = accounts.jwt_auth(settings)
    rate_limit = limits.rate_limit(settings)
    # Two routers share /v1 so that the OpenAPI document asks for credentials only where
    # they are needed (security requirements add up through the layers).
    public_api = Router("/v1", route_handlers=[accounts.auth_router], middleware=[rate_limit.middleware])
    api = Router(
        "/v1",
        route_handlers=[
            accounts.me_router, accounts.admin_router, cards.router, stats.router, sharing.router, kfactor.router, ops.admin_router,
        ],
        middleware=[rate_limit.middleware, auth.middleware],
        security=[{"BearerToken": []}, {"ApiKey": []}],
    )
    prometheus = prometheus_config()
    openapi = OpenAPIConfig(
        title="QR Contact",
        version=__version__,
        description="Digital contact cards with QR codes. Authenticate with a bearer access token or X-API-Key.",
        path="/schema",
        # Swagger UI only, its assets served by the app (SPEC §5: the docs work offline);
        # Scalar's page would load its script from a CDN, as no Python package ships it.
        render_plugins=[OfflineSwagger("/schema")],
        # The docs' CSP and no framing, on every page and file under /schema.
        openapi_router=docs_router("/schema"),
        components=Components(
            security_schemes={
                "BearerToken": SecurityScheme(type="http", scheme="Bearer", bearer_format="JWT"),
                "ApiKey": SecurityScheme(type="apiKey", name="X-API-Key", security_scheme_in="header"),
            }
        ),
    )
    app = Litestar(
        route_handlers=[
            public_api,
            api,
            *scans.handlers,
            # The invitation links are public pages too: the scanner limit applies, as on /c, /q and /p.
            Router("/", route_handlers=sharing.tracking_handlers, before_request=public_page_limit),
            *accounts.public_handlers,
            ops.health,
            ops.MetricsController,
            console.router(settings),
            console.site_root,
        ],
        dependencies={
            "db": Provide(lambda: db, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
        },
        state=state,
        lifespan=[lifespan],
        plugins=[errors.problem_details, StrictStructSchemaPlugin()],
        stores=stores,
        request_class=limits.JsonRequest,
        middleware=[prometheus.middleware],
        openapi_config=openapi,
        template_config=console.template_config,
        # Litestar answers 413 past this on every route that reads a body.
        request_max_body_size=64 * 1024,
        # Logging is configured once by the command line (JSON lines), not by the app.
        logging_config=None,
    )
    # Litestar's middleware runs only on requests that matched a route; the request id
    # and access log wrap the whole handler, so 404s and 405s get them too.
    app.asgi_handler = ops.request_context(head_like_get(app, app.asgi_handler), active_users)
    app.before_send.append(allow_header(app))
    # The scanner fast path runs in the HTTP server, in front of all of this (app/scanner.py).
    state.fast_path = FastPath(state.public, prometheus)
    return app


def prometheus_config() -> PrometheusConfig:
    """Litestar's Prometheus middleware as every app here (primary or edge) measures requests."""
    return PrometheusConfig(
        app_name="qrcontact",
        prefix="http",
        group_path=True,
        exclude=["^/metrics$"],
        buckets=[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    )


async def start_internal_port(settings: Settings, db: Database, state: State) -> InternalServer | None:
    """On the primary with EDGE_TOKEN set, serve the internal port (app/internal.py). Raises OSError."""
    if settings.is_edge or not settings.edge_token:
        return None
    from app.internal import InternalServer, create_internal_app  # only a primary with edges needs it

    server = InternalServer(create_internal_app(settings, db, state), settings)
    await server.start()
    return server


async def public_page_limit(request: Request) -> Response | None:
    """The scanner limit (scans.ScannerLimit) for public pages whose handlers do not apply it: 429 past it."""
    public = request.app.state.public
    if retry_after := public.limit.retry_after(scans.Visit.of(request, public.settings).client):
        return scans.too_many_requests(retry_after).response()
    return None


def with_head(methods) -> set[str]:
    """A path's methods as it answers them: HEAD wherever GET (head_like_get)."""
    return {*methods, "HEAD"} if "GET" in methods else set(methods)


def allow_header(app: Litestar):
    """A before-send hook that makes OPTIONS and 405 answers list every method of a path.

    Litestar builds the automatic OPTIONS answer while a router is still being filled,
    so `Allow` lists only the methods registered before it (OPTIONS /v1/cards said
    "OPTIONS, POST" without GET). The app's finished route table is the truth, with the
    HEAD that head_like_get adds; a 405's `Allow` (from Litestar's router) gets that HEAD too.
    """
    allowed = {
        route.path_format: ", ".join(sorted(with_head(route.methods))) for route in app.routes if isinstance(route, HTTPRoute)
    }

    async def before_send(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        if scope.get("method") == "OPTIONS":
            if methods := allowed.get(scope.get("path_template", "")):
                MutableScopeHeaders(message)["Allow"] = methods
        elif message["status"] == 405:
            headers = MutableScopeHeaders(message)
            if given := headers.get("allow"):
                headers["Allow"] = ", ".join(sorted(with_head([m.strip() for m in given.split(",")])))

    return before_send


def head_like_get(app: Litestar, handler: ASGIApp) -> ASGIApp:
    """Wrap the app: HEAD answers wherever GET does, with the GET's status and headers and no body.

    Litestar routes HEAD only to handlers that list it and answers 405 elsewhere (uptime
    checkers send HEAD /). It has no switch for the rest: listing HEAD on every GET handler
    would miss the ones Litestar makes itself (/schema) and put a HEAD operation beside
    every GET in the OpenAPI document. Handlers that list HEAD keep it: the public pages
    answer it themselves, and do not count it.
    """
    router = app.asgi_router

    def routed(path: str, method: str) -> bool:
        try:
            router.handle_routing(path=path, method=method)  # Litestar's own lookup, cached
        except HTTPException:  # no such path, or not this method
            return False
        return True

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await handler(scope, receive, send)
            return
        path = normalize_path(scope["path"])
        if routed(path, "HEAD") or not routed(path, "GET"):
            await handler(scope, receive, send)
            return

        async def send_head(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Back to HEAD before the server sees the answer: uvicorn reads the method
                # from this scope to write no body, and the access log names it.
                scope["method"] = "HEAD"
            elif message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # The same scope, not a copy: the access log reads the route's template and the
        # user from it, as for any other request.
        scope["method"] = "GET"
        try:
            await handler(scope, receive, send_head)
        finally:
            scope["method"] = "HEAD"

    return handle
