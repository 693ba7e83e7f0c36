"""The console draws one page at a time (web.one_page_at_a_time): a second GET waits until
the first has started its answer, whichever route it is (Litestar makes a middleware per
route; the turn is the app's); forms, a failed page and a slow reader hold no one up."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from litestar.datastructures import State

from app.console.web import one_page_at_a_time


class Pages:
    """An ASGI app whose requests each wait for the test to let them answer."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.go: dict[str, asyncio.Event] = {}

    async def __call__(self, scope, receive, send) -> None:
        name = scope["path"]
        self.started.append(name)
        await self.go.setdefault(name, asyncio.Event()).wait()
        if name.endswith("/fails"):
            raise RuntimeError("the page failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"page"})

    def let(self, name: str) -> None:
        self.go.setdefault(name, asyncio.Event()).set()


class App:
    """What the middleware reads of the Litestar app: the turn in its state (main.bind)."""

    def __init__(self) -> None:
        self.app = SimpleNamespace(state=State({"console_pages": asyncio.Semaphore(1)}))

    def scope(self, path: str, method: str = "GET") -> dict:
        return {"type": "http", "method": method, "path": path, "litestar_app": self.app}


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_second_page_waits_for_the_first_to_start_its_answer_and_forms_do_not_wait():
    async def run() -> None:
        pages, app = Pages(), App()
        # Two routes, each with its own instance of the middleware, as Litestar builds them.
        route_one, route_two = one_page_at_a_time(pages), one_page_at_a_time(pages)
        sent: list[str] = []
        slow_reader = asyncio.Event()

        async def send_slowly(message) -> None:  # a client that reads the first answer late
            if message["type"] == "http.response.body":
                await slow_reader.wait()
            sent.append(message["type"])

        async def noop_send(message) -> None:
            sent.append(message["type"])

        first = asyncio.create_task(route_one(app.scope("/app/one"), None, send_slowly))
        second = asyncio.create_task(route_two(app.scope("/app/two"), None, noop_send))
        form = asyncio.create_task(route_two(app.scope("/app/form", "POST"), None, noop_send))
        await settle()
        assert pages.started == ["/app/one", "/app/form"]  # the POST went past, the second GET waits
        pages.let("/app/one")
        await settle()
        assert pages.started[-1] == "/app/two"  # in as soon as the first answer started, not when read
        assert not first.done()
        pages.let("/app/two")
        pages.let("/app/form")
        await asyncio.wait_for(asyncio.gather(second, form), 5)
        slow_reader.set()
        await asyncio.wait_for(first, 5)

    asyncio.run(run())


def test_a_page_that_fails_lets_the_next_in():
    async def run() -> None:
        pages, app = Pages(), App()
        gated = one_page_at_a_time(pages)

        async def send(message) -> None:
            pass

        failing = asyncio.create_task(gated(app.scope("/app/fails"), None, send))
        after = asyncio.create_task(gated(app.scope("/app/after"), None, send))
        await settle()
        assert pages.started == ["/app/fails"]
        pages.let("/app/fails")
        pages.let("/app/after")
        await asyncio.wait_for(after, 5)
        assert pages.started == ["/app/fails", "/app/after"]
        assert isinstance(failing.exception(), RuntimeError)

    asyncio.run(run())
