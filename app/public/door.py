"""The HTTP protocol every request passes through, whichever door answers it: uvicorn's
httptools protocol with the scanner fast path (app/public/fast_path.py) asked first,
where it has one.

Every request passes through it (the internal port's too, with no fast path), so the
limits on what a client can make the server hold are here (docs/limits.md): a request
head over MAX_HEAD_BYTES is answered 431, one that takes over HEAD_TIMEOUT seconds 408; a read that is not one whole head is
parsed a slice at a time, and what cannot be parsed yet is held back, unread, while
uvicorn pauses reading or MAX_QUEUED pipelined requests wait (uvicorn itself parses all
it has read, and made a request cycle of each of thousands). An answer given before its
request's body arrived whole (an early 413) closes the connection after a lingering
read, so that a client still writing reads the answer. The fast path reads the path as
uvicorn does (httptools.parse_url when there is a query or fragment), and leaves a
chunked body, which may yet turn out malformed, to uvicorn and Litestar, so that each
request gets one answer.

The fast path's answers are not written at once but together, once every read of the
event loop's turn is parsed (Outgoing), as uvicorn's own answers are written by their
tasks after the turn's reads: a client on the same host (a proxy in front, a load
generator) is then woken once for a batch of answers rather than once for each
(measured in docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle

from app.public.fast_path import FastPath

# Limits every request meets at the door, whichever door answers it (docs/limits.md):
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
# After an answer that ends the connection (an error, a body refused before it arrived whole),
# what the client still sends is read and dropped until it pauses this long, or this long at most.
LINGER = 2.0
LINGER_MOST = 30.0
# A connection's fast-path answers held for the end of the turn (see Outgoing) are written at
# once past this size, so that a client pipelining without reading meets uvicorn's flow
# control (the fast path stops answering; then requests queue and reading pauses) as before.
UNSENT_MOST = 64 * 1024


class HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a request head the protocol refuses."""


class QueueFlow(FlowControl):
    """uvicorn's flow control, telling the protocol whenever uvicorn lets reading go on (a
    request reads its body, a response ends), so that bytes it holds back are parsed then."""

    def __init__(self, transport: asyncio.Transport, on_resume: Callable[[], None]) -> None:
        super().__init__(transport)
        self.on_resume = on_resume

    def resume_reading(self) -> None:
        super().resume_reading()
        self.on_resume()


class Cycle(RequestResponseCycle):
    """uvicorn's request/response cycle, but for an answer begun before its request's body
    arrived whole (an early 413, a 401): its head says `connection: close`, so that a client
    that pools connections sends nothing more on this one, and the protocol closes it with
    a lingering close (ScannerProtocol.linger) where uvicorn, seeing that header, would
    close at once and reset a connection the client is still writing to."""

    says_close = False

    async def send(self, message: Any) -> None:
        if message["type"] == "http.response.start" and self.more_body and not self.response_started:
            await super().send({**message, "headers": [*message.get("headers", ()), (b"connection", b"close")]})
            self.keep_alive, self.says_close = True, True  # the protocol closes it, once answered
            return
        await super().send(message)


class Outgoing:
    """The fast path's answers of one turn of the event loop, written when the turn's reads
    are all parsed: the protocols holding an answer (ScannerProtocol.unsent), in the order
    they answered. One per server, shared by its connections."""

    def __init__(self) -> None:
        self.waiting: list[ScannerProtocol] = []

    def add(self, protocol: ScannerProtocol) -> None:
        if not self.waiting:
            # Callbacks run in the order they are scheduled: an ASGI task started later in
            # this turn, for a later request of the same connection, writes after these.
            protocol.loop.call_soon(self.write_all)
        self.waiting.append(protocol)

    def write_all(self) -> None:
        waiting, self.waiting = self.waiting, []
        for protocol in waiting:
            protocol.write_unsent()


class ScannerProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the fast path asked first (when it has one) and the
    limits every request meets at the door (see the module docstring).

    Received bytes are parsed as they come when they are one whole request head (the
    scanner's read); anything else is parsed a slice at a time (`parse`), so that the
    checks run between any two requests. What cannot be parsed yet (uvicorn paused reading,
    or MAX_QUEUED requests wait) is held back in `held`, with the socket not read, and
    parsed when uvicorn lets reading go on: holding is the protocol's own, apart from
    uvicorn's pause, so that neither waits for the other.

    One timer per connection (`deadline`) enforces every time limit on the client: the
    head's, the keep-alive and the lingering close. It is not moved per request: each
    request only notes when the connection began waiting on the client (`waiting_since`),
    and the timer, when it fires, reads the connection's state and fires again later if
    nothing is due yet (uvicorn arms and cancels a keep-alive timer for every request).
    """

    def __init__(
        self, *args: Any, fast_path: FastPath | None, outgoing: Outgoing, on_shutdown: Callable[[], None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fast_path = fast_path
        self.outgoing = outgoing
        self.unsent = b""  # the fast path's answers not written yet (see Outgoing)
        self.on_shutdown = on_shutdown
        self.answered_early = False  # whether the request being parsed was answered by the fast path
        self.in_head = False  # between a request's first byte and the end of its head
        self.idle = True  # between two requests (or before the first)
        self.head_bytes = 0  # bytes received of the head being parsed, at least (see feed)
        self.head_most = 0  # and at most, but for the slice being parsed
        self.piece_size = 0  # of the slice being parsed
        self.requests_begun = 0
        self.held = b""  # received but not parsed yet, the socket not read meanwhile
        self.parse_scheduled = False
        self.refused = False  # answered and closing (see linger): what else comes is dropped
        self.linger_until = 0.0
        self.waiting_since = 0.0  # when the connection last began waiting on the client
        self.deadline: asyncio.TimerHandle | None = None
        self.deadline_at = 0.0  # when it fires

    # --- the connection ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = QueueFlow(transport, self.schedule_parse)
        self.waiting_since = self.loop.time()  # the first request's head is due too
        self.rearm(self.waiting_since + HEAD_TIMEOUT)

    def shutdown(self) -> None:
        # uvicorn asks each connection to finish when it begins to shut down, and waits for
        # responses in flight before the app's lifespan hears of it: a response that never
        # ends by itself (an event stream) is told here.
        if self.on_shutdown is not None:
            self.on_shutdown()
        self.write_unsent()  # before uvicorn closes an idle connection
        super().shutdown()

    def eof_received(self) -> None:
        # The client is done sending, and the transport closes once this returns: answers
        # still held (requests parsed from held-back bytes in this turn) are written first.
        self.write_unsent()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
        self.held = self.unsent = b""
        self.pipeline.clear()  # requests never started: nobody to answer

    def data_received(self, data: bytes) -> None:
        if self.refused:
            self.waiting_since = self.loop.time()  # still sending: the lingering close waits on
            return
        if self.held:
            # uvicorn let reading go on before what is held back was parsed (see
            # schedule_parse): keep the order, read no further until it is.
            self.held += data
            self.transport.pause_reading()
            return
        if (
            self.idle
            and data.endswith(b"\r\n\r\n")
            and data.find(b"\n\r\n") == len(data) - 3
            and b"\n\n" not in data
        ):
            self.feed(data)  # one whole head and nothing after it: the checks in parse hold as they are
        else:
            self.parse(data)

    def schedule_parse(self) -> None:
        """uvicorn lets reading go on: parse what was held back, soon (not inside the
        caller, which may be answering a request of this very connection)."""
        if self.held and not self.parse_scheduled:
            self.parse_scheduled = True
            self.loop.call_soon(self.parse_held)

    def parse_held(self) -> None:
        self.parse_scheduled = False
        if self.held and not self.transport.is_closing():
            data, self.held = self.held, b""
            self.parse(data)
            if not self.held and not self.flow.read_paused and not self.refused:
                self.transport.resume_reading()  # all of it parsed: read on

    def parse(self, data: bytes) -> None:
        """Give the parser `data` a slice at a time, holding the rest back once uvicorn
        pauses reading or MAX_QUEUED requests wait behind the one running: a client that
        pipelines without reading queues that many at most."""
        view = memoryview(data)
        start, size = 0, len(data)
        while start < size:
            if self.refused or self.transport.is_closing():
                return
            if self.flow.read_paused or len(self.pipeline) >= MAX_QUEUED:
                self.held = bytes(view[start:])
                self.transport.pause_reading()
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

    def refuse(self, status: int, message: str) -> None:
        """Answer `status` with a short text and close the connection (as uvicorn's 400)."""
        self.write_unsent()  # the answers to the requests before this one come first
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
        # The requests before this one go unanswered, as when uvicorn closes on a bad
        # request: nothing more may be written after this answer.
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.linger()

    def linger(self) -> None:
        """Close after an answer the client may still be sending a request to (a refused
        head, a body answered before it arrived whole). Closed at once with bytes of the
        client's unread, the socket would be reset and the answer lost: end the writing
        side, read and drop what still comes, and close when the client does, once it has
        sent nothing for LINGER seconds, or after LINGER_MOST seconds."""
        self.refused = True
        self.held = b""
        self.pipeline.clear()
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.transport.resume_reading()
        self.waiting_since = now = self.loop.time()
        self.linger_until = now + LINGER_MOST
        self.rearm(now + LINGER)

    # --- the time limits ---------------------------------------------------------------

    def rearm(self, due: float) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        self.deadline = self.loop.call_at(due, self.check_deadline)
        self.deadline_at = due

    def check_deadline(self) -> None:
        """The connection's one timer: close or refuse what is due, else fire again when
        something may be."""
        self.deadline = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        if self.refused:
            due = min(self.waiting_since + LINGER, self.linger_until)
        elif self.held or self.flow.read_paused:
            due = None  # the client is not late, we are: it waits behind requests still running
        elif self.in_head:
            due = self.waiting_since + HEAD_TIMEOUT
        elif not self.idle or (self.cycle is not None and not self.cycle.response_complete) or self.pipeline:
            due = None  # a request is running, or its body arriving: no limit, as in uvicorn
        elif self.requests_begun:
            due = self.waiting_since + self.timeout_keep_alive
        else:  # a connection that never sent a request
            due = self.waiting_since + HEAD_TIMEOUT
        if due is None:
            self.rearm(now + self.timeout_keep_alive)
        elif due > now:
            self.rearm(due)
        elif self.in_head and not self.refused:
            self.refuse(408, "Request Timeout")
        else:
            self.write_unsent()  # (timers run before the turn's writes: a late loop may get here first)
            self.transport.close()

    # --- parser callbacks and answers ----------------------------------------------------

    def on_message_begin(self) -> None:
        # uvicorn's, but for the ASGI scope, which only a request going on to Litestar
        # needs: it is made in on_headers_complete (an early answer makes none).
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.answered_early = False
        self.idle, self.in_head, self.head_bytes, self.head_most = False, True, 0, 0
        self.requests_begun += 1
        self.waiting_since = self.loop.time()  # the head is due HEAD_TIMEOUT from its first byte

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
        if (
            self.fast_path is not None
            and (self.cycle is None or self.cycle.response_complete)  # nothing in flight on this connection
            and not self.flow.write_paused
        ):
            parser = self.parser
            if parser.should_keep_alive() and parser.get_http_version() == "1.1" and not parser.should_upgrade():
                response = self.fast_path.answer(
                    parser.get_method(), self.url, self.headers, self.client, self.server_state.default_headers
                )
                if response is not None:
                    if not self.unsent:
                        self.outgoing.add(self)
                    self.unsent += response
                    if len(self.unsent) > UNSENT_MOST:
                        self.write_unsent()
                    self.answered_early = True
                    self.on_response_complete()
                    return
        self.scope = {  # as uvicorn's on_message_begin makes it
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,  # type: ignore[typeddict-item]
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }
        super().on_headers_complete()
        if self.cycle is not None:  # (none for an upgrade)
            self.cycle.__class__ = Cycle  # made by uvicorn's on_headers_complete; its task has not run yet

    def write_unsent(self) -> None:
        if self.unsent:
            unsent, self.unsent = self.unsent, b""
            # Refused: its answer is written and the writing side ended (see linger).
            if not self.refused and not self.transport.is_closing():
                self.transport.write(unsent)

    def on_body(self, body: bytes) -> None:
        if not self.answered_early:  # a body sent with an answered GET is read and dropped
            super().on_body(body)

    def on_message_complete(self) -> None:
        self.idle = True
        if not self.answered_early:
            super().on_message_complete()

    def on_response_complete(self) -> None:
        """uvicorn's, after every answer (both doors), but for the keep-alive timer (see
        check_deadline) and for an answer given before its request's body arrived whole."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.says_close and not self.answered_early:
            # Answered before its body arrived (see Cycle): the client may still be
            # writing it, and the connection cannot be used for another request.
            self.linger()
            return
        if self.flow.read_paused:
            self.flow.resume_reading()  # and what is held back is parsed (QueueFlow)
        elif self.held:
            self.schedule_parse()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:  # idle: the keep-alive timeout runs from here
            self.waiting_since = now = self.loop.time()
            if self.deadline_at > now + self.timeout_keep_alive:  # the timer is set for a later limit
                self.rearm(now + self.timeout_keep_alive)


def protocol(fast_path: FastPath | None, on_shutdown: Callable[[], None] | None = None) -> Callable[..., ScannerProtocol]:
    """The `http` protocol for uvicorn's Config: ScannerProtocol answering with this fast
    path, or with none (the internal port: the same limits, every request to its app);
    `on_shutdown` is called when the server begins to shut down (with connections open)."""

    outgoing = Outgoing()

    def make(*args: Any, **kwargs: Any) -> ScannerProtocol:
        return ScannerProtocol(*args, fast_path=fast_path, outgoing=outgoing, on_shutdown=on_shutdown, **kwargs)

    return make
