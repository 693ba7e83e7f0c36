"""Console pages with a big account: the cards list, a search and a card's page against `/health`.

    .venv/bin/python bench/console.py [--cards 10000] [--events 100000] [--requests 300]

One account owns `--cards` cards and `--events` scan events of the last 30 days (written
straight into the database of a running `qrcontact serve`); a logged-in client then asks
for each page `--requests` times, one request at a time, and prints p50 and p95 in ms and
p95 as a ratio to `/health` measured in the same run.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.db import isoformat  # noqa: E402
from app.sqlite import sqlite3  # noqa: E402
from tests.support.app import PASSWORD  # noqa: E402
from tests.support.service import Service  # noqa: E402


def fill(database: Path, user_id: str, cards: int, events: int) -> str:
    """Write the cards and scan events; returns a card id to open."""
    now = datetime.now(UTC)
    rng = random.Random(7)
    conn = sqlite3.connect(database, timeout=30)
    with conn:
        conn.executemany(
            """INSERT INTO cards (card_id, user_id, slug, full_name, organization, email, qr_error_correction, qr_size,
                created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'M', 512, ?, ?)""",
            [
                (uuid.uuid4().hex, user_id, f"person-{n}", f"Person {n}", f"Company {n % 300}", f"p{n}@example.com",
                 isoformat(now), isoformat(now))
                for n in range(cards)
            ],
        )
        ids = [row[0] for row in conn.execute("SELECT id FROM cards WHERE user_id = ?", (user_id,))]
        conn.executemany(
            "INSERT INTO scan_events (card_id, kind, occurred_at, device_class, hits) VALUES (?, ?, ?, 'mobile', 1)",
            [
                (rng.choice(ids), rng.choice(("scan", "view")), isoformat(now - timedelta(seconds=rng.randrange(30 * 86400))))
                for _ in range(events)
            ],
        )
        newest = conn.execute("SELECT card_id FROM cards WHERE user_id = ? ORDER BY id DESC LIMIT 1", (user_id,)).fetchone()[0]
    conn.close()
    return newest


def timings(client: httpx.Client, path: str, requests: int) -> list[float]:
    client.get(path)  # warm: caches, the first QR drawing
    spent = []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(path)
        spent.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return spent


def p95(values: list[float]) -> float:
    return sorted(values)[round(0.95 * (len(values) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    svc = Service(tmp / "data", REPLICA_URL="off", RATE_LIMIT_PER_MINUTE="1000000").start()
    try:
        email = "bench@example.com"
        registered = httpx.post(f"{svc.url}/v1/auth/register", json={"email": email, "password": PASSWORD, "marketingConsent": False})
        card_id = fill(tmp / "data" / "qrcontact.db", registered.json()["user"]["userId"], args.cards, args.events)
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            token = re.search(r'name="_csrf_token" value="([^"]+)"', client.get("/app/login").text).group(1)
            client.post("/app/login", data={"_csrf_token": token, "email": email, "password": PASSWORD})
            pages = {
                "/health": "/health",
                "cards list": "/app/cards",
                "cards list, page 200": "/app/cards?page=200",
                "search": "/app/cards?q=company%2042",
                "card page": f"/app/cards/{card_id}",
            }
            results = {name: timings(client, path, args.requests) for name, path in pages.items()}
    finally:
        svc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    health = p95(results["/health"])
    print(f"{args.cards} cards, {args.events} scan events, {args.requests} requests per page, one at a time")
    for name, spent in results.items():
        print(f"{name:22} p50 {statistics.median(spent):6.1f} ms   p95 {p95(spent):6.1f} ms   p95/health {p95(spent) / health:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
