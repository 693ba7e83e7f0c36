"""The edge role's app (SPEC §7): scanners answered in their own region, the rest sent to the primary.

An edge answers `/c/{slug}`, `/p/{slug}`, `/p/{slug}.vcf` and `/q/{slug}.png|svg` with the
primary's own handlers (app/public/answers.py) and its scanner fast path (app/public/fast_path.py), from
the in-memory caches and its read-only copy (app/edge/local_copy.py). A slug the copy does not
have, or that changed after it, raises `AskPrimary` in the card lookup, and that request
goes to the primary; so does every other path (`/v1`, `/app`, `/i`, `/verify-email`,
`/schema`, ...). On Fly it answers `fly-replay: region=PRIMARY_REGION` and Fly's proxy
replays the request there; elsewhere it is proxied to PRIMARY_URL, streamed both ways,
with the client's address added to `X-Forwarded-For` and `Forwarded` (the primary's
TRUSTED_PROXIES decides whether it believes them).

An edge has no writable database: scans and views counted here are flushed into the
edge's own outbox file and shipped to the primary (app/edge/outbox.py), never into the copy.
The card page's exchange form goes to the primary too; while the primary is unreachable the
edge keeps the lead in the same file and ships it later (app/edge/leads.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import httpx
import msgspec
from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.types import Receive, Scope, Send

from app import qr
from app.api import problems
from app.api.compression import compress
from app.api.methods import head_like_get
from app.config import Settings
from app.edge.leads import LeadShipper, exchange_at_edge
from app.edge.local_copy import AskPrimary, EdgeCopy, running
from app.edge.outbox import EdgeOutbox, Shipper
from app.ops import failover, monitoring, tally
from app.public import answers, pages
from app.public.counters import Counters
from app.public.countries import Countries
from app.public.fast_path import FastPath
from app.public.scanner_limit import ScannerLimit

log = logging.getLogger("app.edge")

# What the edge answers itself; everything else is the primary's.
PUBLIC_PREFIXES = ("/c/", "/p/", "/q/")
OWN_PATHS = frozenset({"/health", "/metrics"})
# Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), and Host,
# which names the primary on the way there.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection",
    b"te", b"trailer", b"transfer-encoding", b"upgrade", b"host",
})
# The edge's HTTP server adds its own Date (and the primary's would come twice).
NOT_PASSED_BACK = HOP_BY_HOP | {b"date", b"server"}
VIA = b"1.1 qrcontact-edge"


# --- to the primary ----------------------------------------------------------------------


class Primary:
    """Sends a request to the primary: `fly-replay` on Fly, a streaming proxy elsewhere."""

    def __init__(self, settings: Settings) -> None:
        self.retarget(settings)
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=5.0),
            limits=httpx.Limits(max_connections=500, max_keepalive_connections=100),
        )

    def retarget(self, settings: Settings) -> None:
        """Send to the primary these settings name (a promote moves it: app/ops/failover.py)."""
        self.replay = f"region={settings.primary_region}".encode() if settings.on_fly and settings.primary_region else None
        self.origin = settings.primary_url or ""

    async def close(self) -> None:
        await self.client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.replay is not None:
            await send({"type": "http.response.start", "status": 204, "headers": [(b"fly-replay", self.replay)]})
            await send({"type": "http.response.body", "body": b""})
            return
        request = self.client.build_request(
            scope["method"], self.url_of(scope), headers=forwarded_headers(scope), content=request_body(scope, receive)
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning("the primary did not answer %s %s: %s", scope["method"], scope["path"], exc)
            await send_unavailable(scope, send)
            return
        try:
            headers = [(name, value) for name, value in response.headers.raw if name.lower() not in NOT_PASSED_BACK]
            headers.append((b"via", VIA))  # as a proxy says it was one (RFC 9110 §7.6.3)
            await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
            async for chunk in response.aiter_raw():  # as sent: compressed stays compressed
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def send_form(self, scope: Scope, body: bytes) -> Response | None:
        """A form post (the card page's exchange form, app/edge/leads.py) to the primary, its
        answer as a response; None when the primary could not be reached at all, so it never
        saw the post (refused or timed-out connection). Any later failure is the 503 page:
        the primary may have acted on it."""
        if self.replay is not None:
            return Response(b"", status_code=204, headers={"fly-replay": self.replay.decode()})
        try:
            answer = await self.client.post(self.url_of(scope), headers=forwarded_headers(scope), content=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            log.warning("the primary is unreachable for %s: %s", scope["path"], exc)
            return None
        except httpx.HTTPError as exc:
            log.warning("the primary did not answer %s %s: %s", scope["method"], scope["path"], exc)
            return UNAVAILABLE_PAGE.response()
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in answer.headers.raw
                   if k.lower() not in NOT_PASSED_BACK | {b"content-length", b"content-encoding", b"content-type"}}
        headers["via"] = VIA.decode()
        media_type = answer.headers.get("content-type", "text/html").removesuffix("; charset=utf-8")
        return Response(answer.content, status_code=answer.status_code, headers=headers, media_type=media_type)

    def url_of(self, scope: Scope) -> str:
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        query = (scope.get("query_string") or b"").decode("latin-1")
        return self.origin + path + (f"?{query}" if query else "")


# While the primary is unreachable (restarting, or its region down), what the edge cannot
# answer from its copy (a card created since, the API) is 503 with Retry-After: the
# scanner of a brand-new card sees a page saying to try again, not a bare error.
RETRY_AFTER = b"10"
UNAVAILABLE_PAGE = pages.page_answer(
    503, "Try again in a moment", "This contact card cannot be shown right now. Please try again in a few seconds.",
    (b"retry-after", RETRY_AFTER), (b"cache-control", b"no-store"),
)
UNAVAILABLE_PROBLEM = msgspec.json.encode({
    "status": 503, "title": "Service Unavailable", "detail": "the primary region did not answer; try again shortly",
})


async def send_unavailable(scope: Scope, send: Send) -> None:
    """503 with Retry-After: a page for people on the public paths, a problem document elsewhere."""
    if scope["path"].startswith(PUBLIC_PREFIXES):
        status, headers, body = UNAVAILABLE_PAGE.status, UNAVAILABLE_PAGE.headers, UNAVAILABLE_PAGE.body
    else:
        headers = [(b"content-type", b"application/problem+json"), (b"retry-after", RETRY_AFTER)]
        status, body = 503, UNAVAILABLE_PROBLEM
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def forwarded_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The request's headers for the primary: hop-by-hop ones dropped, the client's address
    appended to X-Forwarded-For and Forwarded as a proxy does, the host it asked for kept in
    X-Forwarded-Host."""
    headers, forwarded_for, forwarded = [], [], []
    host = b""
    for name, value in scope["headers"]:
        if name == b"x-forwarded-for":
            forwarded_for.append(value)
        elif name == b"forwarded":
            forwarded.append(value)
        elif name == b"host":
            host = value
        elif name not in HOP_BY_HOP and name not in (b"x-forwarded-host", b"x-forwarded-proto"):
            headers.append((name, value))
    client = scope.get("client")
    if client:
        address = client[0]
        forwarded_for.append(address.encode())
        node = f'"[{address}]"' if ":" in address else address  # RFC 7239: an IPv6 node is quoted, in brackets
        forwarded.append(f"for={node};proto={scope.get('scheme', 'http')}".encode())
    if forwarded_for:
        headers.append((b"x-forwarded-for", b", ".join(forwarded_for)))
    if forwarded:
        headers.append((b"forwarded", b", ".join(forwarded)))
    if host:
        headers.append((b"x-forwarded-host", host))
    headers.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    return headers


def request_body(scope: Scope, receive: Receive) -> AsyncIterator[bytes] | None:
    """The request body as it arrives (None for a request without one, so that a GET stays
    a GET without `Transfer-Encoding: chunked`; a Content-Length is sent on as given)."""
    if not any(name in (b"content-length", b"transfer-encoding") for name, _ in scope["headers"]):
        return None

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            if body := message.get("body"):
                yield body
            if not message.get("more_body"):
                return

    return chunks()


def answered_here(path: str) -> bool:
    # A target that is no path (`OPTIONS *`, RFC 9110 §9.3.7) asks about this server, and
    # has no URL at the primary: Litestar answers it here as it does there.
    return path.startswith(PUBLIC_PREFIXES) or path in OWN_PATHS or not path.startswith("/")


def send_the_rest(app, primary: Primary):
    """Wrap the app: paths the edge does not answer go to the primary untouched by Litestar."""

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not answered_here(scope["path"]):
            await primary(scope, receive, send)
            return
        await app(scope, receive, send)

    return handle


class ToPrimary(Response):
    """The answer to AskPrimary: the request goes on to the primary as it came."""

    def __init__(self, primary: Primary) -> None:
        super().__init__(content=None)
        self.primary = primary

    def to_asgi_response(self, app, request, **kwargs):  # type: ignore[override]
        return self.primary


def ask_primary(request: Request, exc: AskPrimary) -> Response:
    return ToPrimary(request.app.state.primary)


# --- health and metrics ------------------------------------------------------------------


class EdgeHealth(msgspec.Struct, rename="camel"):
    status: str
    role: str
    has_copy: bool
    card_change: int  # the newest card change the copy holds
    lag_seconds: float | None
    following: bool  # whether the follower runs (it is stopped while the copy is up to date)


@get("/health", operation_id="edgeHealth", summary="Health of an edge: 200 once it has a copy", include_in_schema=False)
async def edge_health(request: Request) -> Response[EdgeHealth]:
    copy: EdgeCopy = request.app.state.edge_copy
    lag = copy.lag() if copy.ready else None
    following = copy.follower is not None and copy.follower.alive and not copy.follower.paused
    body = EdgeHealth("ok" if copy.ready else "no copy yet", "edge", copy.ready, copy.position, lag, following)
    return Response(body, status_code=200 if copy.ready else 503, headers={"Cache-Control": "no-store"})


async def fold_tallies(request: Request) -> None:
    tally.fold_all()


class EdgeMetricsController(monitoring.MetricsController):
    """/metrics at an edge: no database gauges to read, only the tallies to fold in."""

    before_request = fold_tallies


# --- the app ------------------------------------------------------------------------------


def create_edge_app(settings: Settings) -> Litestar:
    # httpx logs every request at INFO: one line per proxied request, besides the access log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    copy = EdgeCopy(settings)
    primary = Primary(settings)
    outbox = EdgeOutbox.for_settings(settings)
    shipper = Shipper(outbox, settings)
    lead_shipper = LeadShipper(outbox, settings)
    public = answers.Public(
        settings, copy.cards, Counters(outbox), qr.QrCache(), ScannerLimit(settings.scanner_rate_limit_per_minute),
        countries=Countries(settings),
    )
    state = State({
        "settings": settings,
        "edge_copy": copy,
        "primary": primary,
        "edge_outbox": outbox,
        "public": public,
        "public_cards": public.cards,
        "counters": public.counters,
        "qr_cache": public.qr_cache,
        "active_users": monitoring.ActiveUsers(),
    })

    def follow(lease: failover.Lease) -> None:
        """Another primary from now on: its replica path, its internal port, its origin."""
        moved = failover.as_edge_of(settings, lease)
        log.warning("following the primary of epoch %d at %s", lease.epoch, moved.primary_internal_url)
        copy.settings = moved
        primary.retarget(moved)
        shipper.retarget(moved)
        lead_shipper.retarget(moved)
        state.settings = moved

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await outbox.open()
        shipper.start()
        lead_shipper.start()
        counting = asyncio.create_task(public.counters.run())
        # The lease (app/ops/failover.py): a new primary is followed; promoted here, the edge restarts as the primary.
        leasing = asyncio.create_task(failover.watch(settings, failover.restart_when_named(settings, follow)))
        async with running(copy):
            try:
                yield
            finally:
                for task in (counting, leasing):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                # The last second's counts into the outbox, then one last try to ship them.
                await public.counters.flush()
                await shipper.stop()
                await lead_shipper.stop()
                await outbox.close()
                await primary.close()

    prometheus = monitoring.prometheus_config()
    app = Litestar(
        route_handlers=[*answers.handlers, exchange_at_edge, edge_health, EdgeMetricsController],
        state=state,
        lifespan=[lifespan],
        plugins=[problems.problem_details],
        exception_handlers={AskPrimary: ask_primary},
        middleware=[prometheus.middleware],
        request_max_body_size=64 * 1024,
        logging_config=None,
        openapi_config=None,
    )
    # What the edge answers itself is gzipped as at the primary (app/api/compression.py).
    answered_here = head_like_get(app, compress(app.asgi_handler))
    app.asgi_handler = monitoring.request_context(send_the_rest(answered_here, primary))
    state.fast_path = FastPath(public, prometheus)
    return app
