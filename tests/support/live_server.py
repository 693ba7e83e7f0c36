"""The app served over real sockets in the test's own process: uvicorn in a thread, with
the scanner fast path in its HTTP protocol, as `qrcontact run-app` serves it."""

from __future__ import annotations

import asyncio
import re
import socket
import threading

import httpx
import uvicorn
from litestar import Litestar

from app.cli import server_options
from app.config import Settings
from app.main import create_app
from tests.support.app import metric
from tests.support.waiting import wait_until


class LiveServer:
    """The app served by uvicorn as `qrcontact run-app` serves it (app.cli.server_options,
    with the scanner fast path in its HTTP protocol), on a 127.0.0.1 port, in a thread."""

    def __init__(self, settings: Settings, extra_handlers: list | None = None) -> None:
        self.app = create_app(settings)
        for handler in extra_handlers or ():  # routes a test adds to exercise the door itself
            self.app.register(handler)
        self.app.on_startup.append(self._started)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        self.address = listener.getsockname()
        self.url = "http://{}:{}".format(*self.address)
        self.server = uvicorn.Server(uvicorn.Config(self.app, **server_options(self.app)))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [listener]}, daemon=True)
        self.thread.start()
        wait_until(lambda: self.server.started or not self.thread.is_alive(), what="the server to start")
        assert self.server.started
        self.http = LiveClient(self, follow_redirects=False)

    def _started(self, app: Litestar) -> None:
        self.loop = asyncio.get_running_loop()

    def call(self, function, *args):
        """Run a coroutine function on the server's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(function(*args), self.loop).result(30)

    @property
    def answered(self) -> int:
        """Requests the fast path has answered so far."""
        return self.app.state.fast_path.answered

    def metric(self, name: str, **labels: str) -> float:
        return metric(self.http, name, **labels)

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive()


class LiveClient(httpx.Client):
    """An HTTP client of a LiveServer with what tests take from a TestClient: `app`, and
    `blocking_portal.call` (here the server's own `call`, on its event loop).

    With `cached=True`, before each GET or HEAD of /c/{slug} or /q/{slug}.png|svg the card
    and its image are put in the server's caches (as an earlier scan would have), so that
    the scanner fast path answers the request itself rather than handing it to Litestar.
    """

    def __init__(self, server: LiveServer, cached: bool = False, **options) -> None:
        super().__init__(base_url=server.url, timeout=10, **options)
        self.app = server.app
        self.blocking_portal = server
        self.cached = cached

    def request(self, method: str, url, **options) -> httpx.Response:
        path = httpx.URL(str(url)).path
        if self.cached and method in ("GET", "HEAD") and re.fullmatch(r"/[cq]/[^/]+", path):
            self.blocking_portal.call(cache_for_scanners, self.app.state.public, path)
        return super().request(method, url, **options)


async def cache_for_scanners(public, path: str) -> None:
    """What a scan of /c/{slug} or /q/{slug}.{png,svg} reads from memory, read or drawn now."""
    from app import qr
    from app.cards.types import Card
    from app.public.answers import qr_of
    from app.public.card_cache import SLUG_SHAPE

    slug, _, extension = path[3:].partition(".")
    if not SLUG_SHAPE.match(slug):
        return
    card = await public.cards.get(slug)
    if isinstance(card, Card) and path.startswith("/q/") and extension in ("png", "svg"):
        await qr.cached_image(public.qr_cache, *qr_of(public, card, extension), "dynamic")
