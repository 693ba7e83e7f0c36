"""Webhook figures (SPEC §9), measured on the real service: event → delivery latency (p50,
p99, max) to a receiver on loopback, and N events a second for a bounded time all
delivered, each once (duplicates counted: delivery is at least once).

Run from the repository (needs the test extras: httpx):

    .venv/bin/python bench/webhooks.py                                  # 50 events/s for 10 s
    .venv/bin/python bench/webhooks.py --source scans --rate 1000 --seconds 60   # the SPEC's figure

It starts `qrcontact serve` in a temporary data folder with WEBHOOK_ALLOW_PRIVATE=true (the
receiver is on 127.0.0.1) and a threaded HTTP receiver, registers an account and a webhook,
produces events at the given rate, waits until every event has arrived (or --drain
seconds), prints the figures and stops the service by its process group. The events:
* `--source cards` (default): `card.created`, one card created through the API per event.
  API card creation tops out near 110 a second on a 2-core machine.
* `--source scans`: `card.scanned`. `--rate` cards are created first, then wrk scans them
  in turn (their redirects, a phone's user agent; bench/scan_cards.lua), each about 1.5
  times a second: the counter flush writes one event per card scanned that second, so
  `--rate` events a second whatever the API's speed. Needs wrk, as bench/scanners.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

QRCONTACT = str(Path(sys.executable).parent / "qrcontact")
HERE = Path(__file__).parent
SCAN_CONNECTIONS = 16
SCANS_PER_CARD = 1.5  # a second, on average: each card in every flush
PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """Records each message's webhook-id and the seconds from its event to its arrival."""

    def __init__(self) -> None:
        self.port = free_port()
        self.latencies: dict[str, float] = {}
        self.duplicates = 0
        self.scans = 0  # card.scanned events' scans, each message counted once
        self.last_arrival = 0.0  # time.time() of the last new message
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the sender reuses its connections

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                arrived = time.time()
                occurred = datetime.fromisoformat(json.loads(body)["timestamp"]).timestamp()
                with receiver.lock:
                    message_id = self.headers["webhook-id"]
                    if message_id in receiver.latencies:
                        receiver.duplicates += 1
                    else:
                        receiver.latencies[message_id] = arrived - occurred
                        receiver.last_arrival = arrived
                        receiver.scans += json.loads(body)["data"].get("scans", 0)
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def count(self) -> int:
        with self.lock:
            return len(self.latencies)


def start_service(data: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "DATA_DIR": str(data), "HOST": "127.0.0.1", "PORT": str(port), "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
           "WEBHOOK_ALLOW_PRIVATE": "true", "RATE_LIMIT_PER_MINUTE": "1000000", "LOG_LEVEL": "WARNING",
           # The scans come from one address: the per-client scanner limit would refuse most.
           "SCANNER_RATE_LIMIT_PER_MINUTE": "100000000"}
    process = subprocess.Popen([QRCONTACT, "serve"], env=env, stdout=open(data.parent / "serve.log", "w"),
                               stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"the service did not start: {(data.parent / 'serve.log').read_text()[-2000:]}")


async def drive(url: str, headers: dict, rate: int, seconds: float, concurrency: int) -> tuple[int, int]:
    """Create `rate` cards a second for `seconds`; returns (created, failed)."""
    created = failed = 0
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30, limits=limits) as client:

        async def one(n: int) -> None:
            nonlocal created, failed
            async with gate:
                response = await client.post("/v1/cards", json={"fullName": f"Bench {n}", "email": "bench@example.com"})
            if response.status_code == 201:
                created += 1
            else:
                failed += 1

        started = time.monotonic()
        tasks = []
        for n in range(int(rate * seconds)):
            # Paced against the clock: a slow second is not made up by a burst beyond the rate.
            delay = started + n / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
    return created, failed


def count_events(url: str, headers: dict, event: str) -> int:
    """How many events of this type the service recorded (the event API, page by page)."""
    count, cursor = 0, None
    while True:
        params = {"type": event, "limit": 100, **({"after": cursor} if cursor else {})}
        page = httpx.get(f"{url}/v1/events", params=params, headers=headers, timeout=30).json()
        count += len(page["items"])
        if not (cursor := page.get("nextCursor")):
            return count


PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


