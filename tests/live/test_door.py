"""What every request meets at the door (app/public/door.py's ScannerProtocol), whichever door
answers it, on a real uvicorn server over real sockets: the request-head size and time
limits, the bound on what one pipelining connection may queue, one answer per request,
and the keep-alive timer an early answer arms (the /i/ pages' share of the scanner rate
limit: tests/unit/test_door.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time

import pytest

from app.public import door
from tests.support.app import create_card, make_settings, register
from tests.support.live_server import LiveServer
from tests.support.net import free_port
from tests.support.scanner import exchange
from tests.support.waiting import wait_until


@pytest.fixture
def user(live) -> dict:
    """An account on the live server (conftest's `user` is on an in-process app)."""
    return register(live.http)


@pytest.fixture
def card(live, user) -> dict:
    card = create_card(live.http, user["headers"], slug="door-card")
    assert live.http.get("/c/door-card").status_code == 302  # read and cached: the fast path answers next
    assert live.http.get("/q/door-card.png").status_code == 200
    return card


def everything_until_closed(live, raw: bytes) -> bytes:
    """Send `raw` on a new connection and read until the server closes it."""
    with socket.create_connection(live.address, timeout=10) as conn:
        conn.sendall(raw)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
        return received


def statuses(received: bytes) -> list[bytes]:
    return re.findall(rb"HTTP/1\.1 (\d{3}) ", received)


def protocol_of(live, conn: socket.socket) -> door.ScannerProtocol:
    port = conn.getsockname()[1]
    return wait_until(
        lambda: next((p for p in list(live.server.server_state.connections) if p.client and p.client[1] == port), None),
        what="the server to see the connection",
    )


# --- the size of a request head -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/c/door-card", "/q/door-card.png", "/p/door-card", "/i/no-such-token/open.gif"])
def test_a_head_past_the_limit_is_431_and_closed_whichever_door(live, card, path):
    answered = live.answered
    agent = b"a" * (door.MAX_HEAD_BYTES + 1)
    received = everything_until_closed(live, b"GET %s HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n\r\n" % (path.encode(), agent))
    assert statuses(received) == [b"431"]
    assert b"\r\nconnection: close\r\n" in received
    assert live.answered == answered


def test_a_head_within_the_limit_is_answered(live, card):
    agent = b"a" * (door.MAX_HEAD_BYTES - 200)
    responses = exchange(live, [b"GET /c/door-card HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n\r\n" % agent])
    assert [r.split(b" ", 2)[1] for r in responses] == [b"302"]


@pytest.mark.parametrize("unfinished", [b"User-Agent: ", b"X-Many: a\r\n" * 10 + b"X-Last: "])
def test_an_unfinished_head_that_keeps_growing_is_431(live, card, unfinished):
    """The parser holds an unfinished header line out of the callbacks' sight: it is
    counted as it arrives, not when it ends (one connection held a 198 MiB header)."""
    head = b"GET /c/door-card HTTP/1.1\r\nHost: x\r\n" + unfinished
    with socket.create_connection(live.address, timeout=10) as conn:
        conn.sendall(head)
        for _ in range(door.MAX_HEAD_BYTES // 1024 + 1):
            conn.sendall(b"b" * 1024)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert statuses(received) == [b"431"]


def test_a_long_url_is_431(live, card):
    received = everything_until_closed(live, b"GET /p/%s HTTP/1.1\r\nHost: x\r\n\r\n" % (b"a" * (door.MAX_HEAD_BYTES + 1)))
    assert statuses(received) == [b"431"]


def test_the_internal_port_has_the_same_head_limits(tmp_path):
    """The primary's internal port (app/edge/internal.py) grew by every unfinished header sent to it."""
    settings = make_settings(tmp_path, edge_token="t" * 32, internal_port=free_port())
    server = LiveServer(settings)
    try:
        internal = ("127.0.0.1", settings.internal_port)
        with socket.create_connection(internal, timeout=10) as conn:
            conn.sendall(b"GET /internal/changes HTTP/1.1\r\nHost: x\r\nX-Long: ")
            sent = 0
            try:
                while sent < 1024 * 1024:  # an unfinished header, growing
                    conn.sendall(b"a" * 16384)
                    sent += 16384
            except (BrokenPipeError, ConnectionResetError):
                pass
            received = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := conn.recv(65536):
                    received += chunk
        assert statuses(received) == [b"431"]
    finally:
        server.stop()


# --- the time a request head may take --------------------------------------------------------


@pytest.fixture
def impatient(tmp_path, monkeypatch):
    monkeypatch.setattr(door, "HEAD_TIMEOUT", 0.2)
    server = LiveServer(make_settings(tmp_path))
    yield server
    server.stop()


def test_a_head_trickling_in_is_408_and_closed_after_the_head_timeout(impatient):
    with socket.create_connection(impatient.address, timeout=10) as conn:
        conn.sendall(b"GET /p/x HTTP/1.1\r\nHost: x\r\nUser-")
        received = b""
        while chunk := conn.recv(65536):  # the server closes it; the timeout would raise
            received += chunk
    assert statuses(received) == [b"408"]


def test_a_connection_that_sends_nothing_is_closed_after_the_head_timeout(impatient):
    with socket.create_connection(impatient.address, timeout=10) as conn:
        assert conn.recv(65536) == b""


def test_a_head_in_time_is_answered_and_the_connection_kept(impatient):
    user = register(impatient.http)
    create_card(impatient.http, user["headers"], slug="door-card")
    with socket.create_connection(impatient.address, timeout=10) as conn:
        conn.sendall(b"GET /p/door-card HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")
        # Idle past the head timeout: the keep-alive timeout (5 s) governs the idle connection.
        time.sleep(3 * door.HEAD_TIMEOUT)
        conn.sendall(b"GET /p/door-card HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 200 ")


def test_an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout(live, card):
    """The connection's one timer, set for the first head's 20 s, is brought forward when
    the connection goes idle."""
    with socket.create_connection(live.address, timeout=5) as conn:
        protocol = protocol_of(live, conn)
        protocol.timeout_keep_alive = 0.3
        conn.sendall(b"GET /c/door-card HTTP/1.1\r\nHost: x\r\n\r\n")
        assert conn.recv(65536).startswith(b"HTTP/1.1 302 ")
        assert conn.recv(65536) == b""  # closed well before the socket's 5 s timeout


# --- pipelining ---------------------------------------------------------------------------


class WriterHeld:
    """The database's one writer taken on the server's loop, so a write request stays in flight."""

    def __init__(self, live) -> None:
        self.live = live
        self.lock: asyncio.Lock = live.app.state.db._write_lock

    def __enter__(self):
        self.live.call(self.lock.acquire)
        return self

    def __exit__(self, *exc) -> None:
        self.live.loop.call_soon_threadsafe(self.lock.release)


def create_request(user: dict, slug: str) -> bytes:
    body = b'{"fullName": "Pipe", "email": "pipe@example.com", "slug": "%s"}' % slug.encode()
    return (
        b"POST /v1/cards HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: %s\r\nContent-Length: %d\r\n\r\n%s"
    ) % (user["headers"]["Authorization"].encode(), len(body), body)


def read_responses(conn: socket.socket, count: int) -> list[bytes]:
    """The status codes of `count` responses (each with a Content-Length) read from `conn`."""
    buffer, found = b"", []
    while len(found) < count:
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            length = int(re.search(rb"(?im)^content-length: *(\d+)", buffer[:head_end]).group(1))
            if len(buffer) >= head_end + 4 + length:
                found.append(buffer[:head_end].split(b" ", 2)[1])
                buffer = buffer[head_end + 4 + length:]
                continue
        chunk = conn.recv(65536)
        assert chunk, f"closed after {len(found)} responses"
        buffer += chunk
    return found


def test_a_pipelining_connection_queues_a_bounded_number_of_requests(live, user):
    """Behind a request still running, a client that pipelines many more does not get
    them all parsed and queued (uvicorn made a cycle of each: 8 MiB per connection)."""
    behind = 500
    with WriterHeld(live), socket.create_connection(live.address, timeout=10) as conn:
        conn.sendall(create_request(user, "pipe-one") + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * behind)
        protocol = protocol_of(live, conn)
        wait_until(lambda: len(protocol.pipeline) > 0 and protocol.flow.read_paused, what="requests to queue")
        assert len(protocol.pipeline) <= door.MAX_QUEUED
        wait_until(lambda: protocol.held, what="the rest to be held back, unparsed")
        assert len(protocol.pipeline) <= door.MAX_QUEUED
    assert live.http.get("/health").status_code == 200


def test_pipelined_requests_behind_a_running_one_are_all_answered_in_order(live, user):
    behind = 300
    with socket.create_connection(live.address, timeout=20) as conn:
        with WriterHeld(live):
            conn.sendall(create_request(user, "pipe-two") + b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * behind)
            protocol = protocol_of(live, conn)
            wait_until(lambda: protocol.flow.read_paused, what="reading to pause")
        assert read_responses(conn, behind + 1) == [b"201"] + [b"200"] * behind


def test_an_early_answer_does_not_start_the_keep_alive_timeout_under_a_running_request(live, user, card):
    """An answer of the fast path armed uvicorn's keep-alive timer while the request after
    it, on the same bytes, was still running: when it fired the connection closed and the
    committed write's 201 never arrived."""
    with socket.create_connection(live.address, timeout=10) as conn:
        with WriterHeld(live):
            conn.sendall(b"GET /c/door-card HTTP/1.1\r\nHost: x\r\n\r\n" + create_request(user, "after-scan"))
            protocol = protocol_of(live, conn)
            wait_until(lambda: protocol.cycle is not None and protocol.cycle.scope["method"] == "POST", what="the POST")
            protocol.timeout_keep_alive = 0.1
            live.loop.call_soon_threadsafe(protocol.check_deadline)  # the connection's timer, as if due
            time.sleep(0.5)  # several keep-alive timeouts with the POST still running
        assert read_responses(conn, 2) == [b"302", b"201"]


# --- one answer per request, the same from both doors -------------------------------------


@pytest.mark.parametrize("path", ["/c/door-card", "/p/door-card"])
def test_a_get_with_a_malformed_chunked_body_gets_one_answer(live, card, path):
    raw = b"GET %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n" % path.encode()
    assert statuses(everything_until_closed(live, raw)) == [b"400"]


def test_a_fragment_is_read_as_uvicorn_reads_it_by_both_doors(live, card):
    answered = live.answered
    responses = exchange(live, [b"GET /q/door-card.png#x HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert [r.split(b" ", 2)[1] for r in responses] == [b"200"]
    assert live.answered == answered + 1  # by the fast path
    responses = exchange(live, [b"GET /q/door-card.png/#x HTTP/1.1\r\nHost: x\r\n\r\n"])  # Litestar's: a trailing slash
    assert [r.split(b" ", 2)[1] for r in responses] == [b"200"]
    assert live.answered == answered + 1


# --- /i/ shares the scanner limit -----------------------------------------------------------


def test_an_error_answer_behind_a_running_request_is_the_last_thing_written(live, user, caplog):
    """The running request's answer is dropped (as when uvicorn closed on a bad request),
    not written after the error answer's end of stream, which would raise in the app."""
    with socket.create_connection(live.address, timeout=10) as conn:
        with WriterHeld(live):
            conn.sendall(create_request(user, "before-bad") + b"GET /p/x HTTP/1.1\r\nBad Header\r\n\r\n")
            protocol = protocol_of(live, conn)
            wait_until(lambda: protocol.refused, what="the bad request to be refused")
        # The connection still open (the client has not read the end of the stream yet).
        wait_until(lambda: not live.server.server_state.tasks, what="the running request to end")
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert statuses(received) == [b"400"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_head_past_the_limit_after_a_body_on_the_same_bytes_is_431(live, card):
    agent = b"a" * door.MAX_HEAD_BYTES
    raw = (
        b"GET /c/door-card HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /c/door-card HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n\r\n" % agent
    )
    assert statuses(everything_until_closed(live, raw)) == [b"302", b"431"]


# --- the fast path's answers, written at the end of the loop's turn --------------------------


def test_requests_sent_before_the_client_stops_sending_are_answered(live, card):
    """Answers held for the end of the turn are written before a half-closed connection closes."""
    with socket.create_connection(live.address, timeout=10) as conn:
        conn.sendall(b"GET /c/door-card HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /q/door-card.png HTTP/1.1\r\nHost: x\r\n\r\n")
        conn.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert statuses(received) == [b"302", b"200"]


@pytest.mark.parametrize("closing", ["end of input", "shutdown", "keep-alive timeout"])
def test_an_answer_waiting_for_the_turns_end_is_written_before_its_connection_closes(live, card, closing):
    """A close in the very turn an answer was made (the client's end of input read after
    held-back bytes were parsed, the server's shutdown, the keep-alive timer, which runs
    before the turn's writes) writes the answer first."""
    made_not_written = []

    def answer_then_close(protocol: door.ScannerProtocol) -> None:  # on the server's loop
        protocol.data_received(b"GET /c/door-card HTTP/1.1\r\nHost: x\r\n\r\n")
        made_not_written.append(bool(protocol.unsent))
        if closing == "end of input":
            protocol.eof_received()
            protocol.transport.close()  # what uvloop does when eof_received returns None
        elif closing == "shutdown":
            protocol.shutdown()
        else:
            protocol.timeout_keep_alive = 0
            protocol.check_deadline()

    with socket.create_connection(live.address, timeout=10) as conn:
        protocol = protocol_of(live, conn)
        live.loop.call_soon_threadsafe(answer_then_close, protocol)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert made_not_written == [True]
    assert statuses(received) == [b"302"]


def test_a_client_pipelining_answered_requests_without_reading_is_held_back(live, card):
    """Answers waiting for the turn's end are bounded: past UNSENT_MOST they meet uvicorn's
    flow control, so the connection's requests queue and its reading pauses, as without the wait."""
    page = live.http.get("/p/door-card")
    assert page.status_code == 200  # drawn: the fast path answers it from now on
    count = max(3000, 8 * 1024 * 1024 // len(page.content))  # more than the sockets' buffers hold
    with socket.create_connection(live.address, timeout=20) as conn:
        conn.sendall(b"GET /p/door-card HTTP/1.1\r\nHost: x\r\n\r\n" * count)
        protocol = protocol_of(live, conn)
        wait_until(lambda: protocol.held, what="requests to be held back, unparsed")
        assert len(protocol.unsent) <= door.UNSENT_MOST
        assert len(protocol.pipeline) <= door.MAX_QUEUED
        assert read_responses(conn, count) == [b"200"] * count
