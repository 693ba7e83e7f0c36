"""Point-in-time restore: how close to a chosen moment `restore -timestamp` lands, by age.

Litestream keeps the history as levels of LTX files: L0 (one file per sync, kept
`l0-retention` once compacted into L1), L1/L2/L3 (compactions every 30 s, 5 min, 1 h
in production) and daily snapshots (L9); L1-L3 are deleted only with the snapshots they
follow. Days cannot be waited out here, so the run compresses the clock: each production
interval is divided by `--compress` (L1 30 s/15 = 2 s, L2 20 s, L3 240 s, snapshots every
`--snapshot` s, kept `--retention` s) while one row is written every 0.1 s with its
wall-clock time. Then the replica is restored at moments of every age, and the gap
between the moment asked for and the newest row restored is the granularity at that age;
a moment older than the history must be refused.

    .venv/bin/python bench/restore_history.py [--seconds 150] [--retention 60] [--snapshot 20]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from app.ops import replication  # noqa: E402

CONFIG = """\
levels:
  - interval: {l1}ms
  - interval: {l2}ms
  - interval: {l3}ms
snapshot:
  interval: {snapshot}s
  retention: {retention}s
l0-retention: {l0}ms
l0-retention-check-interval: 500ms
dbs:
  - path: {db}
    replica:
      url: file://{replica}
      sync-interval: 1s
"""


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def newest_row(binary: str, config: Path, db: Path, at: float, out: Path) -> float | None:
    out.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    result = subprocess.run(
        [binary, "restore", "-config", str(config), "-o", str(out), "-timestamp", rfc3339(at), str(db)],
        env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        return None
    conn = sqlite3.connect(out)
    try:
        return conn.execute("SELECT max(t) FROM rows").fetchone()[0]
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm", "-txid"):
            Path(f"{out}{suffix}").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=150)
    parser.add_argument("--compress", type=float, default=15)
    parser.add_argument("--snapshot", type=int, default=20)
    parser.add_argument("--retention", type=int, default=60)
    args = parser.parse_args()
    binary = replication.binary()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db, config = folder / "history.db", folder / "litestream.yml"
        config.write_text(CONFIG.format(
            l1=int(30_000 / args.compress), l2=int(300_000 / args.compress), l3=int(3_600_000 / args.compress),
            snapshot=args.snapshot, retention=args.retention, l0=int(300_000 / args.compress),
            db=db, replica=folder / "replica",
        ))
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE rows (t REAL NOT NULL)")
        stop = threading.Event()

        def write() -> None:
            # Writes go on while restoring, so every age has rows on both sides of it.
            while not stop.wait(0.1):
                conn.execute("INSERT INTO rows (t) VALUES (?)", (time.time(),))

        writer = threading.Thread(target=write)
        env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
        daemon = subprocess.Popen([binary, "replicate", "-config", str(config)], env=env,
                                  stdout=open(folder / "litestream.log", "w"), stderr=subprocess.STDOUT)
        try:
            writer.start()
            time.sleep(args.seconds)
            print(f"written for {args.seconds:.0f} s; L1 {30 / args.compress:g} s, L2 {300 / args.compress:g} s, "
                  f"L3 {3600 / args.compress:g} s, l0-retention {300 / args.compress:g} s, "
                  f"snapshots every {args.snapshot} s kept {args.retention} s")
            print("age_s  gap_s (moment asked - newest row restored; 'refused' = outside the history)")
            age = 3.0
            while age < args.seconds + 5:
                at = time.time() - age
                newest = newest_row(binary, config, db, at, folder / "restored.db")
                print(f"{age:6.1f}  " + ("refused" if newest is None else f"{at - newest:6.2f}"), flush=True)
                age += 1.0 if age < 20 else 2.5
        finally:
            stop.set()
            writer.join()
            daemon.terminate()
            daemon.wait(30)
            conn.close()
        for level in ("0", "1", "2", "3", "9"):
            found = list((folder / "replica" / "ltx" / level).glob("*.ltx"))
            print(f"L{level}: {len(found)} files on the replica")


if __name__ == "__main__":
    main()
