"""Figures for sharing and scan statistics, measured on the real service.

  1. share → SMTP delivery on loopback, against a direct smtplib send as the baseline;
  2. how long a queued email takes to arrive after SIGKILL and a restart;
  3. events written per counter flush under a burst of 1,000 scans.

Run from the repository (needs the test extras: aiosmtpd, httpx):

    .venv/bin/python bench/sharing.py [--shares 100] [--rounds 5] [--scans 1000] [--concurrency 50]

It starts `qrcontact serve` (replication on, as deployed) in a temporary data folder and an
aiosmtpd server on 127.0.0.1, and stops both (by process group) when done.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
from aiosmtpd.controller import Controller

QRCONTACT = str(Path(sys.executable).parent / "qrcontact")
PASSWORD = "correct horse battery staple"
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    """aiosmtpd on loopback; records when each message arrived (monotonic clock)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[float] = []
        self.changed = threading.Condition()
        self.controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope):
        with self.changed:
            self.arrivals.append(time.monotonic())
            self.changed.notify_all()
        return "250 OK"

    def start(self) -> None:
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller:
            self.controller.stop()
            self.controller = None

    def wait_for(self, count: int, timeout: float = 60) -> float:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.arrivals) >= count, timeout):
                raise SystemExit(f"timed out waiting for message {count}")
            return self.arrivals[count - 1]


