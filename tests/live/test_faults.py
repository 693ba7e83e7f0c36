"""Faults against the real service process: kill -9 under write load, many writers at
once, and a full disk.

The long versions (more kill cycles, more writers, latency figures) are in bench/.
"""

from __future__ import annotations

import asyncio
import errno
import os
import random
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from app.sqlite import sqlite3
from tests.support.app import assert_problem
from tests.support.load import LOAD_ENV, Acknowledged, concurrent_writes, integrity, session, sigkill_cycle
from tests.support.service import Service

# --- kill -9 under concurrent writes ------------------------------------------------------


def test_sigkill_under_write_load_loses_no_acknowledged_write(tmp_path):
    seed = random.randrange(2**32)
    rng, acked, data = random.Random(seed), Acknowledged(), tmp_path / "data"
    for cycle in range(3):
        seen = sigkill_cycle(data, cycle, acked, rng)
        print(
            f"cycle {cycle}: killed after {seen['moment']:.2f} s, {seen['acknowledged']} writes acknowledged so far, "
            f"deletes committed but cut off before their answer: {seen['unanswered_deletes_committed']}"
        )
        assert seen["integrity"] == "ok", (seed, seen)
        assert not seen["lost"], f"seed {seed}: acknowledged writes lost: {sorted(seen['lost'])[:10]}"
        assert not seen["resurrected"], f"seed {seed}: deletes undone or half kept: {sorted(seen['resurrected'])[:10]}"
    assert len(acked.created) > 0, "the load never got a write in"
    # And the service comes back on the killed files and serves every acknowledged card.
    svc = Service(data, **LOAD_ENV).start()
    try:
        headers = session(svc.url, "killer@example.com")
        slugs, cursor = set(), None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = httpx.get(f"{svc.url}/v1/cards", params=params, headers=headers, timeout=30).json()
            slugs |= {card["slug"] for card in page["items"]}
            if not (cursor := page["nextCursor"]):
                break
        assert set(acked.created) - acked.deleted <= slugs
        assert not slugs & acked.deleted
    finally:
        svc.stop(signal.SIGKILL)


# --- 50 writers at once -------------------------------------------------------------------


def test_fifty_concurrent_writers_get_no_5xx_and_no_lock_errors(tmp_path):
    svc = Service(tmp_path / "data", **LOAD_ENV).start()
    try:
        results = asyncio.run(concurrent_writes(svc.url, writers=50, writes_each=6))
    finally:
        svc.stop()
    statuses = [status for status, _, _ in results]
    assert len(statuses) == 300
    assert [body for status, _, body in results if status >= 500] == []
    assert set(statuses) <= {200, 201}, sorted(set(statuses))
    assert "database is locked" not in svc.log.read_text()
    conn = sqlite3.connect(tmp_path / "data" / "qrcontact.db")
    assert conn.execute("SELECT count(*) FROM cards").fetchone()[0] == 200
    conn.close()


# --- a full disk --------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 4 MiB tmpfs: a disk that really fills up (ENOSPC). Needs root to mount."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the disk is full; returns it."""
    filler = directory / "filler"
    chunk = os.urandom(64 * 1024)
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        for size in (4096, 512, 1):  # the last scraps
            try:
                while True:
                    f.write(chunk[:size])
            except OSError:
                pass
    return filler


def test_a_full_disk_refuses_writes_with_503_and_keeps_serving_reads(small_disk, tmp_path):
    # Replication off: Litestream would share the small disk and add its own noise; the
    # database's behaviour is the same either way.
    svc = Service(small_disk, REPLICA_URL="off", **LOAD_ENV).start()
    try:
        session(svc.url, "admin@example.com")  # the first account, the admin: the next one may delete itself
        url, headers = svc.url, session(svc.url, "full@example.com")
        kept = httpx.post(f"{url}/v1/cards", json={"fullName": "Kept", "email": "k@example.com", "slug": "kept-card"}, headers=headers)
        assert kept.status_code == 201
        filler = fill(small_disk)
        # Freed WAL pages can still take a few writes; keep writing until the disk says no.
        acknowledged, refused = [], None
        for n in range(500):
            slug = f"full-{n}"
            response = httpx.post(f"{url}/v1/cards", json={"fullName": "F", "email": "f@example.com", "slug": slug}, headers=headers)
            assert response.status_code in (201, 503), response.text
            if response.status_code == 503:
                refused = (slug, response)
                break
            acknowledged.append(slug)
        assert refused is not None, "the disk never filled"
        slug, response = refused
        problem = assert_problem(response, 503)
        assert "full" in problem["detail"]
        assert int(response.headers["retry-after"]) > 0
        # A write of several statements (delete the account: cards, slugs retired, user)
        # is refused whole.
        assert_problem(httpx.delete(f"{url}/v1/me", headers=headers), 503)
        # Reads keep working.
        assert httpx.get(f"{url}/health").status_code == 200
        assert httpx.get(f"{url}/v1/me", headers=headers).status_code == 200
        listed = httpx.get(f"{url}/v1/cards", params={"limit": 100}, headers=headers)
        assert listed.status_code == 200
        assert httpx.get(f"{url}/p/kept-card").status_code == 200
        # Space comes back, and so do writes: the writer is not stuck in a dead transaction.
        filler.unlink()
        after = {"fullName": "After", "email": "a@example.com", "slug": "after-full"}
        assert httpx.post(f"{url}/v1/cards", json=after, headers=headers).status_code == 201
    finally:
        svc.stop(signal.SIGKILL)
    database = small_disk / "qrcontact.db"
    assert integrity(database) == "ok"
    conn = sqlite3.connect(database)
    stored = {row[0] for row in conn.execute("SELECT slug FROM cards")}
    assert {"kept-card", "after-full", *acknowledged} <= stored
    assert slug not in stored, "the refused write was kept"
    assert conn.execute("SELECT count(*) FROM users WHERE email = ?", ("full@example.com",)).fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM retired_slugs").fetchone()[0] == 0, "half of the account delete was kept"
    conn.close()


