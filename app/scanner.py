"""The scanner fast path: exact GET/HEAD /c/{slug} and /q/{name} answered in raw ASGI, before Litestar.

A scan is one redirect, and at an event hundreds arrive in a minute. Through Litestar
each one pays for routing, the middleware stack, dependency injection and a Response
object, several times what the answer itself costs. `ScannerApp` is the Litestar app
with one check in front: a request whose path is exactly two segments, the first `c` or
`q` and the second non-empty (so not `/cards`, `/c`, `/c/` or `/c/x/`), with method GET
or HEAD, is answered here by the same `scans.answer_scan` / `scans.answer_qr` the
Litestar handlers call, so counting, the scanner rate limit, the redirect metrics and the
404/410 pages are one piece of code. Everything else goes to Litestar unchanged.

What Litestar would have added around those answers is added here, the same way:
* the `http_requests_total`, `http_request_duration_seconds`, `http_requests_in_progress`
  (and for a 5xx `http_requests_error_total`) series of Litestar's Prometheus middleware,
  on the very same metric objects and with the same labels (the route's path template,
  `/c/{slug}` or `/q/{name}`), so dashboards cannot tell the two doors apart; kept as
  tallies between scrapes (app/tally.py);
* for an unexpected error, the same problem document, logged and counted in `errors_total`;
* what ops.request_context adds to every response: an `X-Request-ID` (the client's when
  well-formed) and the request id on log records made meanwhile. Its access-log line is
  written at DEBUG, as for /health: at INFO, one JSON line per scan would cost more than
  the scan itself.
Litestar's 405 for other methods and its 404 for other shapes stay Litestar's.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Litestar
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware

from app import errors, tally
from app.ops import REQUEST_ID, REQUEST_ID_SHAPE, access_log
from app.scans import COUNTRY_HEADER, Answer, Public, Visit, answer_qr, answer_scan, client_address, country_for


GET_OR_HEAD = ("GET", "HEAD")
# Request ids for requests that bring none: unique in this process and across restarts,
# without the system call a uuid4 makes for each.
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def next_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"

COUNTRY_HEADER_BYTES = COUNTRY_HEADER.encode()
ROUTE_PREFIXES = ("/c/", "/q/")


class FastPath:
    """Answers the two scanner routes from an ASGI scope, with Litestar's metrics."""

    def __init__(self, public: Public, prometheus: PrometheusConfig) -> None:
        self.public = public
        self.settings = public.settings
        # Path prefix -> (Litestar's path template for the metrics, the answer).
        self.routes: dict[str, tuple[str, Callable[[Public, str, Visit], Awaitable[Answer]]]] = {
            "/c/": ("/c/{slug}", answer_scan),
            "/q/": ("/q/{name}", answer_qr),
        }
        # Litestar's middleware creates its metrics on first use and keeps them on the
        # class; asking an instance of it for them creates or finds the very same ones.
        self._litestar_metrics = PrometheusMiddleware(app=None, config=prometheus)  # type: ignore[arg-type]
        self._app_name = prometheus.app_name
        # Recorded as tallies (app/tally.py), folded into these metrics before each scrape.
        self._tallies: dict[tuple[str, str, int], tuple[tally.Counted, tally.Timed, tally.Counted | None]] = {}
        self._running: dict[tuple[str, str], tally.Running] = {}
        for template, _ in self.routes.values():
            for method in GET_OR_HEAD:
                # Litestar labels this gauge with status_code 200 whatever the outcome.
                labels = self._labels(method, template, 200)
                gauge = self._litestar_metrics.requests_in_progress(labels).labels(*labels.values())
                self._running[method, template] = tally.Running(gauge)

    def _labels(self, method: str, template: str, status: int) -> dict[str, Any]:
        # The order of Litestar's labels, which names them from this dict's keys.
        return {"method": method, "path": template, "status_code": status, "app_name": self._app_name}

    def _tallies_for(self, method: str, template: str, status: int) -> tuple[tally.Counted, tally.Timed, tally.Counted | None]:
        key = (method, template, status)
        if (found := self._tallies.get(key)) is None:
            labels = self._labels(method, template, status)
            values = list(labels.values())
            metrics = self._litestar_metrics
            found = (
                tally.Counted(metrics.request_count(labels).labels(*values)),
                tally.Timed(metrics.request_time(labels).labels(*values)),
                tally.Counted(metrics.requests_error_count(labels).labels(*values)) if status >= 500 else None,
            )
            self._tallies[key] = found
        return found

    def visit(self, scope: dict, method: str) -> tuple[Visit, str]:
        """What Visit.of reads from a Litestar request, read from the raw headers (the first
        of each), and the X-Request-ID the client sent ("" for none)."""
        user_agent = referer = fly_client_ip = region = None
        request_id = ""
        for name, value in scope["headers"]:  # lower-case names, by the ASGI spec
            if name == b"x-request-id":
                request_id = request_id or value.decode("latin-1")
            elif name == b"user-agent":
                user_agent = user_agent or value.decode("latin-1")
            elif name == b"referer":
                referer = referer or value.decode("latin-1")
            elif name == b"fly-client-ip":
                fly_client_ip = fly_client_ip or value.decode("latin-1")
            elif name == COUNTRY_HEADER_BYTES:
                region = region or value.decode("latin-1")
        peer = scope.get("client")
        settings = self.settings
        visit = Visit(
            method,
            client_address(settings, fly_client_ip, peer[0] if peer else None),
            user_agent,
            referer,
            country_for(region, settings) if region else None,
        )
        return visit, request_id

    async def __call__(self, prefix: str, name: str, scope: dict, send: Callable[[dict], Awaitable[None]]) -> None:
        started = time.perf_counter()
        method = scope["method"]
        template, answer_for = self.routes[prefix]
        running = self._running[method, template]
        running.n += 1
        status, sent_start = 500, False
        visit, request_id = self.visit(scope, method)
        if not REQUEST_ID_SHAPE.match(request_id):
            request_id = next_request_id()
        id_header = (b"x-request-id", request_id.encode())
        token = REQUEST_ID.set(request_id)  # for whatever is logged meanwhile
        try:
            answer = await answer_for(self.public, name, visit)
            status = answer.status
            sent_start = True
            await send({"type": "http.response.start", "status": status, "headers": [*answer.headers, id_header]})
            await send({"type": "http.response.body", "body": b"" if method == "HEAD" else answer.body})
        except Exception as exc:
            status = 500
            problem = errors.unexpected_to_problem(exc)  # logs it and counts errors_total
            if not sent_start:
                body = msgspec.json.encode({"status": 500, "title": problem.title, "detail": problem.detail})
                headers = [
                    (b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()), id_header,
                ]
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        finally:
            # The access line, as ops.request_context writes it, but at DEBUG: at event scale a
            # JSON line per scan would cost more than the scan (the same call as for /health).
            if access_log.isEnabledFor(logging.DEBUG):
                duration_ms = round((time.perf_counter() - started) * 1000, 2)
                access_log.debug(
                    "%s %s %d", method, template, status,
                    extra={"fields": {"method": method, "path": template, "status": status, "duration_ms": duration_ms}},
                )
            REQUEST_ID.reset(token)
            running.n -= 1
            count, duration, failed = self._tallies_for(method, template, status)
            count.n += 1
            duration.add(time.perf_counter() - started)
            if failed is not None:
                failed.n += 1


def fast_route(path: str, method: str) -> str | None:
    """The route prefix ("/c/" or "/q/") when the fast path answers this request, else None.

    Exact segments, not a string prefix: `/c/{slug}` and `/q/{name}` with a non-empty last
    segment and nothing after it. A trailing slash, an empty or extra segment, `/cards…`
    and every method but GET and HEAD are left to Litestar.
    """
    prefix = path[:3]
    if prefix in ROUTE_PREFIXES and len(path) > 3 and "/" not in path[3:] and method in GET_OR_HEAD:
        return prefix
    return None


class ScannerApp(Litestar):
    """The Litestar app, with the scanner fast path in front of it (see the module docstring)."""

    fast_path: FastPath

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (prefix := fast_route(scope["path"], scope["method"])):
            await self.fast_path(prefix, scope["path"][3:], scope, send)
            return
        await super().__call__(scope, receive, send)
