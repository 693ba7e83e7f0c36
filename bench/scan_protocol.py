"""The scan path's own Python, per request, in process: what app/public/door.py's protocol and
the answers behind it cost, with no sockets, no kernel and no load generator.

    .venv/bin/python bench/scan_protocol.py               # about 20 s
    PYTHONPATH=/path/to/other/tree .venv/bin/python bench/scan_protocol.py   # the same for another tree

It builds the app on a temporary database (a card, cached as a first scan caches it) and
feeds one ScannerProtocol, made as uvicorn makes it on a uvloop loop, the bytes of one
phone's GET at a time, each in its own turn of the running loop (the answer is written at
the turn's end, as in the server); the transport only counts what is written. The loop's
turn is in the figures. Printed for
`/c/{slug}` (counted redirect), `/q/{slug}.png` (cached image) and `/p/{slug}` (the card
page, a view counted): CPU microseconds per request, the least of 7 runs of 20,000
(process time: it holds on a busy machine, where wall-clock figures do not). Then the
same for a protocol with the door limits taken out of the common path (no check of the
read, no clock readings for the head and keep-alive deadlines): the difference is what
the limits cost a scan. bench/scanners.py gives the figures that count, with sockets,
under load, against a bare ASGI app; this one says where the protocol's share goes.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import uvicorn
import uvloop
from litestar.testing import TestClient
from uvicorn.server import ServerState

from app.cli import server_options
from app.config import Settings
from app.main import create_app
from app.public import door, fast_path

PHONE_UA = b"Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
RUNS, REQUESTS = 7, 20_000


class CountingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name, default)


class WithoutLimits(door.ScannerProtocol):
    """The protocol with the door limits off the common path: every read straight to the
    parser, no clock readings for the deadlines."""

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.answered_early = False
        self.idle, self.in_head, self.head_bytes, self.head_most = False, True, 0, 0
        self.requests_begun += 1

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1


async def per_request(protocol: door.ScannerProtocol, request: bytes) -> float:
    """CPU microseconds a request, the least of RUNS runs of REQUESTS."""
    transport = protocol.transport
    for _ in range(2000):
        protocol.data_received(request)
        await asyncio.sleep(0)
    best = float("inf")
    for _ in range(RUNS):
        answered, written = protocol.fast_path.answered, transport.writes
        started = time.process_time()
        for _ in range(REQUESTS):
            protocol.data_received(request)
            await asyncio.sleep(0)
        best = min(best, time.process_time() - started)
        if protocol.fast_path.answered - answered != REQUESTS or transport.writes - written != REQUESTS:
            sys.exit("not every request was answered by the fast path")
    return best / REQUESTS * 1e6


def main() -> int:
    data = Path(tempfile.mkdtemp(prefix="qrcontact-protocol-"))
    settings = Settings(
        data_dir=data, database_path=data / "qrcontact.db", jwt_secret="bench-" + "x" * 40,
        public_base_url="https://qr.example.test", scanner_rate_limit_per_minute=1_000_000_000,
    )
    app = create_app(settings)
    print(f"app from {Path(fast_path.__file__).parent}")
    with TestClient(app) as client:
        account = {"email": "bench@example.com", "password": "correct horse battery staple", "marketingConsent": False}
        auth = client.post("/v1/auth/register", json=account)
        headers = {"Authorization": f"Bearer {auth.json()['accessToken']}"}
        card = client.post("/v1/cards", json={"fullName": "Jane Doe", "email": "jane@example.com", "slug": "bench"}, headers=headers)
        assert card.status_code == 201, card.text
        paths = ["/c/bench", "/q/bench.png", "/p/bench"]
        for path in paths:  # the first scan reads the card and draws the image: cached from then on
            assert client.get(path, headers={"User-Agent": "Googlebot/2.1"}, follow_redirects=False).status_code in (200, 302)
        loop = uvloop.new_event_loop()
        config = uvicorn.Config(app, **server_options(app))
        config.load()
        print(f"{'':16}{'protocol':>12}{'no limits':>12}{'limits cost':>13}   (CPU us a request)")
        for path in paths:
            if not fast_path.fast_route(path.encode(), b"GET"):
                print(f"{path:16} not answered by this tree's fast path")
                continue
            request = b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: %s\r\n\r\n" % (path.encode(), PHONE_UA)
            figures = []
            for kind in (door.ScannerProtocol, WithoutLimits):
                protocol = kind(
                    config=config, server_state=ServerState(), app_state={}, _loop=loop,
                    fast_path=app.state.fast_path, outgoing=door.Outgoing(),
                )
                protocol.connection_made(CountingTransport())
                figures.append(loop.run_until_complete(per_request(protocol, request)))
                protocol.connection_lost(None)
            print(f"{path:16}{figures[0]:>12.2f}{figures[1]:>12.2f}{figures[0] - figures[1]:>13.2f}")
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