class Service:
    def __init__(self, data: Path, smtp_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = data
        self.env = {
            **os.environ, "DATA_DIR": str(data), "HOST": "127.0.0.1", "PORT": str(self.port),
            "PUBLIC_BASE_URL": self.url, "SMTP_URL": smtp_url, "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_PER_MINUTE": "1000000",
        }
        self.process: subprocess.Popen | None = None

    def start(self) -> float:
        """Start and wait until /health answers; returns the monotonic time it was spawned."""
        spawned = time.monotonic()
        self.process = subprocess.Popen(
            [QRCONTACT, "serve"], env=self.env, stdout=open(self.data.parent / "serve.log", "a"),
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return spawned
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None:
                raise SystemExit("qrcontact serve exited; see serve.log")
            time.sleep(0.005)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.killpg(self.process.pid, sig)
        self.process.wait(timeout=30)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="qrc-bench-"))
    sink = Sink()
    sink.start()
    service = Service(tmp / "data", f"smtp://127.0.0.1:{sink.port}")
    service.start()
    api = httpx.Client(base_url=service.url, timeout=30)
    try:
        auth = api.post("/v1/auth/register", json={"email": "bench@example.com", "password": PASSWORD, "marketingConsent": False}).json()
        api.headers["Authorization"] = f"Bearer {auth['accessToken']}"
        sink.wait_for(1)  # the verification email
        card = api.post("/v1/cards", json={"fullName": "Bench", "email": "bench@example.com", "slug": "bench-card"}).json()
        share_url = f"/v1/cards/{card['cardId']}/share"

        # 1. share → delivery, against smtplib straight to the same server.
        baseline = []
        for n in range(args.shares):
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = "bench@example.com", f"direct{n}@example.com", "baseline"
            message.set_content("x" * 1500)
            started = time.monotonic()
            with smtplib.SMTP("127.0.0.1", sink.port) as client:
                client.send_message(message)
            baseline.append(sink.wait_for(len(sink.arrivals)) - started)
        delivery, answered = [], []
        for n in range(args.shares):
            count = len(sink.arrivals)
            started = time.monotonic()
            response = api.post(share_url, json={"recipients": [{"channel": "email", "to": f"friend{n}@example.com"}]})
            answered.append(time.monotonic() - started)
            assert response.status_code == 202, response.text
            delivery.append(sink.wait_for(count + 1) - started)
        print(f"1. share → SMTP delivery on loopback ({args.shares} shares, one at a time)")
        print(f"   share request answered (202):  median {ms(statistics.median(answered))}, p95 {ms(pct(answered, 0.95))}")
        print(
            f"   share → message at the server:  median {ms(statistics.median(delivery))}, "
            f"p95 {ms(pct(delivery, 0.95))}, max {ms(max(delivery))}"
        )
        print(f"   baseline, smtplib send direct:  median {ms(statistics.median(baseline))}, p95 {ms(pct(baseline, 0.95))}")
        print(f"   ratio share→delivery / direct send (medians): {statistics.median(delivery) / statistics.median(baseline):.2f}")

        # 2. a queued email after SIGKILL and restart.
        database = tmp / "data" / "qrcontact.db"
        boots, after_spawn, after_healthy = [], [], []
        for round_ in range(args.rounds):
            sink.stop()
            response = api.post(share_url, json={"recipients": [{"channel": "email", "to": f"crash{round_}@example.com"}]})
            assert response.status_code == 202
            while not sqlite3.connect(database).execute(
                "SELECT 1 FROM email_outbox WHERE recipient = ? AND last_error IS NOT NULL", (f"crash{round_}@example.com",)
            ).fetchone():
                time.sleep(0.01)
            service.kill(signal.SIGKILL)
            count = len(sink.arrivals)
            sink.start()
            spawned = service.start()
            healthy = time.monotonic()
            arrived = sink.wait_for(count + 1)
            boots.append(healthy - spawned)
            after_spawn.append(arrived - spawned)
            after_healthy.append(arrived - healthy)
        print(f"2. queued email after SIGKILL of the process group and a restart ({args.rounds} rounds)")
        print(f"   spawn → /health answers:       median {ms(statistics.median(boots))}  (the baseline: start-up itself)")
        print(f"   spawn → message at the server: median {ms(statistics.median(after_spawn))}, max {ms(max(after_spawn))}")
        print(f"   message relative to the first /health answer: median {ms(statistics.median(after_healthy))}, "
              f"max {ms(max(after_healthy))} (negative: it arrived first)")
        print(f"   ratio spawn→message / spawn→healthy (medians): {statistics.median(after_spawn) / statistics.median(boots):.2f}")

        # 3. a burst of scans: events per flush.
        before = httpx.get(f"{service.url}/metrics").text

        async def burst() -> float:
            # Plain keep-alive HTTP/1.1 over asyncio streams: an httpx AsyncClient tops out
            # near 150 requests/s here and would turn the burst into a trickle.
            request = (
                f"GET /c/bench-card HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\nUser-Agent: {PHONE_UA}\r\n\r\n"
            ).encode()

            async def connection(count: int) -> None:
                reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
                for _ in range(count):
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    assert head.startswith(b"HTTP/1.1 302") and b"content-length: 0" in head.lower(), head
                writer.close()
                await writer.wait_closed()

            shares = [args.scans // args.concurrency + (n < args.scans % args.concurrency) for n in range(args.concurrency)]
            started = time.monotonic()
            await asyncio.gather(*(connection(count) for count in shares))
            return time.monotonic() - started

        elapsed = asyncio.run(burst())
        time.sleep(2.5)  # two flush intervals
        after = httpx.get(f"{service.url}/metrics").text
        flushes = metric(after, "counter_flush_events_count") - metric(before, "counter_flush_events_count")
        events = metric(after, "counter_flush_events_sum") - metric(before, "counter_flush_events_sum")
        seconds = metric(after, "counter_flush_seconds_sum") - metric(before, "counter_flush_seconds_sum")
        stored = sqlite3.connect(database).execute(
            "SELECT sum(e.hits) FROM scan_events e JOIN cards c ON c.id = e.card_id WHERE c.slug = 'bench-card'"
        ).fetchone()[0]
        print(f"3. a burst of {args.scans} scans ({args.concurrency} at a time) in {elapsed:.2f} s ({args.scans / elapsed:.0f} req/s)")
        print(f"   flushes: {flushes:.0f}, events written: {events:.0f} (hits stored in scan_events: {stored})")
        print(f"   events per flush: mean {events / flushes:.0f}; write transactions per scan: {flushes / args.scans:.4f} "
              f"(1.0 without buffering); mean flush time {ms(seconds / flushes)}")
    finally:
        api.close()
        if service.process and service.process.poll() is None:
            service.kill(signal.SIGTERM)
        sink.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
