"""The scanner fast path: GET/HEAD /c/{slug}, /q/{name} and /p/{name} answered by the HTTP
server itself when the answer is already in memory.

A scan is one redirect, and at an event hundreds arrive in a minute. For every request
uvicorn builds an ASGI scope, a task and a request/response cycle, and the app answers
with two send calls that are checked and encoded again; Litestar adds routing, its
middleware, dependency injection and a Response object. For a redirect that is nearly
all of the cost (figures in docs/performance.md, from bench/scanners.py).

`ScannerProtocol` (app/public/door.py) asks it first. When a request's headers are
complete and the request is exactly GET or HEAD /c/{slug}, /q/{name} or /p/{name} (not
`/cards`, `/c`, `/c/` or `/c/x/`; of a query string only `src` is read, the visit's source,
and only when there is one; a `.vcf` whose query may ask for a version is left to
Litestar, which reads its `?v=4`; a percent-encoded path is not taken), `FastPath.answer` asks answers.answer_scan_now / answer_qr_now /
answer_page_now, which answer only from memory: the card from the card cache, the image
from the QR cache, the page drawn once per state of the card. Their answer is written at
once, in one write. Everything else goes on through uvicorn to Litestar as before: a
card or image not in memory (the Litestar handlers for the same paths call
answers.answer_scan / answer_qr / answer_page, which read and draw what is missing and
fill the caches for the next scan), other methods and shapes, and the connections where
answering early could go wrong: a request still in flight on the same connection
(pipelining keeps its order), HTTP/1.0 or `Connection: close`, an upgrade, a client not
reading its answers.

What Litestar would have added around these answers is added here, the same way:
* the `http_requests_total`, `http_request_duration_seconds` (and for a 5xx
  `http_requests_error_total`) series of Litestar's Prometheus middleware, on the very
  same metric objects and labels (the route's path template, `/c/{slug}` or `/q/{name}`),
  so dashboards cannot tell the two doors apart; kept as tallies between scrapes
  (app/ops/tally.py). `http_requests_in_progress` is not touched: an answer here is made and
  written in one step, so there is never one in progress to see;
* for an unexpected error, the same problem document, logged and counted in `errors_total`;
* what ops.request_context adds to every response: an `X-Request-ID` (the client's when
  well-formed), also on the log records it makes (an error, the access line). That line is
  written at DEBUG, as for /health: at INFO, one JSON line per scan would cost more than
  the scan itself.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Callable

import httptools
import msgspec
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from app.api import problems
from app.ops import tally
from app.ops.monitoring import REQUEST_ID, REQUEST_ID_SHAPE, access_log
from app.public.answers import (
    COUNTRY_HEADER,
    Answer,
    Public,
    Visit,
    answer_page_now,
    answer_qr_now,
    answer_scan_now,
    client_address,
    network_of_peer,
)
from app.public.counters import Source, source_in_query

# Request ids for requests that bring none: unique in this process and across restarts,
# without the system call a uuid4 makes for each.
_ID_PREFIX = secrets.token_hex(8).encode()
_ID_COUNTER = itertools.count(1)
COUNTRY_HEADER_BYTES = COUNTRY_HEADER.encode()

def request_id_for(given: bytes | None) -> bytes:
    """The client's X-Request-ID when well-formed, else a new one (as ops.request_context)."""
    if given and REQUEST_ID_SHAPE.fullmatch(given.decode("latin-1")):  # written back as it came
        return given
    return b"%s%016x" % (_ID_PREFIX, next(_ID_COUNTER))


def text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


def fast_route(path: bytes, method: bytes) -> bytes | None:
    """The route prefix (b"/c/" or b"/q/") when the fast path may answer this request, else None.

    Exact segments, not a string prefix: `/c/{slug}` and `/q/{name}` with a non-empty last
    segment and nothing after it. A trailing slash, an empty or extra segment, `/cards…`, a
    percent-encoded path and every method but GET and HEAD are left to Litestar.
    """
    prefix = path[:3]
    if (
        (prefix == b"/c/" or prefix == b"/q/" or prefix == b"/p/")
        and len(path) > 3
        and b"/" not in path[3:]
        and b"%" not in path
        and (method == b"GET" or method == b"HEAD")
    ):
        return prefix
    return None


