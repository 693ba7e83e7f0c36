"""Finding an account's cards: the searchable, paged list the console shows (the API lists
by cursor, `store.list_cards`), and the scans of the week beside each card."""

from __future__ import annotations

import aiosqlite

from app.db import fetch_all, fetch_one


def _like(query: str) -> str:
    return "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


_SEARCH = """user_id = :user_id AND (full_name LIKE :like ESCAPE '\\' OR organization LIKE :like ESCAPE '\\'
    OR email LIKE :like ESCAPE '\\' OR slug LIKE :like ESCAPE '\\')"""


async def search_cards(conn: aiosqlite.Connection, user_id: str, query: str, limit: int, offset: int) -> tuple[list[dict], int]:
    """A page of the account's cards matching `query` (name, organization, email or slug), newest first, and how many match."""
    params = {"user_id": user_id, "query": query, "like": _like(query), "limit": limit, "offset": offset}
    columns = "id, card_id, slug, full_name, organization"
    if not query:
        # The whole list: a page off the (user_id, id) index and a count from the same index.
        rows = await fetch_all(
            conn, f"SELECT {columns} FROM cards WHERE user_id = :user_id ORDER BY id DESC LIMIT :limit OFFSET :offset", params
        )
        total = (await fetch_one(conn, "SELECT count(*) AS n FROM cards WHERE user_id = :user_id", params))["n"]
        return [dict(row) for row in rows], total
    # A search reads every card of the account once: the count rides along as a window.
    rows = await fetch_all(
        conn,
        f"""SELECT {columns}, count(*) OVER () AS total FROM cards WHERE {_SEARCH}
        ORDER BY id DESC LIMIT :limit OFFSET :offset""",
        params,
    )
    if rows:
        return [{k: row[k] for k in row.keys() if k != "total"} for row in rows], rows[0]["total"]
    return [], (await fetch_one(conn, f"SELECT count(*) AS n FROM cards WHERE {_SEARCH}", params))["n"]


async def scans_since(conn: aiosqlite.Connection, ids: list[int], since: str) -> dict[int, int]:
    """Counted scans per card (cards.id) since a moment."""
    if not ids:
        return {}
    marks = ", ".join("?" * len(ids))
    rows = await fetch_all(
        conn,
        f"""SELECT card_id, sum(hits) AS n FROM scan_events
        WHERE card_id IN ({marks}) AND kind = 'scan' AND occurred_at >= ? GROUP BY card_id""",
        (*ids, since),
    )
    return {row["card_id"]: row["n"] for row in rows}
