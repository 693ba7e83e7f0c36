"""What 10,000 cached cards and codes hold in memory, line by line (tracemalloc, in process).

    .venv/bin/python bench/cache_memory.py [--cards 5000]     # about 3 minutes (tracemalloc is slow)

It builds the app on a temporary database, writes `--cards` cards straight into it, and
fetches each card's `/q/{slug}.png` once through the app (the card is read into the card
cache, its code drawn into the QR cache), with tracemalloc recording what stays allocated.
Printed: the bytes a card that stay, in all, and the source lines that allocated them.
bench/scanners.py gives the figure that counts (the process's RSS after 10,000 codes); this
one says where the Python objects among it come from. The rest of the RSS is outside
Python's allocator's view: SQLite's page caches, glibc's arenas, freed memory kept.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from litestar.testing import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.sqlite import sqlite3  # noqa: E402

WARM = 50  # cards fetched before recording: first-use allocations are not a card's


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=5000)
    parser.add_argument("--lines", type=int, default=15)
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="qrcontact-cache-memory-"))
    settings = Settings(
        data_dir=data, database_path=data / "qrcontact.db", jwt_secret="bench-" + "x" * 40,
        public_base_url="https://qr.example.test", scanner_rate_limit_per_minute=1_000_000_000,
    )
    with TestClient(create_app(settings)) as client:
        account = {"email": "bench@example.com", "password": "correct horse battery staple", "marketingConsent": False}
        assert client.post("/v1/auth/register", json=account).status_code == 201
        conn = sqlite3.connect(settings.database_path, timeout=30)
        try:
            (user_id,) = conn.execute("SELECT user_id FROM users").fetchone()
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
            with conn:
                conn.executemany(
                    """INSERT INTO cards (card_id, user_id, slug, full_name, organization, title, email, created_at, updated_at)
                    VALUES (?, ?, ?, ?, 'Example Events', 'Visitor', ?, ?, ?)""",
                    [(f"bench{i:027d}", user_id, f"guest-{i:05d}", f"Guest Number {i}", f"guest{i}@example.com", now, now)
                     for i in range(args.cards)],
                )
        finally:
            conn.close()
        for i in range(WARM):
            client.get(f"/q/guest-{i:05d}.png")
        gc.collect()
        tracemalloc.start(6)
        before = tracemalloc.take_snapshot()
        for i in range(WARM, args.cards):
            assert client.get(f"/q/guest-{i:05d}.png").status_code == 200
        gc.collect()
        after = tracemalloc.take_snapshot()
    cards = args.cards - WARM
    lines = after.compare_to(before, "lineno")
    total = sum(stat.size_diff for stat in lines)
    print(f"{cards:,} cards and codes cached: {total / 2**20:.1f} MiB of Python objects stay, {total / cards:,.0f} B a card")
    print(f"{'B a card':>9} {'objects':>8}  allocated at")
    for stat in lines[: args.lines]:
        print(f"{stat.size_diff / cards:9.0f} {stat.count_diff / cards:8.2f}  {stat.traceback[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
