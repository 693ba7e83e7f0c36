"""Write load against a real `qrcontact serve`: writers that remember what was acknowledged,
kill -9 cycles and many writers at once (the tests' short runs, bench/'s long ones)."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from app.sqlite import sqlite3
from tests.support.app import PASSWORD
from tests.support.service import Service

LOAD_ENV = {"RATE_LIMIT_PER_MINUTE": "1000000"}


def integrity(database: Path) -> str:
    conn = sqlite3.connect(database)
    try:
        return "\n".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def session(url: str, email: str) -> dict:
    """Bearer headers for `email`, registering it the first time."""
    body = {"email": email, "password": PASSWORD, "marketingConsent": False}
    response = httpx.post(f"{url}/v1/auth/register", json=body, timeout=30)
    if response.status_code == 409:
        response = httpx.post(f"{url}/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=30)
    assert response.status_code in (200, 201), response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


@dataclass
class Acknowledged:
    """What the service said it stored (201) or deleted (204), across kill cycles, and the
    deletes sent but not yet answered: the kill may land after one's commit and before its
    204, so each is settled from the file after the kill (see `sigkill_cycle`)."""

    created: dict[str, str] = field(default_factory=dict)  # slug -> full name
    deleted: set[str] = field(default_factory=set)
    deleting: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def writer(url: str, headers: dict, tag: str, acked: Acknowledged, stop: threading.Event) -> None:
    """Create cards (and delete every fourth) until the service dies or `stop` is set."""
    mine: list[tuple[str, str]] = []
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        for n in range(100_000):
            if stop.is_set():
                return
            slug, name = f"{tag}-{n}", f"Card {tag} {n}"
            try:
                response = client.post("/v1/cards", json={"fullName": name, "email": "k@example.com", "slug": slug})
                if response.status_code == 201:
                    with acked.lock:
                        acked.created[slug] = name
                    mine.append((slug, response.json()["cardId"]))
                if n % 4 == 3 and mine:
                    gone, card_id = mine.pop(0)
                    with acked.lock:
                        acked.deleting.add(gone)
                    status = client.delete(f"/v1/cards/{card_id}").status_code
                    with acked.lock:
                        acked.deleting.discard(gone)
                        if status == 204:
                            acked.deleted.add(gone)
            except httpx.HTTPError:
                return  # the service is gone: whatever was in flight was never acknowledged


def sigkill_cycle(data_dir: Path, cycle: int, acked: Acknowledged, rng: random.Random, writers: int = 6) -> dict:
    """Start the service, write from `writers` threads, kill -9 the whole process group at a
    random moment, and check the database file. Returns what the cycle saw."""
    svc = Service(data_dir, **LOAD_ENV).start()
    headers = session(svc.url, "killer@example.com")
    stop = threading.Event()
    threads = [
        threading.Thread(target=writer, args=(svc.url, headers, f"c{cycle}w{i}", acked, stop), daemon=True)
        for i in range(writers)
    ]
    for thread in threads:
        thread.start()
    moment = rng.uniform(0.2, 2.0)
    time.sleep(moment)
    svc.stop(signal.SIGKILL)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    database = data_dir / "qrcontact.db"
    check = integrity(database)
    conn = sqlite3.connect(database)
    try:
        stored = dict(conn.execute("SELECT slug, full_name FROM cards"))
        retired = {slug for (slug,) in conn.execute("SELECT slug FROM retired_slugs")}
    finally:
        conn.close()
    with acked.lock:
        # A delete the kill cut off was committed or not: the file says which. One that
        # was is held to what an acknowledged one is from now on; one that was not leaves
        # its card an acknowledged create, which must still be there.
        committed = {slug for slug in acked.deleting if slug not in stored}
        acked.deleted |= committed
        acked.deleting.clear()
        lost = {slug for slug in acked.created if slug not in acked.deleted and stored.get(slug) != acked.created[slug]}
        # A delete is the card gone and its slug retired, in one transaction.
        resurrected = {slug for slug in acked.deleted if slug in stored or slug not in retired}
        total = len(acked.created)
    return {
        "moment": moment, "integrity": check, "lost": lost, "resurrected": resurrected, "acknowledged": total,
        "unanswered_deletes_committed": sorted(committed),
    }


async def concurrent_writes(url: str, writers: int, writes_each: int) -> list[tuple[int, float, str]]:
    """`writers` accounts writing at once; returns (status, seconds, body if 5xx) per write."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def account(i: int) -> dict:
            body = {"email": f"writer{i}@example.com", "password": PASSWORD, "marketingConsent": False}
            response = await client.post("/v1/auth/register", json=body)
            if response.status_code == 409:
                response = await client.post("/v1/auth/login", json={"email": body["email"], "password": PASSWORD})
            return {"Authorization": f"Bearer {response.json()['accessToken']}"}

        headers = await asyncio.gather(*(account(i) for i in range(writers)))
        start = asyncio.Event()

        async def write(i: int) -> list[tuple[int, float, str]]:
            await start.wait()
            results = []
            for n in range(writes_each):
                began = time.perf_counter()
                if n % 3 == 2:
                    response = await client.patch("/v1/me", json={"marketingConsent": n % 2 == 0}, headers=headers[i])
                else:
                    response = await client.post(
                        "/v1/cards", json={"fullName": f"W{i} {n}", "email": "w@example.com"}, headers=headers[i]
                    )
                results.append((response.status_code, time.perf_counter() - began, response.text if response.status_code >= 500 else ""))
            return results

        tasks = [asyncio.create_task(write(i)) for i in range(writers)]
        start.set()
        return [result for task in tasks for result in await task]