async def make_cards(url: str, headers: dict, count: int, concurrency: int) -> list[str]:
    """`count` cards through the API; returns their slugs."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(n: int) -> str:
            async with gate:
                card = {"fullName": f"Bench {n}", "email": "bench@example.com", "slug": f"bench-{n}"}
                response = await client.post("/v1/cards", json=card)
            assert response.status_code == 201, response.text
            return response.json()["slug"]

        return list(await asyncio.gather(*(one(n) for n in range(count))))


def scan_cards(url: str, slugs: list[str], seconds: float, folder: Path) -> str:
    """Scan the cards in turn for `seconds` with wrk (bench/scan_cards.lua), SCANS_PER_CARD
    times a second each on average, so that every card is scanned in every second's flush:
    one card.scanned event a card a second. Returns wrk's report."""
    slug_file = folder / "slugs.txt"
    slug_file.write_text("\n".join(slugs) + "\n")
    pause_ms = max(1, int(SCAN_CONNECTIONS * 1000 / (SCANS_PER_CARD * len(slugs))))
    command = ["wrk", "-t1", f"-c{SCAN_CONNECTIONS}", f"-d{math.ceil(seconds)}s", "--timeout", "10s",
               "-H", f"User-Agent: {PHONE}", "-s", str(HERE / "scan_cards.lua"), url, "--", str(slug_file), str(pause_ms)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise SystemExit(f"wrk failed: {result.stdout}{result.stderr}")
    return result.stdout


def scans_counted(url: str, headers: dict) -> int:
    """Every card's scanCount, added up (the API; it includes the counts not yet flushed)."""
    total, cursor = 0, None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{url}/v1/cards", params=params, headers=headers, timeout=30).json()
        total += sum(card["scanCount"] for card in page["items"])
        if not (cursor := page.get("nextCursor")):
            return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("cards", "scans"), default="cards", help="what makes the events (see above)")
    parser.add_argument("--rate", type=int, default=50, help="events a second (default 50)")
    parser.add_argument("--seconds", type=float, default=10, help="how long to produce them (default 10)")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight creating cards")
    parser.add_argument("--drain", type=float, default=120, help="seconds to wait for the last deliveries")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    receiver = Receiver()
    port = free_port()
    service = start_service(folder / "data", port)
    url = f"http://127.0.0.1:{port}"
    try:
        auth = httpx.post(f"{url}/v1/auth/register", json={"email": "bench@example.com", "password": PASSWORD,
                                                           "marketingConsent": False}).json()
        headers = {"Authorization": f"Bearer {auth['accessToken']}"}
        slugs = asyncio.run(make_cards(url, headers, args.rate, args.concurrency)) if args.source == "scans" else []
        event = "card.scanned" if args.source == "scans" else "card.created"
        hook = httpx.post(f"{url}/v1/webhooks", json={"url": f"http://127.0.0.1:{receiver.port}/hook", "events": [event]},
                          headers=headers)
        assert hook.status_code == 201, hook.text
        started = time.monotonic()
        if args.source == "scans":
            report = scan_cards(url, slugs, args.seconds, folder)
            produced_in, produced_at = time.monotonic() - started, time.time()
            # The events are done when the deliveries' scans add up to every scan counted
            # (read again after a second: wrk may leave scans in flight when it stops).
            time.sleep(1)
            expected = scans_counted(url, headers)
            deadline = time.monotonic() + args.drain
            while receiver.scans < expected and time.monotonic() < deadline:
                time.sleep(0.05)
            created, failed = count_events(url, headers, "card.scanned"), 0
            requests = next(line.strip() for line in report.splitlines() if "requests in" in line)
            print(f"scans (wrk): {requests}; {receiver.scans} of {expected} scans counted in the events delivered")
        else:
            created, failed = asyncio.run(drive(url, headers, args.rate, args.seconds, args.concurrency))
            produced_in, produced_at = time.monotonic() - started, time.time()
        deadline = time.monotonic() + args.drain
        while receiver.count < created and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies = sorted(receiver.latencies.values())
        print(f"events: {created} created in {produced_in:.1f} s ({created / produced_in:.0f}/s asked {args.rate}/s), "
              f"{failed} requests failed")
        print(f"delivered: {receiver.count} of {created} ({'all' if receiver.count >= created else 'MISSING some'}), "
              f"{receiver.duplicates} duplicates, the last {receiver.last_arrival - produced_at:.1f} s after the events stopped")
        if latencies:
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            print(f"event -> delivery: p50 {statistics.median(latencies) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
                  f"max {latencies[-1] * 1000:.0f} ms")
    finally:
        os.killpg(service.pid, signal.SIGTERM)
        service.wait(timeout=60)
        receiver.server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
