"""The scanner fast path: GET/HEAD /c/{slug} and /q/{name} answered by the HTTP server itself
when the answer is already in memory.

A scan is one redirect, and at an event hundreds arrive in a minute. For every request
uvicorn builds an ASGI scope, a task and a request/response cycle, and the app answers
with two send calls that are checked and encoded again; Litestar adds routing, its
middleware, dependency injection and a Response object. For a redirect that is nearly
all of the cost: answered here, a counted scan (looked up, limited, counted, measured)
runs at about nine tenths the rate of an ASGI app that does nothing but redirect, where
through an ASGI front it ran at half (figures in the README's Performance section, from
bench/scanners.py).

`ScannerProtocol` is uvicorn's httptools protocol with one change. When a request's
headers are complete and the request is exactly GET or HEAD /c/{slug} or /q/{name} (not
`/cards`, `/c`, `/c/` or `/c/x/`; a query string is ignored, a percent-encoded path is
not taken), `FastPath.answer` asks scans.answer_scan_now / answer_qr_now, which answer only
from memory: the card from the card cache, the image from the QR cache. Their answer is
written at once, in one write. Everything else goes on through uvicorn to Litestar as
before: a card or image not in memory (the Litestar handlers for the same paths call
scans.answer_scan / answer_qr, which read and draw what is missing and fill the caches
for the next scan), other methods and shapes, and the connections where answering early
could go wrong: a request still in flight on the same connection (pipelining keeps its
order), HTTP/1.0 or `Connection: close`, an upgrade, a client not reading its answers.

Every request passes through this protocol, whichever door answers it, so the limits on
what a client can make the server hold are here too (the README's "Limits"): a request
head over MAX_HEAD_BYTES is answered 431, one that takes over HEAD_TIMEOUT seconds 408;
received bytes are parsed a slice at a time and held back, unread, while uvicorn pauses
reading or MAX_QUEUED pipelined requests wait (uvicorn itself parses all it has read,
and made a request cycle of each of thousands). The fast path reads the path as uvicorn
does (httptools.parse_url: a fragment is dropped), and leaves a chunked body, which may
yet turn out malformed, to uvicorn and Litestar, so that each request gets one answer.

What Litestar would have added around these answers is added here, the same way:
* the `http_requests_total`, `http_request_duration_seconds` (and for a 5xx
  `http_requests_error_total`) series of Litestar's Prometheus middleware, on the very
  same metric objects and labels (the route's path template, `/c/{slug}` or `/q/{name}`),
  so dashboards cannot tell the two doors apart; kept as tallies between scrapes
  (app/tally.py). `http_requests_in_progress` is not touched: an answer here is made and
  written in one step, so there is never one in progress to see;
* for an unexpected error, the same problem document, logged and counted in `errors_total`;
* what ops.request_context adds to every response: an `X-Request-ID` (the client's when
  well-formed), also on the log records it makes (an error, the access line). That line is
  written at DEBUG, as for /health: at INFO, one JSON line per scan would cost more than
  the scan itself.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

import httptools
import msgspec
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app import errors, tally
from app.ops import REQUEST_ID, REQUEST_ID_SHAPE, access_log
from app.scans import COUNTRY_HEADER, Answer, Public, Visit, answer_qr_now, answer_scan_now, client_address, country_for

# Request ids for requests that bring none: unique in this process and across restarts,
# without the system call a uuid4 makes for each.
_ID_PREFIX = secrets.token_hex(8).encode()
_ID_COUNTER = itertools.count(1)
COUNTRY_HEADER_BYTES = COUNTRY_HEADER.encode()

# Limits every request meets at the door, whichever door answers it (the README's "Limits"):
# a request head (request line and headers) larger than this is answered 431 and the
# connection closed. The size of h11's and Node's default limit; a browser's head is 1-2 KiB.
MAX_HEAD_BYTES = 16 * 1024
# A head must arrive complete this many seconds after its first byte (and a new connection
# send one within as long), else 408 and the connection closed: a client trickling a
# head holds a connection for no longer.
HEAD_TIMEOUT = 20.0
# Requests one connection may queue behind the one running (HTTP/1.1 pipelining); past
# that the connection is not read until they are answered.
MAX_QUEUED = 16
# Received bytes are parsed at most this much at a time, and a slice ends where a request
# head may end, so that the limits above hold within what one read brings (up to 256 KiB).
FEED_SLICE = 4096
# After an error answer, how long what the client still sends is read and dropped.
LINGER = 2.0


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
        (prefix == b"/c/" or prefix == b"/q/")
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
        }
        # Litestar's middleware creates its metrics on first use and keeps them on the
        # class; asking an instance of it for them creates or finds the very same ones.
        self._litestar_metrics = PrometheusMiddleware(app=None, config=prometheus)  # type: ignore[arg-type]
        self._app_name = prometheus.app_name
        # By (method, template, status): requests with their durations, and for a 5xx the
        # failures; tallies (app/tally.py) folded into Litestar's metrics before each scrape.
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
    ) -> Visit:
        """What Visit.of reads from a Litestar request, read from the raw headers."""
        settings = self.settings
        region = given.get(COUNTRY_HEADER_BYTES)
        peer = client[0] if client else None
        if settings.trusted_proxies:  # every line of the forwarding headers, as Visit.of reads them
            forwarded_for = [value.decode("latin-1") for name, value in headers if name == b"x-forwarded-for"]
            forwarded = [value.decode("latin-1") for name, value in headers if name == b"forwarded"]
            address = client_address(settings, text(given.get(b"fly-client-ip")), peer, forwarded_for, forwarded)
        else:
            address = client_address(settings, text(given.get(b"fly-client-ip")), peer)
        return Visit(
            method,
            address,
            text(given.get(b"user-agent")),
            text(given.get(b"referer")),
            country_for(region.decode("latin-1"), settings) if region else None,
        )

    def answer(
        self, method_bytes: bytes, url: bytes, headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None,
        default_headers: list[tuple[bytes, bytes]],
    ) -> bytes | None:
        """The whole HTTP response to this request when it is a scanner route answerable
        from memory, else None (and nothing counted or recorded)."""
        try:
            path = httptools.parse_url(url).path  # as uvicorn reads it: no query, no fragment
        except httptools.HttpParserInvalidURLError:
            return None  # uvicorn refuses it
        if (prefix := fast_route(path, method_bytes)) is None:
            return None
        started = time.perf_counter()
        method = method_bytes.decode()
        template, answer_now = self.routes[prefix]
        given = dict(reversed(headers))  # names lower-cased by uvicorn; the first of each wins
        try:
            answer = answer_now(self.public, path[3:].decode("latin-1"), self.visit(method, given, headers, client))
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
        requests, failed = self._tallies_for(method, template, status)
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
            problem = errors.unexpected_to_problem(exc)  # logs it and counts errors_total
        finally:
            REQUEST_ID.reset(token)
        body = msgspec.json.encode({"status": 500, "title": problem.title, "detail": problem.detail})
        return Answer(500, [(b"content-type", b"application/problem+json")], body)


class HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a request head the protocol refuses."""


