"""A primary restart (a deploy) with 100,000 cards: SIGTERM to serving again, and what
scanners and API clients at an edge see meanwhile (SPEC §11, "Deploys scanners never notice").

    .venv/bin/python bench/primary_restart.py [--cards 100000] [--scanners 4] [--before 3] [--after 3]

The primary's database is seeded directly through SQL on top of the real migrations
(one user, `--cards` cards in 100 transactions), then a primary (`qrcontact serve`, real
Litestream) and an edge (ROLE=edge) start on 127.0.0.1, sharing a replica on moto_server
as S3. Once the edge answers from its copy, `--scanners` threads scan random cards at the
edge as phones, and one API client polls GET /v1/cards at the edge and another at the
primary itself, every 50 ms. The primary gets SIGTERM and is started again on the same
data folder at once (as a deploy does). Measured: SIGTERM to the old process's exit (the
drain and Litestream's last sync), its exit to /health 200 again, the scans (all must
be answered: 0 failed), and the answers each API client got during the window.
"""

from __future__ import annotations

import argparse
import collections
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import moto_server  # noqa: E402

from app.db import migrate, utcnow  # noqa: E402
from app.sqlite import sqlite3  # noqa: E402
from tests.support.app import PHONE_UA  # noqa: E402
from tests.support.edges import TOKEN, edge_env, replica_url, served_by_the_edge  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.s3 import S3_ENV, make_bucket  # noqa: E402
from tests.support.service import QRCONTACT, Service, sign_up  # noqa: E402
from tests.support.waiting import wait_until  # noqa: E402

SHARED = {"JWT_SECRET": secrets.token_urlsafe(32), "RATE_LIMIT_PER_MINUTE": "1000000",
          "SCANNER_RATE_LIMIT_PER_MINUTE": "100000000"}


MILESTONES = ("migrations applied", "litestream version", "Started server process", "Application startup complete",
              "snapshot complete", "Finished server process")


def seed(database: Path, cards: int) -> None:
    """The real migrations, then one user and `cards` cards written straight into the file."""
    database.parent.mkdir(parents=True, exist_ok=True)
    migrate(database)
    conn = sqlite3.connect(database, isolation_level=None)
    now = utcnow()
    conn.execute("INSERT INTO users (user_id, email, password_hash, is_admin, created_at) "
                 "VALUES ('u1', 'seed@example.com', 'x', 1, ?)", (now,))
    batch = max(1, cards // 100)
    for start in range(0, cards, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            """INSERT INTO cards (card_id, user_id, slug, full_name, organization, title, email, phone, website,
               created_at, updated_at) VALUES (?, 'u1', ?, ?, 'Example Organization', 'Engineer', ?, '+1 555 0100',
               'https://example.com/people', ?, ?)""",
            [(uuid.uuid4().hex, f"card-{i:07d}", f"Person Number {i}", f"person{i}@example.com", now, now)
             for i in range(start, min(start + batch, cards))],
        )
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def start(svc: Service, timeout: float = 300) -> float:
    """Start `qrcontact serve` and return the seconds until /health answers 200."""
    began = time.monotonic()
    svc.process = subprocess.Popen([QRCONTACT, "serve"], env=svc.env, stdout=open(svc.log, "a"),
                                   stderr=subprocess.STDOUT, start_new_session=True)
    wait_until(lambda: healthy(svc.url) or svc.process.poll() is not None, timeout=timeout, every=0.01,
               what=f"{svc.url} to serve")
    assert svc.process.poll() is None, svc.log.read_text()[-3000:]
    return time.monotonic() - began


class Scanners:
    def __init__(self, url: str, cards: int, threads: int) -> None:
        self.url, self.cards = url, cards
        self.ok = 0
        self.failed: list[tuple[float, object]] = []
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(threads)]

    def run(self) -> None:
        rng = random.Random()  # noqa: S311 - which card to scan
        with httpx.Client(timeout=10, headers={"User-Agent": PHONE_UA}) as client:
            while not self.stopping.is_set():
                slug = f"card-{rng.randrange(self.cards):07d}"
                try:
                    r = client.get(f"{self.url}/c/{slug}")
                    if r.status_code == 302:
                        self.ok += 1
                    else:
                        self.failed.append((time.monotonic(), r.status_code))
                except httpx.HTTPError as exc:
                    self.failed.append((time.monotonic(), repr(exc)))


