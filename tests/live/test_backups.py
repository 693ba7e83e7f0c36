"""Backups with the real `litestream` and the project's litestream.yml: the history that
BACKUP_RETENTION keeps (a moment inside it restores exactly, one outside is refused), and
the service's own verification of the replica with its metrics."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar.testing import TestClient

from app.config import Settings
from app.db import migrate
from app.main import create_app
from app.ops import replication
from app.sqlite import sqlite3
from tests.support.app import metric, replica_settings
from tests.support.waiting import wait_until


def replica_txid(settings: Settings, level: int = 0) -> int:
    """The newest TXID the (folder) replica holds at a level, 0 when none."""
    files = replication.ltx_files(Path(settings.replica_url.removeprefix("file://")) / "ltx" / str(level))
    return files[-1][0] if files else 0


class Replicating:
    """`litestream replicate` on the app's database with the project's litestream.yml."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        migrate(settings.database_path)
        self.conn = sqlite3.connect(settings.database_path, isolation_level=None, timeout=10)
        self.conn.execute("PRAGMA busy_timeout = 5000")
        self.conn.execute("CREATE TABLE IF NOT EXISTS drill (n INTEGER NOT NULL)")
        # What replication.environment passes, plus the history keys from BACKUP_RETENTION
        # (a no-op once environment() passes them itself).
        env = replication.environment(settings) | settings.litestream_history()
        self.process = subprocess.Popen(
            [replication.binary(), "replicate", "-config", str(replication.CONFIG)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )

    def commit(self, n: int) -> float:
        """Write state n, wait until the replica holds it, and return a moment after that
        (and before any later write): a restore to it must give exactly state n."""
        before = replica_txid(self.settings)
        self.conn.execute("INSERT INTO drill (n) VALUES (?)", (n,))
        latest = self.settings.data_dir / "latest" / "drill.db"
        latest.parent.mkdir(exist_ok=True)
        # A new file on the replica, and the one that holds this write (not one Litestream
        # made for its own reasons): the latest restore shows it.
        wait_until(
            lambda: replica_txid(self.settings) > before and state_at(self.settings, None, latest) == n,
            what=f"state {n} on the replica",
        )
        return time.time()

    def stop(self) -> None:
        self.conn.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


@pytest.fixture
def replicating(request, tmp_path) -> Iterator[callable]:
    started: list[Replicating] = []

    def start(settings: Settings) -> Replicating:
        started.append(Replicating(settings))
        return started[-1]

    yield start
    for r in started:
        r.stop()


def state_at(settings: Settings, moment: float | None, out: Path) -> int | None:
    """The drill state a restore to `moment` (None: the latest) gives, or None when Litestream refuses it."""
    for leftover in out.parent.glob(out.name + "*"):
        leftover.unlink()
    timestamp = moment and datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        replication.restore_to(settings, out, timestamp)
    except replication.ReplicationError as exc:
        assert "timestamp does not exist" in str(exc) or "no matching backup files" in str(exc), exc
        return None
    conn = sqlite3.connect(out)
    try:
        return conn.execute("SELECT max(n) FROM drill").fetchone()[0]
    finally:
        conn.close()


def ends_a_file(settings: Settings, txid: int, levels: tuple[int, ...]) -> bool:
    """Whether a compacted file at one of `levels` of the (folder) replica ends at `txid`."""
    replica = Path(settings.replica_url.removeprefix("file://")) / "ltx"
    return any(found == txid for level in levels for found, _ in replication.ltx_files(replica / str(level)))


def test_the_history_reaches_back_backup_retention_and_no_further(tmp_path, replicating):
    settings = replica_settings(tmp_path, backup_retention=20)  # snapshots every 1 s, kept 21 s
    drill = replicating(settings)
    out = tmp_path / "restored" / "drill.db"
    out.parent.mkdir()
    written: dict[int, tuple[float, int]] = {}  # state -> (a moment just after it, its TXID)
    followed = None
    deadline = time.monotonic() + 300
    while True:
        assert time.monotonic() < deadline, "the history was not trimmed"
        n = len(written) + 1
        written[n] = (drill.commit(n), replica_txid(settings))
        # A moment just written restores exactly that state.
        assert state_at(settings, written[n][0], out) == n
        if followed is None or ends_a_file(settings, written[followed][1], (2, 3)):
            # The moment to follow to the end of the history: once the per-sync files go,
            # a moment restores to the end of the 30 s compaction (L1) before it (docs/operations.md,
            # "Backups and history"), so a state that ends one restores exactly at any
            # age. Not one a 5 min or 1 h compaction (L2, L3) also ends with: Litestream
            # keeps the newest file of a level until that level's next compaction.
            followed = next((k for k, (_, txid) in written.items()
                             if ends_a_file(settings, txid, (1,)) and not ends_a_file(settings, txid, (2, 3))), None)
            continue
        moment = written[followed][0]
        restored = state_at(settings, moment, out)
        if restored != followed:
            break
        # Inside the history it restores exactly; it leaves the history soon after.
        assert time.time() - moment < settings.snapshot_retention + 60, "kept far past BACKUP_RETENTION"
    # It left no earlier than BACKUP_RETENTION after it: refused (or, in a database younger
    # than Litestream's 1 h level, possibly an older state the newest L2/L3 file still holds).
    assert time.time() - moment >= settings.backup_retention
    assert restored is None or restored < followed
    assert state_at(settings, drill.commit(n + 1), out) == n + 1


# --- the service's own check ---------------------------------------------------------


def replicated_once(settings: Settings, replicating) -> None:
    """A replica holding the migrated database, and Litestream stopped again."""
    drill = replicating(settings)
    drill.commit(1)
    drill.stop()


def test_the_running_service_verifies_the_replica(tmp_path, replicating):
    settings = replica_settings(tmp_path, backup_verify_interval=1)
    replicated_once(settings, replicating)
    started = time.time()
    with TestClient(create_app(settings)) as client:
        failures = metric(client, "backup_verify_failures_total")
        verified = wait_until(
            lambda: (value := metric(client, "backup_last_verified_timestamp_seconds")) >= started and value,
            what="a verification",
        )
        # And again an interval later: it is a loop, not a check at start.
        wait_until(lambda: metric(client, "backup_last_verified_timestamp_seconds") > verified, what="the next one")
        assert metric(client, "backup_verify_failures_total") == failures
        assert client.get("/health").status_code == 200  # the loop ran beside the app, not in it


def test_a_broken_replica_counts_a_failure(tmp_path, replicating):
    settings = replica_settings(tmp_path, backup_verify_interval=1)
    replicated_once(settings, replicating)
    replica = Path(settings.replica_url.removeprefix("file://"))
    for ltx in replica.rglob("*.ltx"):  # bit rot in every file of the replica
        data = bytearray(ltx.read_bytes())
        for i in range(100, len(data), 97):
            data[i] ^= 0xFF
        ltx.write_bytes(bytes(data))
    with TestClient(create_app(settings)) as client:
        failures = metric(client, "backup_verify_failures_total")
        wait_until(lambda: metric(client, "backup_verify_failures_total") > failures, what="a failed verification")
        assert metric(client, "backup_last_verified_timestamp_seconds") == 0  # never good in this process


