"""An edge's counting pipeline against a primary: the token they share and the edge's copy
of the primary's database."""

from __future__ import annotations

from pathlib import Path

from app.sqlite import sqlite3

TOKEN = "edge-token-" + "e" * 40


def copy_database(source: Path, target: Path) -> Path:
    """A copy of the primary's database, as an edge restores one (SQLite's online backup)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return target
