"""Scans counted at edges, applied at the primary: batch sizes and how fast the primary applies them.

    .venv/bin/python bench/scan_batches.py [--edges 3] [--seconds 200] [--cards 20] [--replica off]

A real primary (`qrcontact serve` with EDGE_TOKEN, so its internal port is up) and, per
edge, the real Counters writing into an outbox file (app/edge/outbox.py). Each edge
counts `--seconds` seconds' worth of a typical crowd (every card scanned and viewed from
a few device classes and referrers), one flush (one batch) per simulated second; then
all edges ship their backlogs to the primary at once, as after an outage. Reported: the
bytes of a typical and of a full batch (MAX_BATCH_ROWS rows), the batches per second the
primary applies, and a check that every scan arrived exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.cards.store import get_card_by_slug  # noqa: E402
from app.edge.outbox import EdgeOutbox, Shipper  # noqa: E402
from app.edge.scan_batches import MAX_BATCH_ROWS  # noqa: E402
from app.public.counters import Counters  # noqa: E402
from app.sqlite import sqlite3  # noqa: E402
from bench._common import free_port  # noqa: E402
from tests.support.app import PASSWORD, make_settings  # noqa: E402
from tests.support.load import LOAD_ENV  # noqa: E402
from tests.support.service import Service  # noqa: E402

TOKEN = "bench-edge-token-" + "b" * 32
AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/130.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36",
]
REFERRERS = [None, "https://www.linkedin.com/feed/", "https://news.example.com/story"]


def primary_cards(svc: Service, count: int) -> list[str]:
    email = "bench-edges@example.com"
    auth = httpx.post(f"{svc.url}/v1/auth/register", json={"email": email, "password": PASSWORD, "marketingConsent": False}).json()
    headers = {"Authorization": f"Bearer {auth['accessToken']}"}
    slugs = []
    for n in range(count):
        response = httpx.post(f"{svc.url}/v1/cards", json={"fullName": f"Card {n}", "email": email, "slug": f"edge-bench-{n}"},
                              headers=headers)
        response.raise_for_status()
        slugs.append(f"edge-bench-{n}")
    return slugs


async def run(edges: int, seconds: int, slugs: list[str], svc: Service, internal_url: str, tmp: Path) -> dict:
    conn = await _aio(svc.data_dir / "qrcontact.db")
    cards = [await get_card_by_slug(conn, slug) for slug in slugs]
    await conn.close()
    pipelines = []
    scans = views = 0
    for e in range(edges):
        settings = make_settings(tmp / f"edge{e}", role="edge", edge_token=TOKEN, primary_internal_url=internal_url,
                                 primary_url=svc.url, replica_url="file:///unused", fly_region=f"e{e}")
        outbox = EdgeOutbox.for_settings(settings)
        await outbox.open()
        counters = Counters(outbox)
        for _ in range(seconds):
            for card in cards:
                for agent in AGENTS:
                    for referrer in REFERRERS:
                        counters.scan(card, agent, referrer, None)
                        scans += 1
                counters.view(card, AGENTS[0], None, None)
                views += 1
            await counters.flush()
        pipelines.append((outbox, Shipper(outbox, settings)))
    sizes = [len(body) for outbox, _ in pipelines for body in await bodies(outbox)]
    waiting = sum(outbox.depth for outbox, _ in pipelines)
    started = time.perf_counter()
    shipped = await asyncio.gather(*(shipper.ship_waiting() for _, shipper in pipelines))
    elapsed = time.perf_counter() - started

    # One full batch: MAX_BATCH_ROWS distinct event rows with long referrer hosts.
    outbox, shipper = pipelines[0]
    counters = Counters(outbox)
    for n in range(MAX_BATCH_ROWS):
        counters.scan(cards[n % len(cards)], AGENTS[0], f"https://{'r' * 40}{n}.{'x' * 60}.example.com/", None)
    await counters.flush()
    (full,) = [len(body) for body in await bodies(outbox)]
    started = time.perf_counter()
    await shipper.ship_waiting()
    full_apply = time.perf_counter() - started
    scans += MAX_BATCH_ROWS
    for outbox, shipper in pipelines:
        await shipper.stop(last_try=0)
        await outbox.close()

    primary = sqlite3.connect(svc.data_dir / "qrcontact.db")
    counted = primary.execute("SELECT sum(scan_count), sum(view_count) FROM cards").fetchone()
    hits = primary.execute("SELECT sum(hits) FROM scan_events").fetchone()[0]
    primary.close()
    return {
        "batches": waiting, "shipped": sum(shipped), "seconds": elapsed, "sizes": sizes, "full": full, "full_apply": full_apply,
        "exactly_once": tuple(counted) == (scans, views) and hits == scans + views,
        "counted": tuple(counted), "expected": (scans, views),
    }


async def bodies(outbox: EdgeOutbox) -> list[bytes]:
    """The batches waiting in an outbox file, read as an operator would (a second connection)."""
    conn = sqlite3.connect(f"file:{outbox.path}?mode=ro", uri=True)
    try:
        return [bytes(body) for (body,) in conn.execute("SELECT body FROM batches ORDER BY seq")]
    finally:
        conn.close()


async def _aio(path: Path):
    import aiosqlite

    conn = await aiosqlite.Connection(lambda: sqlite3.connect(f"file:{path}?mode=ro", uri=True), iter_chunk_size=64)
    conn.row_factory = sqlite3.Row
    return conn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=200, help="simulated seconds (one batch each) per edge")
    parser.add_argument("--cards", type=int, default=20)
    parser.add_argument("--replica", default="off", help="REPLICA_URL for the primary (default off)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    internal_port = free_port()
    svc = Service(tmp / "data", **LOAD_ENV, REPLICA_URL=args.replica, EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal_port)).start()
    try:
        slugs = primary_cards(svc, args.cards)
        result = asyncio.run(run(args.edges, args.seconds, slugs, svc, f"http://127.0.0.1:{internal_port}", tmp))
    finally:
        svc.stop()
    sizes = result["sizes"]
    print(f"typical batch ({args.cards} cards x {len(AGENTS) * len(REFERRERS)} scan kinds + 1 view each): "
          f"median {statistics.median(sizes):.0f} bytes, max {max(sizes)} bytes")
    print(f"full batch ({MAX_BATCH_ROWS} event rows, 100-character referrer hosts): {result['full']} bytes, "
          f"applied in {result['full_apply'] * 1000:.0f} ms")
    print(f"{result['batches']} batches from {args.edges} edges shipped at once: {result['seconds']:.2f} s, "
          f"{result['batches'] / result['seconds']:.0f} batches/s applied by the primary")
    print(f"exactly once: {result['exactly_once']} (counted {result['counted']}, expected {result['expected']})")


if __name__ == "__main__":
    main()
