"""The app's database read and written directly, as an operator with sqlite3 would."""

from __future__ import annotations

from app.config import Settings
from app.sqlite import sqlite3


def query(settings: Settings, sql: str, params: tuple = ()) -> list[tuple]:
    """Read the app's database directly, as an operator with sqlite3 would."""
    conn = sqlite3.connect(settings.database_path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def execute(settings: Settings, sql: str, params: tuple = ()) -> None:
    conn = sqlite3.connect(settings.database_path, timeout=10)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()
