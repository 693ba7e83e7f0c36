"""The application factory: `create_app(settings)` wires every module into one Litestar app.

Route table (each handler lives in the module named, under app/):
  /v1/auth/*                 accounts   register, verify-email, login, refresh, logout,
                                        password (change), password-reset[/confirm]
  /v1/me, /v1/api-keys       accounts   the account, its email, export and API keys
  /v1/admin/users...         accounts   the team admin: users, invitations, admin, deactivate,
                                        transfer-cards (accounts.team)
  /v1/cards...               cards.api  CRUD and QR downloads
  /v1/cards/{id}/photo|logo  cards.images_api  PUT the image, DELETE it
  /v1/cards/{id}/signature, background.png, print.pdf  cards.carry_api  the card carried everywhere
  /v1/cards/{id}/stats       cards.stats  scan statistics, JSON or CSV
  /v1/cards/{id}/share, /v1/cards/{id}/invitations   sharing.api
  /v1/viral/k-factor         sharing.kfactor  weekly cohorts and the k-factor (admin)
  /c/{slug}, /q/{slug}.png|svg  public.answers  scan redirect and public QR images: the Litestar
                                        handlers answers.scan / answers.public_qr; exact GET/HEAD
                                        requests whose card and image are cached are answered
                                        before them by public.door.ScannerProtocol, in the HTTP
                                        server (answers.answer_scan_now / answer_qr_now)
  /p/{slug}[.vcf]            public.answers  the card page and its vCard
  /p/{slug}/{kind}-{hash}[-96].jpg  public.answers  the card's photo and logo, immutable
  /p/{slug}/exchange         leads.exchange  the card page's contact exchange form (POST)
  /v1/leads...               leads.api  the owner's leads: list, get, delete, CSV export
  /v1/events[/stream]        events.api  the events the caller may see: a page after a cursor, or live (SSE)
  /v1/webhooks...            events.webhooks_api  webhooks: CRUD, test, rotate-secret, deliveries, retry
  /v1/admin/diagnostics      ops.monitoring  database, replica, queue and cache state (admin)
  /i/{token}[/open.gif]      sharing.api  tracked invitation links
  /verify-email              accounts   the page the verification email links to
  /health, /metrics          ops.monitoring
  /, /app/*                  console    the web console (app/console/): login, register, cards
                                        pages, their static files; its own session cookie,
                                        CSRF check and HTML error pages
  /schema                    api.openapi  OpenAPI document and interactive docs
HEAD answers wherever GET does (app/api/methods.py), with the GET's status and headers.
JSON, HTML, SVG, CSS and JS answers of 1 KB and more are gzipped (app/api/compression.py).
Background work, started and stopped by the lifespan: public.counters.Counters (flushes counts and
scan events every second to the database), mail.Outbox (sends queued email),
ops.alerts.AlertWatch (system.alert events when an alert's condition starts) and
events.sender.WebhookSender (turns events into webhook deliveries and sends them). On the
primary with EDGE_TOKEN set, a second server answers the internal port (app/edge/internal.py):
  POST /internal/scan-batches  edge.scan_batches   batches of scans counted at edges
  GET /internal/changes        edge.card_changes  the card change sequence edges follow
An edge (ROLE=edge) is another app, app/edge/main.py's create_edge_app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING

from litestar import Litestar, Request, Response, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.stores.memory import MemoryStore
from litestar.stores.registry import StoreRegistry

from app import __version__, accounts, console, mail
from app.api import limits, problems
from app.api.compression import compress
from app.api.methods import allow_header, head_like_get
from app.api.openapi import OfflineSwagger, StrictStructSchemaPlugin, docs_router
from app.brand import api as brand_api
from app.cards import api as cards_api
from app.cards import carry_api, images_api, stats
from app.config import Settings
from app.db import Database
from app.events import api as events_api
from app.events import events, webhooks_api
from app.events.sender import WebhookSender
from app.events.stream import EventStreams
from app.leads import api as leads_api
from app.leads import exchange
from app.ops import backups, failover, monitoring
from app.ops.alerts import Alerts, AlertWatch
from app.ops.replication import LagMonitor, start_replicating
from app.public import answers
from app.public.counters import any_held_scans
from app.public.fast_path import FastPath
from app.sharing import api as sharing_api
from app.sharing import kfactor, sharing

if TYPE_CHECKING:
    from app.edge.internal import InternalServer

log = logging.getLogger("app")


def create_app(settings: Settings) -> Litestar:
    """The app of `settings`: the primary's routes (build_app) bound to its state (bind)."""
    if settings.is_edge:
        from app.edge.main import create_edge_app

        return create_edge_app(settings)
    return bind(build_app(), settings)


