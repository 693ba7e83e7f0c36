"""An HTTP proxy on 127.0.0.1 in front of moto_server (the object store): it counts the
requests through it by kind (LIST, GET, PUT, ...) for bench/edges.py, and can make the
store unreachable for tests/live/test_edge_faults.py.

While `down`, every request that arrives (on a new connection or on one kept alive) gets
its connection closed without an answer, so a client sees the store drop it; requests
already forwarded finish. Nothing is counted while down.
"""

from __future__ import annotations

import collections
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class StoreProxy:
    def __init__(self, upstream: str) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.down = False
        lock = threading.Lock()
        target = urlsplit(upstream)
        local = threading.local()
        proxy = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def forward(self) -> None:
                if proxy.down:
                    self.close_connection = True  # no answer at all: the store is unreachable
                    return
                kind = "LIST" if self.command == "GET" and "list-type=" in self.path else self.command
                with lock:
                    proxy.counts[kind] += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if getattr(local, "conn", None) is None:
                    local.conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                try:
                    local.conn.request(self.command, self.path, body=body or None, headers=headers)
                    response = local.conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException):
                    local.conn.close()
                    local.conn = None
                    self.send_error(502)
                    return
                self.send_response_only(response.status)
                for name, value in response.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # a client closing its connection at the end of a run is not news

        self.server = Server(("127.0.0.1", 0), Forward)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def total(self) -> int:
        return sum(self.counts.values())

    def snapshot(self) -> collections.Counter[str]:
        return collections.Counter(self.counts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
