"""The console's stats, invitations and API keys pages with a big account, against `/health`.

    .venv/bin/python bench/console_stats.py [--cards 10000] [--events 100000] [--busy 0.5] [--requests 200]

One account owns `--cards` cards and `--events` scan events of the last year, a `--busy`
share of them on one card (once the worst stats page, when its four groupings read them all), the
rest spread over the other cards, and 1,000 invitations. A logged-in client asks for each
page `--requests` times, one request at a time, against a running `qrcontact serve`, and
prints p50 and p95 in ms and p95 as a ratio to `/health` in the same run.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import sys
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.db import isoformat  # noqa: E402
from app.sqlite import sqlite3  # noqa: E402
from bench.console import p95, timings  # noqa: E402
from tests.support.app import PASSWORD  # noqa: E402
from tests.support.service import Service  # noqa: E402

DEVICES = ("mobile", "desktop", "tablet", "other")
COUNTRIES = ("GB", "US", "DE", "FR", "NL", None)
REFERRERS = ("linkedin.com", "google.com", "example.org", None, None)


def fill(database: Path, user_id: str, cards: int, events: int, busy: float) -> str:
    """Write the cards, scan events and invitations; returns the busy card's id."""
    now = datetime.now(UTC)
    rng = random.Random(7)
    conn = sqlite3.connect(database, timeout=30)
    with conn:
        conn.executemany(
            """INSERT INTO cards (card_id, user_id, slug, full_name, email, qr_error_correction, qr_size, created_at, updated_at)
            VALUES (?, ?, ?, ?, ?, 'M', 512, ?, ?)""",
            [(uuid.uuid4().hex, user_id, f"person-{n}", f"Person {n}", f"p{n}@example.com", isoformat(now), isoformat(now))
             for n in range(cards)],
        )
        ids = [row[0] for row in conn.execute("SELECT id FROM cards WHERE user_id = ? ORDER BY id", (user_id,))]
        hot = ids[-1]
        conn.executemany(
            """INSERT INTO scan_events (card_id, kind, occurred_at, device_class, referrer_host, country, hits)
            VALUES (?, ?, ?, ?, ?, ?, 1)""",
            [
                (hot if rng.random() < busy else rng.choice(ids), rng.choice(("scan", "view")),
                 isoformat(now - timedelta(seconds=rng.randrange(365 * 86400))), rng.choice(DEVICES), rng.choice(REFERRERS),
                 rng.choice(COUNTRIES))
                for _ in range(events)
            ],
        )
        conn.executemany(
            """INSERT INTO invitations (invitation_id, token_hash, card_id, sender_id, channel, recipient, recipient_key, day,
                status, created_at, sent_at) VALUES (?, ?, ?, ?, 'email', ?, ?, ?, 'sent', ?, ?)""",
            [
                (uuid.uuid4().hex, uuid.uuid4().hex, rng.choice(ids), user_id, f"r{n}@example.com", f"r{n}@example.com",
                 (now - timedelta(days=n % 300)).date().isoformat(), isoformat(now), isoformat(now))
                for n in range(1000)
            ],
        )
        busy_card = conn.execute("SELECT card_id FROM cards WHERE id = ?", (hot,)).fetchone()[0]
    conn.close()
    return busy_card


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--busy", type=float, default=0.5)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    svc = Service(tmp / "data", REPLICA_URL="off", RATE_LIMIT_PER_MINUTE="1000000").start()
    try:
        email = "bench@example.com"
        registered = httpx.post(f"{svc.url}/v1/auth/register", json={"email": email, "password": PASSWORD, "marketingConsent": False})
        card_id = fill(tmp / "data" / "qrcontact.db", registered.json()["user"]["userId"], args.cards, args.events, args.busy)
        with httpx.Client(base_url=svc.url, timeout=30) as client:
            token = re.search(r'name="_csrf_token" value="([^"]+)"', client.get("/app/login").text).group(1)
            client.post("/app/login", data={"_csrf_token": token, "email": email, "password": PASSWORD})
            pages = {
                "/health": "/health",
                "stats, 30 days": f"/app/cards/{card_id}/stats",
                "stats, 1 year": f"/app/cards/{card_id}/stats?days=365",
                "stats CSV, 1 year": f"/app/cards/{card_id}/stats.csv?days=365",
                "invitations": "/app/invitations",
                "card's invitations": f"/app/cards/{card_id}/invitations",
                "API keys": "/app/account/keys",
            }
            results = {name: timings(client, path, args.requests) for name, path in pages.items()}
    finally:
        svc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    health = p95(results["/health"])
    busy = round(args.events * args.busy + args.events * (1 - args.busy) / args.cards)
    print(f"{args.cards} cards, {args.events} scan events (about {busy} on the card), {args.requests} requests per page, one at a time")
    for name, spent in results.items():
        print(f"{name:20} p50 {statistics.median(spent):6.1f} ms   p95 {p95(spent):6.1f} ms   p95/health {p95(spent) / health:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
