"""A full database in process: writes refused with 503 (the faults against the real
service process are tests/live/test_faults.py).
"""

from __future__ import annotations

from litestar.testing import TestClient

from app.sqlite import sqlite3
from tests.support.app import create_card, make_settings, register


def test_a_full_database_answers_503_in_process(tmp_path, app_of):
    """The same without mounting anything: `PRAGMA max_page_count` on the writer makes
    SQLite answer SQLITE_FULL, the error a full disk gives, through the same code path."""
    with TestClient(app_of(make_settings(tmp_path))) as client:
        user = register(client)
        create_card(client, user["headers"], slug="before-full")
        db = client.app.state.db

        async def cap(pages: int | None) -> None:
            async with db._write_lock:
                async with db._writer.execute("PRAGMA page_count") as cursor:
                    current = (await cursor.fetchone())[0]
                await db._writer.execute(f"PRAGMA max_page_count = {pages or current}")

        client.blocking_portal.call(cap, None)
        long = {"fullName": "F" * 200, "organization": "O" * 200, "title": "T" * 200, "email": "f@example.com"}
        refused = None
        for n in range(200):
            response = client.post("/v1/cards", json={**long, "slug": f"full-{n}"}, headers=user["headers"])
            assert response.status_code in (201, 503), response.text
            if response.status_code == 503:
                refused = f"full-{n}"
                break
        assert refused is not None
        assert client.get("/v1/cards", headers=user["headers"]).status_code == 200
        assert client.get("/p/before-full").status_code == 200
        client.blocking_portal.call(cap, 1_000_000)
        assert client.post("/v1/cards", json={**long, "slug": "after-full"}, headers=user["headers"]).status_code == 201
        conn = sqlite3.connect(tmp_path / "qrcontact.db")
        assert conn.execute("SELECT count(*) FROM cards WHERE slug = ?", (refused,)).fetchone()[0] == 0
        conn.close()
