"""An edge's counting pipeline as its own process, for multi-process tests: the real
Counters writing into the outbox file and the real Shipper loop, driven over stdin.

    python -m tests.support.edge_counting_process DATA_DIR PRIMARY_INTERNAL_URL EDGE_TOKEN COPY_DB SLUG

Commands, one a line; each answers one line on stdout:
  scan N    count N scans of the card, flush them into the outbox -> "durable TOTAL"
  status    -> "depth D failures F" (batches waiting, failed attempts in a row)
A test that kills this process with SIGKILL right after "durable TOTAL" knows exactly
which scans are in the file. The card is read from COPY_DB, as an edge reads its copy.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiosqlite

from app.cards.store import get_card_by_slug
from app.edge.outbox import EdgeOutbox, Shipper
from app.public.counters import Counters
from app.sqlite import sqlite3
from tests.support.app import PHONE_UA, make_settings


async def main(data_dir: str, primary_internal_url: str, token: str, copy: str, slug: str) -> None:
    conn = await aiosqlite.Connection(lambda: sqlite3.connect(f"file:{copy}?mode=ro", uri=True), iter_chunk_size=64)
    conn.row_factory = sqlite3.Row
    card = await get_card_by_slug(conn, slug)
    await conn.close()
    assert card is not None, slug
    settings = make_settings(
        Path(data_dir), role="edge", edge_token=token, primary_internal_url=primary_internal_url,
        primary_url="http://127.0.0.1:9", replica_url="file:///unused", fly_region="syd",
    )
    outbox = EdgeOutbox.for_settings(settings)
    await outbox.open()
    counters = Counters(outbox)
    shipper = Shipper(outbox, settings)
    shipper.start()
    total = 0
    while line := await asyncio.to_thread(sys.stdin.readline):
        command, *args = line.split()
        if command == "scan":
            for _ in range(int(args[0])):
                counters.scan(card, PHONE_UA, "https://edge.example/", None)
            await counters.flush()
            total += int(args[0])
            print(f"durable {total}", flush=True)
        elif command == "status":
            print(f"depth {outbox.depth} failures {shipper.failures}", flush=True)
    await shipper.stop()
    await outbox.close()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
