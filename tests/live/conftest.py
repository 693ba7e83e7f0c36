"""Fixtures of the live tier: real servers over sockets (uvicorn in a thread, `qrcontact
serve` processes), moto_server as S3, and a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from app.config import Settings
from app.main import create_app
from tests.support.app import make_settings
from tests.support.live_server import LiveServer
from tests.support.mail import MailSink
from tests.support.net import free_port
from tests.support.service import Service, with_group_gone


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


@pytest.fixture
def live(tmp_path):
    server = LiveServer(make_settings(tmp_path))
    yield server
    server.stop()