class QueueFlow(FlowControl):
    """uvicorn's flow control, telling the protocol when reading resumes, so that bytes
    already received but held back (ScannerProtocol.unparsed) are parsed then."""

    def __init__(self, transport: asyncio.Transport, on_resume: Callable[[], None]) -> None:
        super().__init__(transport)
        self.on_resume = on_resume

    def resume_reading(self) -> None:
        super().resume_reading()
        self.on_resume()


class ScannerProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the fast path asked first and the limits every
    request meets at the door (see the module docstring)."""

    def __init__(self, *args: Any, fast_path: FastPath, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_path = fast_path
        self.answered_early = False  # whether the request being parsed was answered by the fast path
        self.head_timer: asyncio.TimerHandle | None = None
        self.in_head = False  # between a request's first byte and the end of its head
        self.idle = True  # between two requests (or before the first)
        self.head_bytes = 0  # bytes received of the head being parsed, at least (see feed)
        self.head_most = 0  # and at most, but for the slice being parsed
        self.piece_size = 0  # of the slice being parsed
        self.requests_begun = 0
        self.unparsed = b""  # received while reading is paused: parsed when it resumes
        self.refused = False  # answered with an error: what else comes is dropped
        self.parse_scheduled = False

    # --- the connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = QueueFlow(transport, self.schedule_parse)
        self.arm_head_timer()  # the first request's head is due too

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.cancel_head_timer()
        self.unparsed = b""
        self.pipeline.clear()  # requests never started: nobody to answer

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self.refused:
            return
        if self.unparsed:
            # Reading resumed (a request read its body, a response ended) before what was
            # held back is parsed (see schedule_parse): keep the order, read no further.
            self.unparsed += data
            self.flow.pause_reading()
            return
        self.parse(data)

    def schedule_parse(self) -> None:
        """Reading resumed: parse what was held back, soon (not inside the caller, which
        may be answering a request of this very connection)."""
        if self.unparsed and not self.parse_scheduled:
            self.parse_scheduled = True
            self.loop.call_soon(self.parse_held_back)

    def parse_held_back(self) -> None:
        self.parse_scheduled = False
        if self.unparsed and not self.transport.is_closing():
            data, self.unparsed = self.unparsed, b""
            self.parse(data)

    def parse(self, data: bytes) -> None:
        """Give the parser `data` a slice at a time, holding the rest back (and pausing
        reading) once uvicorn pauses reading or MAX_QUEUED requests wait behind the one
        running: a client that pipelines without reading queues that many at most."""
        view = memoryview(data)
        start, size = 0, len(data)
        while start < size:
            if self.refused or self.transport.is_closing():
                return
            if self.flow.read_paused or len(self.pipeline) >= MAX_QUEUED:
                self.unparsed = bytes(view[start:])
                self.flow.pause_reading()
                return
            # A slice ends at the first place a head may end (a blank line), so that it
            # completes one request at most and the checks above run between any two.
            end = min(start + FEED_SLICE, size)
            for blank in (b"\n\r\n", b"\n\n"):
                if (found := data.find(blank, start, end)) >= 0:
                    end = min(end, found + len(blank))
            self.feed(data if start == 0 and end == size else view[start:end])
            start = end

    def feed(self, piece: bytes | memoryview) -> None:
        """uvicorn's data_received for one slice, counting the bytes of an unfinished head."""
        was_idle, was_in_head, begun = self.idle, self.in_head, self.requests_begun
        self.piece_size = len(piece)
        try:
            self.parser.feed_data(piece)
        except HeadRefused:  # raised from a callback, outside the parser (see on_headers_complete)
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, HeadRefused):
                return
            self.logger.warning("Invalid HTTP request received.")
            self.refuse(400, "Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self.in_head:
            # The parser holds an unfinished header line until it ends, out of sight of the
            # callbacks; the bytes that went into it are counted here. When this slice held
            # the end of an earlier request as well, what it gave the head is unknown: it
            # counts only towards the bound on_headers_complete checks, so an unfinished
            # head is refused at most FEED_SLICE bytes past MAX_HEAD_BYTES.
            if (begun == self.requests_begun and was_in_head) or (begun + 1 == self.requests_begun and was_idle):
                self.head_bytes += len(piece)
            self.head_most += len(piece)
            if self.head_bytes > MAX_HEAD_BYTES:
                self.refuse(431, "Request Header Fields Too Large")
            else:
                self.arm_head_timer()  # the rest of the head must come in time

    def refuse(self, status: int, message: str) -> None:
        """Answer `status` with a short text and close the connection (as uvicorn's 400)."""
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        body = message.encode()
        content.extend([
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ])
        self.transport.write(b"".join(content))
        self.refused = True
        self.cancel_head_timer()
        # The requests before this one go unanswered, as when uvicorn closes on a bad
        # request: nothing more may be written after this answer.
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.pipeline.clear()
        # Closed at once with bytes of the client's still unread, the socket would be reset
        # and the answer lost: end the writing side, read and drop what still comes, close
        # when the client does or after LINGER seconds.
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER, self.transport.close)
        else:
            self.transport.close()

    # --- the head's deadline -----------------------------------------------------------

    def arm_head_timer(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(HEAD_TIMEOUT, self.head_timed_out)

    def cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def head_timed_out(self) -> None:
        self.head_timer = None
        if self.refused or self.transport.is_closing():
            return
        if self.flow.read_paused or self.unparsed:
            # The head is not late, we are: it waits behind requests still running.
            self.arm_head_timer()
            return
        if self.in_head:
            self.refuse(408, "Request Timeout")
        else:  # a connection that never sent a request
            self.transport.close()

    # --- parser callbacks --------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.answered_early = False
        self.idle, self.in_head, self.head_bytes, self.head_most = False, True, 0, 0
        self.requests_begun += 1
        # A request is arriving: the connection is not idle, whatever an answer to the one
        # before armed (an early answer arms uvicorn's keep-alive timer while the rest of
        # the bytes read are still being parsed).
        self._unset_keepalive_if_required()

    def head_size(self) -> int:
        """The size of the head just parsed, as sent but for spaces around header values."""
        return len(self.url) + sum([len(name) + len(value) + 4 for name, value in self.headers])  # ": ", CRLF

    def on_headers_complete(self) -> None:
        self.in_head = False
        # Its bytes are at most those counted before this slice and the slice: only when
        # that is over the limit is the head measured (the common case costs nothing).
        if self.head_most + self.piece_size > MAX_HEAD_BYTES and self.head_size() > MAX_HEAD_BYTES:
            self.refuse(431, "Request Header Fields Too Large")
            raise HeadRefused  # stops the parser: nothing after this head is read
        if self.head_timer is not None:
            self.cancel_head_timer()
        parser = self.parser
        if (
            (self.cycle is None or self.cycle.response_complete)  # nothing in flight on this connection
            and not self.flow.write_paused
            and parser.get_http_version() == "1.1"
            and parser.should_keep_alive()
            and not parser.should_upgrade()
            and not any(name == b"transfer-encoding" for name, _ in self.headers)  # a body that may yet be malformed
        ):
            response = self.fast_path.answer(
                parser.get_method(), self.url, self.headers, self.client, self.server_state.default_headers
            )
            if response is not None:
                self.transport.write(response)
                self.answered_early = True
                # What uvicorn does after every answer: count it, re-arm the keep-alive timeout.
                self.on_response_complete()
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.answered_early:  # a body sent with an answered GET is read and dropped
            super().on_body(body)

    def on_message_complete(self) -> None:
        self.idle = True
        if not self.answered_early:
            super().on_message_complete()


def protocol(fast_path: FastPath) -> Callable[..., ScannerProtocol]:
    """The `http` protocol for uvicorn's Config: ScannerProtocol answering with this fast path."""

    def make(*args: Any, **kwargs: Any) -> ScannerProtocol:
        return ScannerProtocol(*args, fast_path=fast_path, **kwargs)

    return make
