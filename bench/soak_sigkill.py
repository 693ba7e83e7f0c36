"""Soak: kill -9 `qrcontact serve` again and again under concurrent writes.

    .venv/bin/python bench/soak_sigkill.py --cycles 30 [--writers 6] [--seed N]

Each cycle starts the service on the same data folder (with Litestream, as in
production), lets writers create and delete cards, kills the whole process group at a
random moment, then checks PRAGMA integrity_check and that every acknowledged write is
in the file (and every acknowledged delete is not). Exits 1 on any loss.

    .venv/bin/python bench/soak_sigkill.py --lost-window 20

The lost window instead: each cycle starts the service on a new data folder with a
folder replica, writes cards one after another, kills the process group 2-4 s in, loses
the volume, restores from the replica, and measures how long before the kill the oldest
acknowledged write missing from the restore was acknowledged (0 when none is missing).
That is what litestream.yml's bound promises (monitor-interval + sync-interval + one
upload).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.sqlite import sqlite3  # noqa: E402
from tests.support.load import LOAD_ENV, Acknowledged, session, sigkill_cycle  # noqa: E402
from tests.support.service import QRCONTACT, Service  # noqa: E402


def lost_window_cycle(root: Path, cycle: int, rng: random.Random) -> tuple[float, int, int]:
    """One kill -9 with a lost volume; returns (seconds lost before the kill, writes acknowledged, writes lost)."""
    data, replica = root / f"c{cycle}" / "data", root / f"c{cycle}" / "replica"
    env = {**LOAD_ENV, "REPLICA_URL": f"file://{replica}"}
    data.mkdir(parents=True)
    svc = Service(data, **env).start()
    headers = session(svc.url, "lost@example.com")
    acknowledged: dict[str, float] = {}
    stop = threading.Event()

    def write() -> None:
        with httpx.Client(base_url=svc.url, headers=headers, timeout=10) as client:
            for n in range(1_000_000):
                if stop.is_set():
                    return
                try:
                    response = client.post("/v1/cards", json={"fullName": "Lost?", "email": "l@example.com", "slug": f"w-{n}"})
                except httpx.HTTPError:
                    return
                if response.status_code == 201:
                    acknowledged[f"w-{n}"] = time.monotonic()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    time.sleep(rng.uniform(2.0, 4.0))  # a random moment to kill at
    killed_at = time.monotonic()
    svc.stop(signal.SIGKILL)
    stop.set()
    thread.join(30)
    shutil.rmtree(data)
    restored = subprocess.run(
        [QRCONTACT, "restore"], env={**os.environ, "DATA_DIR": str(data), **env}, capture_output=True, text=True, timeout=120
    )
    assert restored.returncode == 0, restored.stderr
    conn = sqlite3.connect(data / "qrcontact.db")
    try:
        on_replica = {slug for (slug,) in conn.execute("SELECT slug FROM cards")}
    finally:
        conn.close()
    lost = [at for slug, at in acknowledged.items() if slug not in on_replica]
    return (killed_at - min(lost) if lost else 0.0), len(acknowledged), len(lost)


def lost_window(cycles: int, seed: int) -> int:
    rng, windows = random.Random(seed), []
    with tempfile.TemporaryDirectory() as tmp:
        for cycle in range(cycles):
            window, acknowledged, lost = lost_window_cycle(Path(tmp), cycle, rng)
            windows.append(window)
            print(f"cycle {cycle + 1:3}/{cycles}: {acknowledged} writes acknowledged, {lost} lost, "
                  f"the oldest lost one acknowledged {window:.3f} s before the kill", flush=True)
    print(f"\nseed {seed}: {cycles} kill -9 cycles with a lost volume (folder replica): lost window "
          f"median {statistics.median(windows):.3f} s, max {max(windows):.3f} s")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--writers", type=int, default=6)
    parser.add_argument("--seed", type=int, default=random.randrange(2**32))
    parser.add_argument("--lost-window", type=int, metavar="CYCLES", help="measure the restore's lost window instead")
    args = parser.parse_args()
    if args.lost_window:
        return lost_window(args.lost_window, args.seed)
    rng, acked, failures = random.Random(args.seed), Acknowledged(), 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        for cycle in range(args.cycles):
            seen = sigkill_cycle(data, cycle, acked, rng, writers=args.writers)
            bad = seen["integrity"] != "ok" or seen["lost"] or seen["resurrected"]
            failures += bool(bad)
            print(
                f"cycle {cycle + 1:3}/{args.cycles}: kill after {seen['moment']:.2f} s, "
                f"acknowledged so far {seen['acknowledged']:6}, lost {len(seen['lost'])}, "
                f"deletes undone {len(seen['resurrected'])}, integrity {seen['integrity']}",
                flush=True,
            )
    print(
        f"\nseed {args.seed}: {args.cycles} kill -9 cycles, {len(acked.created)} acknowledged creates, "
        f"{len(acked.deleted)} acknowledged deletes, cycles with a loss or a bad file: {failures} "
        f"({time.monotonic() - started:.0f} s)"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