class FastPath:
    """Answers the two scanner routes from memory, as raw HTTP/1.1 responses, with Litestar's metrics."""

    def __init__(self, public: Public, prometheus: PrometheusConfig) -> None:
        self.public = public
        self.settings = public.settings
        # Route prefix -> (Litestar's path template for the metrics, the answer from memory).
        self.routes: dict[bytes, tuple[str, Callable[[Public, str, Visit], Answer | None]]] = {
            b"/c/": ("/c/{slug}", answer_scan_now),
            b"/q/": ("/q/{name}", answer_qr_now),
            b"/p/": ("/p/{name}", answer_page_now),
        }
        # Litestar's middleware creates its metrics on first use and keeps them on the
        # class; asking an instance of it for them creates or finds the very same ones.
        self._litestar_metrics = PrometheusMiddleware(app=None, config=prometheus)  # type: ignore[arg-type]
        self._app_name = prometheus.app_name
        # By (method, template, status): requests with their durations, and for a 5xx the
        # failures; tallies (app/ops/tally.py) folded into Litestar's metrics before each scrape.
        self._tallies: dict[tuple[str, str, int], tuple[tally.Timed, tally.Counted | None]] = {}
        self.answered = 0  # requests answered here; the rest went on to Litestar
        # uvicorn's default headers (the date) as written, redone when uvicorn renews them.
        self._default_headers: list[tuple[bytes, bytes]] = []
        self._default_head = b""

    def _tallies_for(self, method: str, template: str, status: int) -> tuple[tally.Timed, tally.Counted | None]:
        key = (method, template, status)
        if (found := self._tallies.get(key)) is None:
            # Litestar's labels, in its order (it names them from this dict's keys).
            labels = {"method": method, "path": template, "status_code": status, "app_name": self._app_name}
            values = list(labels.values())
            metrics = self._litestar_metrics
            found = (
                tally.Timed(metrics.request_time(labels).labels(*values), metrics.request_count(labels).labels(*values)),
                tally.Counted(metrics.requests_error_count(labels).labels(*values)) if status >= 500 else None,
            )
            self._tallies[key] = found
        return found

    def visit(
        self, method: str, given: dict[bytes, bytes], headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None,
        source: Source | None = None,
    ) -> Visit:
        """What Visit.of reads from a Litestar request, read from the raw headers."""
        settings = self.settings
        peer = client[0] if client else None
        fly_client_ip = given.get(b"fly-client-ip")
        if settings.trusted_proxies:  # every line of the forwarding headers, as Visit.of reads them
            forwarded_for = [value.decode("latin-1") for name, value in headers if name == b"x-forwarded-for"]
            forwarded = [value.decode("latin-1") for name, value in headers if name == b"forwarded"]
            address = client_address(settings, text(fly_client_ip), peer, forwarded_for, forwarded)
        elif fly_client_ip is not None and settings.trust_proxy_headers:
            address = client_address(settings, text(fly_client_ip), peer)
        else:  # what client_address comes to with no proxy to believe: the peer's network
            address = network_of_peer(peer) if peer else "unknown"
        agent, referer, region = given.get(b"user-agent"), given.get(b"referer"), given.get(COUNTRY_HEADER_BYTES)
        cloudflare = given.get(b"cf-ipcountry")
        countries = self.public.countries
        return Visit(
            method,
            address,
            None if agent is None else agent.decode("latin-1"),
            None if referer is None else referer.decode("latin-1"),
            None if countries is None else countries.of(address, peer, text(cloudflare), text(region)),
            source,
        )

    def answer(
        self, method_bytes: bytes, url: bytes, headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None,
        default_headers: list[tuple[bytes, bytes]],
    ) -> bytes | None:
        """The whole HTTP response to this request when it is a scanner route answerable
        from memory, else None (and nothing counted or recorded)."""
        if url[:3] not in self.routes:  # the common refusal first: another route
            return None
        source = None
        if b"?" in url or b"#" in url:
            try:
                parsed = httptools.parse_url(url)  # as uvicorn reads it: no query, no fragment
            except httptools.HttpParserInvalidURLError:
                return None  # uvicorn refuses it
            path = parsed.path
            if path.endswith(b".vcf") and b"v=" in (parsed.query or b""):
                return None  # a vCard's query may ask for a version (?v=4): the Litestar handler reads it
            if parsed.query:
                source = source_in_query(parsed.query)
        else:
            path = url  # what parse_url would give: it is all path
        if (prefix := fast_route(path, method_bytes)) is None:
            return None
        given = dict(reversed(headers))  # names lower-cased by uvicorn; the first of each wins
        if b"transfer-encoding" in given:  # a body that may yet be malformed: one answer, Litestar's
            return None
        started = time.perf_counter()
        method = method_bytes.decode()
        template, answer_now = self.routes[prefix]
        try:
            answer = answer_now(self.public, path[3:].decode("latin-1"), self.visit(method, given, headers, client, source))
        except Exception as exc:
            answer = self.failed(exc, request_id := request_id_for(given.get(b"x-request-id")))
        else:
            if answer is None:
                return None
            request_id = request_id_for(given.get(b"x-request-id"))
        status = answer.status
        if default_headers is not self._default_headers:  # uvicorn makes a new list each second
            self._default_headers = default_headers
            self._default_head = b"".join([name + b": " + value + b"\r\n" for name, value in default_headers])
        response = b"".join((
            STATUS_LINE[status], self._default_head, answer.head, b"x-request-id: ", request_id, b"\r\n\r\n",
            b"" if method == "HEAD" else answer.body,
        ))
        self.answered += 1
        requests, failed = self._tallies.get((method, template, status)) or self._tallies_for(method, template, status)
        requests.add(time.perf_counter() - started)
        if failed is not None:
            failed.n += 1
        # The access line, as ops.request_context writes it, but at DEBUG (see the module docstring).
        if access_log.isEnabledFor(logging.DEBUG):
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            token = REQUEST_ID.set(request_id.decode())
            access_log.debug(
                "%s %s %d", method, template, status,
                extra={"fields": {"method": method, "path": template, "status": status, "duration_ms": duration_ms}},
            )
            REQUEST_ID.reset(token)
        return response

    def failed(self, exc: Exception, request_id: bytes) -> Answer:
        """Litestar's answer to an unexpected error: logged with the request id, counted, a 500 problem."""
        token = REQUEST_ID.set(request_id.decode())
        try:
            problem = problems.unexpected_to_problem(exc)  # logs it and counts errors_total
        finally:
            REQUEST_ID.reset(token)
        body = msgspec.json.encode({"status": 500, "title": problem.title, "detail": problem.detail})
        return Answer(500, [(b"content-type", b"application/problem+json")], body)
