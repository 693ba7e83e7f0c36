"""How long the primary's counter flush takes for many cards at once, card.scanned events
included (SPEC §9: one event per card per flush). A real temp database; no server.

    python bench/counter_flush.py [cards] [rounds]

Each round scans every card three times (two device classes, with and without a country)
and views it once, then times `Counters.flush`: the median, min and max over the rounds.
Measured on the 2-core dev machine (busy with other work, so noisy), 1,000 cards: 54-62 ms
before card.scanned (min of each run), 73-80 ms with it; writing its 1,000 events one
statement each took 208 ms, hence Tx.emit_many. The JSON log line of each event adds about
10 ms more at LOG_LEVEL=INFO.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.accounts.users import insert_user
from app.cards.store import CARD_COLUMNS, card_from_row
from app.db import Database
from app.public.counters import Counters, DatabaseSink

AGENTS = ["Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148",
          "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120"]


async def main(n_cards: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        db = Database(Path(folder) / "bench.db")
        await db.open()
        async with db.write() as tx:
            user = await insert_user(tx.conn, "bench@example.com", "not-a-hash", False, tx.now)
            await tx.conn.executemany(
                """INSERT INTO cards (card_id, user_id, slug, created_at, updated_at, full_name, email)
                VALUES (?, ?, ?, ?, ?, ?, ?)""",
                [(f"{i:032x}", user.user_id, f"card-{i}", tx.now_text, tx.now_text, f"Card {i}", f"c{i}@example.com")
                 for i in range(n_cards)],
            )
        async with db.read() as conn:
            cards = [card_from_row(row) for row in await (await conn.execute(f"SELECT {CARD_COLUMNS} FROM cards")).fetchall()]
        counters = Counters(DatabaseSink(db))
        times = []
        for _ in range(rounds):
            for card in cards:
                for j in range(3):
                    counters.scan(card, AGENTS[j % 2], "https://example.com/", "GB" if j else None, "qr")
                counters.view(card, AGENTS[0], None, None, "link")
            started = time.perf_counter()
            await counters.flush()
            times.append((time.perf_counter() - started) * 1000)
        async with db.read() as conn:
            (events,) = await (await conn.execute("SELECT count(*) FROM events WHERE type = 'card.scanned'")).fetchone()
        await db.close()
    print(f"flush of {n_cards} cards: median {statistics.median(times):.1f} ms, min {min(times):.1f}, "
          f"max {max(times):.1f} over {rounds} rounds; card.scanned events: {events}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000, int(sys.argv[2]) if len(sys.argv) > 2 else 7))
