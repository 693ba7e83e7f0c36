"""The primary's internal port (SPEC §7): the endpoints only edges call, on INTERNAL_PORT
behind the bearer EDGE_TOKEN, never published.

A second, small Litestar app served by a second uvicorn server inside the primary's own
process (`InternalServer`, started and stopped by the main app's lifespan), so its
handlers share the main app's database, caches and counters through the same state. It
runs only on the primary, and only when EDGE_TOKEN is set.

Endpoints (add one by adding its handler to `handlers`):
  POST /internal/scan-batches   scan_batches  an edge's counted scans and views, applied once per batch
  GET /internal/changes         card_changes  the card slugs changed after a point, long-polled
  POST /internal/leads          leads         a lead an edge kept while the primary was unreachable, stored once
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from collections.abc import Iterator

import uvicorn
from litestar import Litestar
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler

from app.api import limits, problems
from app.config import Settings
from app.db import Database
from app.edge import card_changes, leads, scan_batches
from app.public.door import protocol

log = logging.getLogger("app.internal")

# Every endpoint of the internal port; each module that has one is listed here.
handlers = [scan_batches.receive_scan_batch, card_changes.card_changes, leads.receive_lead]

# A scan batch is the largest body: scan_batches.MAX_BATCH_ROWS rows of at most a few
# hundred bytes each (a referrer host is at most 253 characters).
MAX_BODY_BYTES = 2 * 1024 * 1024


def require_edge_token(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """Guard: the request carries EDGE_TOKEN as its bearer. Raises NotAuthorizedException."""
    expected: str = connection.app.state.settings.edge_token
    scheme, _, given = connection.headers.get("authorization", "").partition(" ")
    # compare_digest: the time taken says nothing about how much of a guess was right.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise NotAuthorizedException("the internal port needs EDGE_TOKEN as a bearer token",
                                     headers={"WWW-Authenticate": "Bearer"})


def create_internal_app(settings: Settings, db: Database, state: State) -> Litestar:
    """The internal port's app, sharing the main app's database and state (caches, counters)."""
    assert settings.edge_token, "the internal port runs only with EDGE_TOKEN set"
    return Litestar(
        route_handlers=handlers,
        guards=[require_edge_token],
        dependencies={
            "db": Provide(lambda: db, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
        },
        state=state,
        plugins=[problems.problem_details],
        # JSON bodies only, and malformed ones (nested too deeply, not UTF-8) a 400, as on /v1.
        request_class=limits.JsonRequest,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=None,
        logging_config=None,
    )


class InternalServer:
    """The internal app on `settings.host`:`settings.internal_port`, in this process and event loop."""

    def __init__(self, app: Litestar, settings: Settings) -> None:
        self.app = app
        # On Fly the edges come over the private network, which is IPv6 only (their
        # PRIMARY_INTERNAL_URL names an AAAA record under .internal); HOST is for the
        # public port, which Fly's proxy reaches over IPv4.
        self.host = "::" if settings.on_fly else settings.host
        self.port = settings.internal_port
        self._config = uvicorn.Config(
            app, host=self.host, port=self.port, lifespan="off", log_config=None, access_log=False,
            server_header=False, proxy_headers=False, timeout_graceful_shutdown=5,
            http=protocol(None),  # the public port's limits on what a client can make it hold (app/public/door.py)
        )
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Listen now. Raises OSError (the port is taken), so a bad start stops the service."""
        # Bound here rather than by uvicorn, which would exit the whole process on a taken
        # port; listening from this moment, so connections queue until uvicorn accepts them.
        sock = socket.create_server((self.host, self.port), family=_family(self.host), reuse_port=False)
        self._server = _SignalsLeftAlone(self._config)  # a uvicorn server serves once
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        log.info("internal port listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Finish the requests in flight (up to 5 s), then close."""
        if self._task is None or self._server is None:
            return
        # Long polls (GET /internal/changes) look at this once woken, and answer at once.
        self.app.state.internal_closing = True
        self.app.state.card_change_bell.ring()
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


class _SignalsLeftAlone(uvicorn.Server):
    """A uvicorn server that leaves the process's signals to the main server. uvicorn's own
    `serve` would take SIGTERM first, close the internal port and only then pass the signal
    on; this way the main server drains first and the lifespan stops this one after it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
