"""The team brand's SQL (table team_brand, migration 0016): read on aiosqlite at the primary
and on sqlite3 from an edge's copy (`read_stored`, `read_logo`), written by the operations
of app/brand/brand.py in their transaction.
"""

from __future__ import annotations

from typing import Any

import aiosqlite
import msgspec

from app.brand.types import BrandDefaults, BrandRequest, Stored
from app.db import fetch_one
from app.sqlite import sqlite3

COLUMNS = "name, accent_color, qr_dark, qr_light, logo_on_codes, locked_fields, defaults, logo_hash, updated_at"
SELECT = f"SELECT {COLUMNS} FROM team_brand WHERE id = 1"


def stored_from_row(row: Any) -> Stored:
    if row is None:
        return Stored()
    return Stored(
        name=row["name"], accent_color=row["accent_color"], qr_dark=row["qr_dark"], qr_light=row["qr_light"],
        logo_on_codes=bool(row["logo_on_codes"]), locked_fields=tuple(msgspec.json.decode(row["locked_fields"])),
        defaults=msgspec.json.decode(row["defaults"], type=BrandDefaults), logo_hash=row["logo_hash"],
        updated_at=row["updated_at"],
    )


async def get_stored(conn: aiosqlite.Connection) -> Stored:
    return stored_from_row(await fetch_one(conn, SELECT))


def read_stored(conn: sqlite3.Connection) -> Stored:
    """The brand in an edge's copy (a sqlite3 connection with Row rows); the unset brand in a
    copy older than migration 0016."""
    try:
        return stored_from_row(conn.execute(SELECT).fetchone())
    except sqlite3.OperationalError:
        return Stored()


def _logo_sql(thumbnail: bool) -> str:
    return f"SELECT logo_hash, {'logo_thumbnail' if thumbnail else 'logo'} AS jpeg FROM team_brand WHERE id = 1 AND logo IS NOT NULL"


async def logo_bytes(conn: aiosqlite.Connection, thumbnail: bool) -> tuple[str, bytes] | None:
    """The team logo's (hash, JPEG) or its thumbnail's; None without one."""
    row = await fetch_one(conn, _logo_sql(thumbnail))
    return None if row is None else (row["logo_hash"], bytes(row["jpeg"]))


def read_logo(conn: sqlite3.Connection, thumbnail: bool) -> tuple[str, bytes] | None:
    """logo_bytes from an edge's copy."""
    row = conn.execute(_logo_sql(thumbnail)).fetchone()
    return None if row is None else (row[0], bytes(row[1]))


async def save(conn: aiosqlite.Connection, data: BrandRequest, now: str) -> Stored:
    row = await fetch_one(
        conn,
        f"""UPDATE team_brand SET name = ?, accent_color = ?, qr_dark = ?, qr_light = ?, logo_on_codes = ?,
        locked_fields = ?, defaults = ?, updated_at = ? WHERE id = 1 RETURNING {COLUMNS}""",
        (data.name, data.accent_color, data.qr_dark.lower(), data.qr_light.lower(), int(data.logo_on_codes),
         msgspec.json.encode(sorted(set(data.locked_fields))).decode(), msgspec.json.encode(data.defaults).decode(), now),
    )
    return stored_from_row(row)


async def set_logo(conn: aiosqlite.Connection, content_hash: str | None, image: bytes | None, thumbnail: bytes | None,
                   now: str) -> Stored:
    row = await fetch_one(
        conn,
        f"UPDATE team_brand SET logo_hash = ?, logo = ?, logo_thumbnail = ?, updated_at = ? WHERE id = 1 RETURNING {COLUMNS}",
        (content_hash, image, thumbnail, now),
    )
    return stored_from_row(row)
