"""Fixtures of every tier: a real SQLite file under tmp_path with every migration and the
app in process (Litestar's TestClient), and a real SMTP server (aiosmtpd) on loopback.
Helpers live in tests/support/; each tier's own fixtures in its conftest.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from playwright.sync_api import Browser, sync_playwright

from app.config import Settings
from app.main import create_app
from tests.support.app import create_card, make_settings, register
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.console import ORIGIN, log_in
from tests.support.live_server import LiveServer
from tests.support.mail import MailSink
from tests.support.net import free_port
from tests.support.service import Service, with_group_gone


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


@pytest.fixture
def user(client: TestClient) -> dict:
    return register(client)


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


@pytest.fixture
def service(tmp_path):
    started = []

    def make(umask: int = -1, **env) -> Service:
        svc = Service(tmp_path / "data", **env).start(umask)
        started.append(svc)
        return svc

    yield make
    for svc in started:
        if svc.process and svc.process.poll() is None:
            svc.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    """moto_server on loopback, in its own process group, stopped by PID."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(f"moto_server did not start: {log.read_text()}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        with_group_gone(process.pid)
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def console_server(tmp_path_factory) -> Iterator[Service]:
    """`qrcontact serve` as an operator runs it, without replication; stopped by its PID."""
    # One client drives every journey, and the console's forms count against the per-client limit.
    service = Service(tmp_path_factory.mktemp("console") / "data", REPLICA_URL="off", RATE_LIMIT_PER_MINUTE="100000").start()
    yield service
    service.stop()



@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        # CI installs it (.ci/run): there a missing browser must fail, not pass the journeys by skipping them.
        if os.environ.get("CI"):
            pytest.fail("CI needs Debian's chromium at /usr/bin/chromium")
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def forms_console(tmp_path_factory):
    """One logged-in console with one card and one API key for the whole table: every POST
    in it is refused, so nothing it does changes what the next case sees."""
    settings = make_settings(tmp_path_factory.mktemp("forms"))
    with TestClient(create_app(settings), base_url=ORIGIN) as client:
        user = register(client)
        card = create_card(client, user["headers"])
        key = client.post("/v1/api-keys", json={"name": "kept"}, headers=user["headers"]).json()
        yield client, {"card_id": card["cardId"], "key_id": key["keyId"]}, log_in(client, user["user"]["email"])


@pytest.fixture
def live(tmp_path):
    server = LiveServer(make_settings(tmp_path))
    yield server
    server.stop()