def bind(app: Litestar, settings: Settings) -> Litestar:
    """Give `app` (from build_app) a new state of `settings`: the database, the counters,
    the outbox, the stores and the rest of what one running service holds, before its
    lifespan starts. Handlers, middleware and the lifespan read all of it from
    `app.state`, so one built app serves any settings: `serve` binds once; the tests bind
    one app a worker to each test's settings (tests/conftest.py), as building the routes
    is most of what an app costs. Raises RuntimeError when `app` is running: two running
    services need two built apps."""
    if "db" in app.state and app.state.db.is_open:
        raise RuntimeError("the app is running on its own database: build another app to run two at once")
    db = Database(settings.database_path, replicated=settings.replication_enabled)
    outbox = mail.Outbox(settings, listeners={"invitation": sharing.record_email_outcome})
    bell = events.EventBell(db)  # rung after each commit that recorded events
    app.stores = StoreRegistry({"rate_limit": MemoryStore(), "login_throttle": MemoryStore()})
    app.state = State({
        "settings": settings,
        "db": db,
        "outbox": outbox,
        "replication": LagMonitor(settings, db),
        "active_users": monitoring.ActiveUsers(),
        "started_at": time.monotonic(),
        "event_bell": bell,
        # The live streams; the HTTP server ends them when it begins to shut down (cli.server_options).
        "event_streams": EventStreams(db, bell),
        "webhook_sender": WebhookSender(settings, db, bell, outbox),
        "login_throttle": limits.LoginThrottle(app.stores.get("login_throttle")),
        # Console pages are drawn one at a time (console.web.one_page_at_a_time).
        "console_pages": asyncio.Semaphore(1),
        # The console's CSRF check, keyed by JWT_SECRET (console.web.csrf_config).
        "console_csrf": console.csrf_config(settings),
        **answers.make_state(db, settings),
    })
    # The scanner fast path runs in the HTTP server, in front of all of this (app/public/fast_path.py).
    app.state.fast_path = FastPath(app.state.public, monitoring.prometheus_config())
    return app


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    # Shutdown runs after uvicorn has drained the requests in flight; under `serve`,
    # Litestream makes its last sync only once this process has exited, so
    # everything written here (the counters) reaches the replica.
    state = app.state
    settings, db, monitor, outbox, webhook_sender = (
        state.settings, state.db, state.replication, state.outbox, state.webhook_sender)
    await db.open()
    still_waiting = None
    try:
        if await any_held_scans(db):  # edges' scans a stop came between holding and announcing
            state.counters.announce_held()
        # Under `serve`, nothing is served (so nothing acknowledged) before Litestream
        # has the database open: from then on its shutdown syncs every commit. Unless the
        # object store is unreachable: then the service starts anyway, after a grace.
        still_waiting = await start_replicating(settings)
        state.started_at = time.monotonic()
        monitoring.bind_gauges(db, monitor, state.active_users)
        internal = await start_internal_port(settings, db, state)
    except BaseException:
        # A start that fails (the internal port taken, ...) leaves nothing open behind it.
        if still_waiting is not None:
            still_waiting.cancel()
        await db.close()
        raise
    tasks = [
        asyncio.create_task(state.counters.run()),
        asyncio.create_task(limits.sweep([app.stores.get("rate_limit"), app.stores.get("login_throttle")])),
        asyncio.create_task(events.keep_pruning(db, timedelta(seconds=settings.events_retention))),
    ]
    if settings.replication_enabled:
        tasks.append(asyncio.create_task(monitor.run()))
        # Another node promoted (app/ops/failover.py): this one refuses writes from then on.
        held = failover.read_held(settings)
        tasks.append(asyncio.create_task(failover.watch(settings, failover.refuse_when_deposed(db, held))))
    if still_waiting is not None:
        tasks.append(still_waiting)
    alerts = Alerts(db)  # system.alert events, once per episode (app/ops/alerts.py)
    tasks.append(asyncio.create_task(AlertWatch(alerts, monitor if settings.replication_enabled else None).run()))
    tasks += backups.start_verification(settings, alerts)
    outbox.start(db)
    webhook_sender.start()
    try:
        yield
    finally:
        # Under uvicorn the streams were ended when its shutdown began; elsewhere (tests), here.
        state.event_streams.close_all()
        # Batches being applied finish; an edge sends again what was not acknowledged.
        if internal is not None:
            await internal.stop()
        # Webhook attempts in flight may finish; the rest stay pending for the next start.
        await webhook_sender.stop()
        # The delivery in progress may finish; queued mail waits in the table for the next start.
        await outbox.stop()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await state.counters.flush()
        await db.close()


