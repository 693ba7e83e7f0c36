"""A webhook receiver for tests: it records every message, answers from a script (a list
of statuses, then 200), and is reached either in process (`post`, which the sender is
given in place of its HTTP client: the unit tier) or over loopback HTTP/1.1 (`serve()`:
the live tier). Stop and serve it again on the same port to play a receiver that goes away."""

from __future__ import annotations

import collections
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from app.events.http_post import Answer
from app.events.url_guard import Target
from tests.support.net import free_port


class Message:
    def __init__(self, headers: dict[str, str], body: bytes, url: str, server_name: str | None = None) -> None:
        self.headers = {key.lower(): value for key, value in headers.items()}
        self.body = body
        self.url = url  # in process: scheme://address:port/path, the address connected to; over loopback: the path
        self.server_name = server_name  # in process: the TLS server name asked for (None: plain HTTP)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.received: list[Message] = []
        # Statuses to answer, in order (then 200); a tuple (status, headers, body) for more.
        self.script: collections.deque = collections.deque()
        self.body = b"ok"
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._gate: threading.Event | None = None

    def answer(self, *statuses) -> Receiver:
        self.script.extend(statuses)
        return self

    def hold(self) -> threading.Event:
        """Keep the next answers waiting until the returned event is set (a slow receiver).
        Over loopback only: in process it would block the app's event loop."""
        self._gate = threading.Event()
        return self._gate

    def _record(self, headers: dict[str, str], body: bytes, url: str,
                server_name: str | None = None) -> tuple[int, dict[str, str], bytes]:
        with self._changed:
            self.received.append(Message(headers, body, url, server_name))
            self._changed.notify_all()
            answer = self.script.popleft() if self.script else 200
        if self._gate is not None:
            self._gate.wait(30)
        return answer if isinstance(answer, tuple) else (answer, {}, self.body)

    def wait_for(self, count: int, timeout: float = 10.0, ids: bool = False) -> list[Message]:
        """The messages once `count` have arrived (distinct webhook-ids when `ids`): a liveness bound."""
        def enough() -> bool:
            return len({m.id for m in self.received} if ids else self.received) >= count

        with self._changed:
            if not self._changed.wait_for(enough, timeout):
                raise AssertionError(f"timed out waiting for {count} webhook messages; got {len(self.received)}")
            return list(self.received)

    # --- in process ----------------------------------------------------------------

    async def post(self, target: Target, headers: dict[str, str], body: bytes) -> Answer:
        """What the sender's HTTP client would send to the checked `target`, recorded; the
        scripted answer, whole (the sender keeps its first kilobyte)."""
        headers = {**headers, "host": target.host_header}
        server_name = target.host if target.scheme == "https" else None
        address = f"[{target.address}]" if target.address.version == 6 else str(target.address)
        status, _, answer = self._record(headers, body, f"{target.scheme}://{address}:{target.port}{target.path}", server_name)
        return Answer(status, answer)

    # --- over loopback -------------------------------------------------------------

    def serve(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept, as most receivers do

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, headers, answer = receiver._record(dict(self.headers), body, self.path)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
