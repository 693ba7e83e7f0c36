"""Shared fixtures: a real SQLite file under tmp_path with every migration, the app over
HTTP, and a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from litestar import Litestar
from litestar.testing import TestClient

from app.cli import server_options
from app.config import Settings
from app.main import create_app
from app.sqlite import sqlite3

PASSWORD = "correct horse battery staple"
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
_emails = itertools.count(1)


def make_settings(data_dir: Path, **overrides) -> Settings:
    base = Settings(
        data_dir=data_dir,
        database_path=data_dir / "qrcontact.db",
        jwt_secret="test-secret-" + "x" * 40,
        public_base_url="https://qr.example.test",
        rate_limit_per_minute=100_000,
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://qr.example.test") as client:
        yield client


def unique_email() -> str:
    return f"user{next(_emails)}@example.com"


def register(client: TestClient, email: str | None = None, **extra) -> dict:
    """Register an account and return the AuthResponse, with `headers` added for convenience."""
    response = client.post(
        "/v1/auth/register",
        json={"email": email or unique_email(), "password": PASSWORD, "marketingConsent": False, **extra},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    body["headers"] = {"Authorization": f"Bearer {body['accessToken']}"}
    return body


@pytest.fixture
def user(client: TestClient) -> dict:
    return register(client)


def create_card(client: TestClient, headers: dict, **fields) -> dict:
    body = {"fullName": "Jane Doe", "email": "jane@example.com", **fields}
    response = client.post("/v1/cards", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def flush_counters(client: TestClient) -> None:
    """Write the buffered scan and view counts now instead of waiting for the next second."""
    state = client.app.state
    client.blocking_portal.call(state.counters.flush)


def assert_problem(response, status: int) -> dict:
    """The response is an RFC 9457 problem document with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    return body



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(settings: Settings, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the app's database directly, as an operator with sqlite3 would."""
    conn = sqlite3.connect(settings.database_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def execute(settings: Settings, sql: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(settings.database_path, timeout=10)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


class MailSink:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts.

    `rcpt_reply` set to an SMTP reply ("550 …", "451 …") refuses recipients with it.
    Stop and start it again to play a server that goes away and comes back (same port).
    """

    def __init__(self, port: int | None = None, **smtp_options) -> None:
        self.port = port or free_port()
        self.smtp_options = smtp_options
        self.received: list[tuple[float, str, list[str], bytes]] = []
        self.rcpt_reply: str | None = None
        self._controller: Controller | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((time.time(), envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def start(self) -> MailSink:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **self.smtp_options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def messages(self) -> list[EmailMessage]:
        return [email.message_from_bytes(content, policy=email.policy.default) for *_, content in self.received]

    def wait_for(self, count: int, timeout: float = 60.0) -> list[EmailMessage]:
        """Wait until `count` messages have arrived (a liveness bound, not a speed check)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages, got {len(self.received)}")
            time.sleep(0.02)
        return self.messages()


@pytest.fixture
def smtp() -> Iterator[MailSink]:
    sink = MailSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def mail_settings(tmp_path: Path, smtp: MailSink) -> Settings:
    return make_settings(tmp_path, smtp_url=smtp.url)


@pytest.fixture
def mail_client(mail_settings: Settings) -> Iterator[TestClient]:
    """The app sending its email to the `smtp` fixture's server."""
    with TestClient(create_app(mail_settings), base_url="https://qr.example.test") as client:
        yield client


def text_part(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_part(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def wake_outbox(client: TestClient) -> None:
    """Make every waiting email due now and wake the worker (instead of waiting out the backoff)."""
    execute(client.app.state.settings, "UPDATE email_outbox SET next_attempt_at = '2000-01-01T00:00:00.000000Z' WHERE status = 'pending'")
    client.blocking_portal.call(client.app.state.outbox.wake)


def drain_outbox(client) -> None:
    """Wait until the email outbox has nothing pending (every queued message delivered or
    given up). Waiting mail is made due now, so no backoff is waited out."""
    wake_outbox(client)
    wait_until(
        lambda: not query(client.app.state.settings, "SELECT 1 FROM email_outbox WHERE status = 'pending'"),
        what="the email outbox to drain",
    )


def wait_until(condition, timeout: float = 60.0, what: str = "condition", every: float = 0.02):
    """Poll until `condition()` is truthy and return it (a liveness bound, not a speed check)."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)
    return result


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
    from app.cards.cards import Card
    from app.public.answers import qr_of
    from app.public.card_cache import SLUG_SHAPE

    slug, _, extension = path[3:].partition(".")
    if not SLUG_SHAPE.match(slug):
        return
    card = await public.cards.get(slug)
    if isinstance(card, Card) and path.startswith("/q/") and extension in ("png", "svg"):
        await qr.cached_image(public.qr_cache, *qr_of(public, card, extension), "dynamic")


def metric(client, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total
