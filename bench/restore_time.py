"""Restore time for a database of 100,000 cards, from a folder replica and an S3 replica (moto).

Builds the database with the real migrations, writes the cards in 100 transactions while
`litestream replicate` runs (so the replica holds a snapshot and a stream of LTX files,
as in production), then times `qrcontact restore` into an empty data folder. The baseline
is copying the database file itself, measured in the same run.

    .venv/bin/python bench/restore_time.py [--cards 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import BIN, S3_CREDENTIALS, moto_server, s3_client, s3_url  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db import migrate, utcnow  # noqa: E402
from app.ops import replication  # noqa: E402


def settings(data: Path, replica_url: str) -> Settings:
    return Settings(data_dir=data, database_path=data / "qrcontact.db", jwt_secret="b" * 40, replica_url=replica_url)


def build(data: Path, replica_url: str, cards: int, env: dict[str, str]) -> None:
    s = settings(data, replica_url)
    migrate(s.database_path)
    os.environ.update(env)
    daemon = subprocess.Popen(
        [replication.binary(), "replicate", "-config", str(replication.CONFIG)],
        env=replication.environment(s), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        time.sleep(1.5)
        conn = sqlite3.connect(s.database_path, isolation_level=None)
        for pragma in ("PRAGMA busy_timeout = 5000", "PRAGMA journal_mode = WAL", "PRAGMA wal_autocheckpoint = 0"):
            conn.execute(pragma)
        now = utcnow()
        conn.execute(
            "INSERT INTO users (user_id, email, password_hash, is_admin, created_at) VALUES ('u1', 'bench@example.com', 'x', 1, ?)", (now,)
        )
        batch = max(1, cards // 100)
        for start in range(0, cards, batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                """INSERT INTO cards (card_id, user_id, slug, full_name, organization, title, email, phone, website,
                   created_at, updated_at) VALUES (?, 'u1', ?, ?, 'Example Organization', 'Engineer', ?, '+1 555 0100',
                   'https://example.com/people', ?, ?)""",
                [(uuid.uuid4().hex, f"card-{i:07d}", f"Person Number {i}", f"person{i}@example.com", now, now)
                 for i in range(start, min(start + batch, cards))],
            )
            conn.execute("COMMIT")
            time.sleep(0.02)
        conn.close()
        time.sleep(3)  # a few sync intervals: everything is on the replica
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)


def time_restores(data: Path, replica_url: str, cards: int, runs: int, env: dict[str, str]) -> list[float]:
    times = []
    for run in range(runs):
        target = data.parent / f"restored-{run}"
        started = time.perf_counter()
        result = subprocess.run(
            [str(BIN / "qrcontact"), "restore"], capture_output=True, text=True,
            env={**os.environ, **env, "DATA_DIR": str(target), "REPLICA_URL": replica_url, "JWT_SECRET": "b" * 40},
        )
        times.append(time.perf_counter() - started)
        assert result.returncode == 0, result.stderr
        found = sqlite3.connect(target / "qrcontact.db").execute("SELECT count(*) FROM cards").fetchone()[0]
        assert found == cards, found
        shutil.rmtree(target)
    return times


def copy_baseline(data: Path, runs: int) -> tuple[float, int]:
    """Median time to copy the (checkpointed) database file, and its size."""
    source = data / "qrcontact.db"
    conn = sqlite3.connect(source)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    times = []
    for run in range(runs):
        started = time.perf_counter()
        shutil.copyfile(source, data.parent / f"copy-{run}.db")
        os.sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times), source.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = {}
        folder_url = f"file://{root / 'replica'}"
        build(root / "folder" / "data", folder_url, args.cards, {})
        results["folder"] = time_restores(root / "folder" / "data", folder_url, args.cards, args.runs, {})
        with moto_server(root / "moto.log") as endpoint:
            s3_client(endpoint).create_bucket(Bucket="bench")
            url = s3_url(endpoint, "bench", "db")
            build(root / "s3" / "data", url, args.cards, S3_CREDENTIALS)
            results["s3"] = time_restores(root / "s3" / "data", url, args.cards, args.runs, S3_CREDENTIALS)
        baseline, size = copy_baseline(root / "folder" / "data", args.runs)
        print(f"{args.cards} cards, database {size / 1e6:.1f} MB; baseline: copying the file takes {baseline * 1000:.0f} ms")
        for name, times in results.items():
            median = statistics.median(times)
            print(f"{name:>7}: restore median {median:.2f} s, max {max(times):.2f} s over {len(times)} runs "
                  f"({median / baseline:.0f}x the file copy)")


if __name__ == "__main__":
    main()
