"""The webhook sender's HTTP: one POST of a signed message to a checked address (SPEC §9),
over HTTP/1.1 connections kept for the next message to the same receiver.

What a delivery needs and no more: a body of known length, the answer's status and its
first kilobyte; no redirects, proxies, cookies or content decoding. httpx did the same for
about 1.2 ms of CPU a delivery (httpcore, h11 and anyio: most of the sender's work,
docs/performance.md); here the answer is parsed by httptools, uvicorn's C parser.

The connection goes to the address the SSRF guard checked (url_guard.Target), with the
URL's host in `Host` and, over TLS, as the server name (SNI and the certificate check),
so no second lookup can land elsewhere. A connection is kept when its answer was read to
the end and neither side asked to close, at most KEEP_PER_RECEIVER a receiver; a kept one
idle for KEEP_IDLE seconds is closed rather than reused (receivers close theirs after
about 5 s), by the next message to its receiver or by a sweep of all of them at most every
KEEP_IDLE seconds. A kept connection the
receiver had closed fails before any answer: the message is sent once more on a new one
(delivery is at least once; receivers dedupe by webhook-id).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import NamedTuple

import httptools

from app.events.url_guard import Target
from app.events.webhooks import RESPONSE_KEPT

READ_AT_MOST = 64 * 1024  # an answer's body read this far to keep its connection; past it, closed
KEEP_IDLE = 4.0  # seconds a kept connection may wait for the next message
KEEP_PER_RECEIVER = 8


class Answer(NamedTuple):
    status: int
    first_bytes: bytes  # at most RESPONSE_KEPT


class ClosedBeforeAnswer(ConnectionError):
    """The receiver closed the connection before answering anything."""


class _Reading:
    """httptools' callbacks: the status, whether the connection may be kept, the first bytes
    of the body, and the end."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.kept = bytearray()
        self.body_read = 0
        self.headers_done = False
        self.keep_alive = False
        self.complete = False

    def on_headers_complete(self) -> None:
        self.headers_done = True
        # Asked here: once the answer is complete, the parser has forgotten its framing.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body_read += len(body)
        if len(self.kept) < RESPONSE_KEPT:
            self.kept += body[: RESPONSE_KEPT - len(self.kept)]

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:  # an interim answer (100 Continue, 103): the answer follows
            self.headers_done = self.keep_alive = False
            return
        self.complete = True


class _Connection(NamedTuple):
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float  # when it was put back to wait; 0.0 for a new connection, never kept yet


class KeptConnections:
    """Sends webhook POSTs, keeping connections per receiver (address, port, host name)."""

    def __init__(self, user_agent: str, ssl_context: ssl.SSLContext | None = None) -> None:
        self.user_agent = user_agent
        self._ssl_context = ssl_context  # None: the system's trusted roots, made at the first https
        self._idle: dict[tuple, list[_Connection]] = {}
        self._swept_at = time.monotonic()

    async def post(self, target: Target, headers: dict[str, str], body: bytes) -> Answer:
        """POST `body` to `target`. Raises OSError (connect, reset, TLS) and ValueError (an answer
        that is not HTTP/1.x); a caller's timeout cancels it and closes its connection."""
        request = self._request(target, headers, body)
        if time.monotonic() - self._swept_at >= KEEP_IDLE:
            self._sweep()
        key = (target.scheme, target.address, target.port, target.host)
        while connection := self._take(key):
            try:
                return await self._exchange(key, connection, request)
            except ClosedBeforeAnswer:
                continue  # the receiver had closed it while it waited: try a newer one, or a new one
        reader, writer = await asyncio.open_connection(
            str(target.address), target.port,
            ssl=self._ssl() if target.scheme == "https" else None,
            server_hostname=target.host if target.scheme == "https" else None,
        )
        return await self._exchange(key, _Connection(reader, writer, 0.0), request)

    async def close(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                connection.writer.close()
        self._idle.clear()

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def _sweep(self) -> None:
        """Close the kept connections of every receiver that have waited KEEP_IDLE or that the
        receiver has closed, and forget receivers with none left."""
        now = self._swept_at = time.monotonic()
        for key, connections in list(self._idle.items()):
            usable = [connection for connection in connections if self._usable(connection, now)]
            for connection in set(connections) - set(usable):
                connection.writer.close()
            if usable:
                self._idle[key] = usable
            else:
                del self._idle[key]

    @staticmethod
    def _usable(connection: _Connection, now: float) -> bool:
        return now - connection.idle_since < KEEP_IDLE and not connection.reader.at_eof()

    def _take(self, key: tuple) -> _Connection | None:
        connections = self._idle.get(key)
        now = time.monotonic()
        while connections:
            connection = connections.pop()
            if self._usable(connection, now):
                return connection
            connection.writer.close()
        return None

    def _request(self, target: Target, headers: dict[str, str], body: bytes) -> bytes:
        lines = [f"POST {target.path} HTTP/1.1", f"host: {target.host_header}", f"user-agent: {self.user_agent}",
                 f"content-length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def _exchange(self, key: tuple, connection: _Connection, request: bytes) -> Answer:
        reader, writer, _ = connection
        reading = _Reading()
        parser = reading.parser
        kept = False
        try:
            writer.write(request)
            await writer.drain()
            received = False
            while not reading.complete and reading.body_read <= READ_AT_MOST:
                data = await reader.read(65536)
                if not data:
                    if not received:
                        raise ClosedBeforeAnswer("the receiver closed the connection")
                    if not reading.headers_done:
                        raise ConnectionError("the receiver closed the connection in the middle of its answer")
                    break  # an answer whose body ends when the connection does
                received = True
                try:
                    parser.feed_data(data)
                except httptools.HttpParserUpgrade:
                    reading.keep_alive = False  # the connection would speak another protocol now
                    break
                except httptools.HttpParserError as exc:
                    raise ValueError(f"the answer is not HTTP/1.1: {exc}") from None
            if reading.complete and reading.keep_alive:
                kept = True
                connections = self._idle.setdefault(key, [])
                connections.append(_Connection(reader, writer, time.monotonic()))
                while len(connections) > KEEP_PER_RECEIVER:
                    connections.pop(0).writer.close()
            return Answer(parser.get_status_code(), bytes(reading.kept))
        except OSError as exc:
            if isinstance(exc, (BrokenPipeError, ConnectionResetError)) and not reading.headers_done and connection.idle_since:
                raise ClosedBeforeAnswer(str(exc)) from None
            raise
        finally:
            if not kept:
                writer.close()