class ApiClient(threading.Thread):
    """GET /v1/cards every 50 ms; every answer (status, Retry-After) or error, with its time."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.seen: list[tuple[float, str]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10, headers=self.headers) as client:
            while not self.stopping.is_set():
                try:
                    r = client.get(f"{self.url}/v1/cards?limit=1")
                    what = f"{r.status_code}" + (f" Retry-After: {r.headers['retry-after']}" if "retry-after" in r.headers else "")
                except httpx.ConnectError:
                    what = "connection refused"
                except httpx.HTTPError as exc:
                    what = type(exc).__name__
                self.seen.append((time.monotonic(), what))
                self.stopping.wait(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--scanners", type=int, default=4)
    parser.add_argument("--before", type=float, default=3.0, help="seconds of load before the SIGTERM")
    parser.add_argument("--after", type=float, default=3.0, help="seconds of load after serving again")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with moto_server(root / "moto.log") as endpoint:
            make_bucket(endpoint, "restart")
            replica = replica_url(endpoint, "restart")
            internal = free_port()
            primary = Service(root / "primary", ROLE="primary", EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal),
                              REPLICA_URL=replica, **S3_ENV, **SHARED)
            began = time.monotonic()
            seed(primary.data_dir / "qrcontact.db", args.cards)
            size = (primary.data_dir / "qrcontact.db").stat().st_size
            print(f"seeded {args.cards} cards in {time.monotonic() - began:.1f} s ({size / 1e6:.0f} MB)", flush=True)
            edge = Service(root / "edge", **edge_env(primary, f"http://127.0.0.1:{internal}", replica), **SHARED)
            try:
                print(f"primary's first start (Litestream uploads the whole file): {start(primary):.1f} s", flush=True)
                headers = sign_up(primary, "restart@example.com")
                print(f"edge's first start (restores its copy): {start(edge):.1f} s", flush=True)
                wait_until(lambda: served_by_the_edge(httpx.head(f"{edge.url}/c/card-0000001")), timeout=60,
                           what="the edge to answer from its copy")

                scanners = Scanners(edge.url, args.cards, args.scanners)
                at_edge, at_primary = ApiClient(edge.url, headers), ApiClient(primary.url, headers)
                for thread in [*scanners.threads, at_edge, at_primary]:
                    thread.start()
                time.sleep(args.before)  # load before the deploy (a bench, not a test: it waits on purpose)
                ok_before = scanners.ok
                term = time.monotonic()
                primary.process.send_signal(signal.SIGTERM)
                primary.process.wait(timeout=120)
                exited = time.monotonic()
                serving_after = start(primary)
                served = time.monotonic()
                time.sleep(args.after)
                # Where the start's time went: the restarted primary's milestones in its log.
                milestones = [line[:160] for line in primary.log.read_text().splitlines()[-60:]
                              if any(m in line for m in MILESTONES)]
                scanners.stopping.set()
                for thread in [*scanners.threads, at_edge, at_primary]:
                    if thread in (at_edge, at_primary):
                        thread.stopping.set()
                    thread.join()
            finally:
                for svc in (edge, primary):
                    if svc.process is not None and svc.process.poll() is None:
                        svc.stop(signal.SIGKILL)

    window = served - term
    print(f"restart: SIGTERM to exit {exited - term:.2f} s (drain, Litestream's last sync), "
          f"exit to /health 200 {serving_after:.2f} s; SIGTERM to serving again {window:.2f} s")
    print(f"scans at the edge: {scanners.ok} answered ({scanners.ok - ok_before} after the SIGTERM), "
          f"{len(scanners.failed)} failed {scanners.failed[:5]}")
    for name, client in (("at the edge", at_edge), ("at the primary", at_primary)):
        during = collections.Counter(what for at, what in client.seen if term <= at <= served)
        print(f"API client {name} during the window: {dict(during)}")
    print("the restarted primary's milestones:\n  " + "\n  ".join(milestones))
    return 1 if scanners.failed else 0


if __name__ == "__main__":
    sys.exit(main())