def _db(state: State) -> Database:
    return state.db


def _settings(state: State) -> Settings:
    return state.settings


def build_app() -> Litestar:
    """The primary's routes, middleware and plugins, of no settings: `bind` gives them theirs."""
    auth = accounts.jwt_auth()
    rate_limit = limits.rate_limit()
    # Two routers share /v1 so that the OpenAPI document asks for credentials only where
    # they are needed (security requirements add up through the layers).
    public_api = Router("/v1", route_handlers=[accounts.auth_router], middleware=[rate_limit.middleware])
    api = Router(
        "/v1",
        route_handlers=[
            accounts.me_router, accounts.admin_router, cards_api.router, images_api.router, stats.router,
            sharing_api.router, kfactor.router, monitoring.admin_router, leads_api.router, events_api.router,
            webhooks_api.router,
            brand_api.router,
            carry_api.router,
        ],
        middleware=[rate_limit.middleware, auth.middleware],
        security=[{"BearerToken": []}, {"ApiKey": []}],
    )
    prometheus = monitoring.prometheus_config()
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
            *answers.handlers,
            *exchange.handlers,
            # The invitation links are public pages too: the scanner limit applies, as on /c, /q and /p.
            Router("/", route_handlers=sharing_api.tracking_handlers, before_request=public_page_limit),
            *accounts.public_handlers,
            monitoring.health,
            monitoring.MetricsController,
            console.router(),
            console.site_root,
        ],
        dependencies={
            "db": Provide(_db, sync_to_thread=False),
            "settings": Provide(_settings, sync_to_thread=False),
        },
        lifespan=[lifespan],
        plugins=[problems.problem_details, StrictStructSchemaPlugin()],
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
    # and access log wrap the whole handler, so 404s and 405s get them too. Text answers of
    # 1 KB and more are gzipped for clients that take it (app/api/compression.py).
    app.asgi_handler = monitoring.request_context(head_like_get(app, compress(app.asgi_handler)))
    app.before_send.append(allow_header(app))
    return app


async def start_internal_port(settings: Settings, db: Database, state: State) -> InternalServer | None:
    """On the primary with EDGE_TOKEN set, serve the internal port (app/edge/internal.py). Raises OSError."""
    if settings.is_edge or not settings.edge_token:
        return None
    from app.edge.internal import InternalServer, create_internal_app  # only a primary with edges needs it

    server = InternalServer(create_internal_app(settings, db, state), settings)
    await server.start()
    return server


async def public_page_limit(request: Request) -> Response | None:
    """The scanner limit (answers.ScannerLimit) for public pages whose handlers do not apply it: 429 past it."""
    public = request.app.state.public
    if retry_after := public.limit.retry_after(answers.Visit.of(request, public.settings).client):
        return answers.too_many_requests(retry_after).response()
    return None
