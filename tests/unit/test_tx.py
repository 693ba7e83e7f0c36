"""The transaction object: one `now` from a clock tests set, steps run after the commit
(never after a rollback), and one stored form for every time, old rows migrated to it."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from litestar.testing import TestClient

from app import db as dbmodule
from app.db import Database, isoformat, migrate
from app.tokens import token_hash
from tests.support.app import PHONE_UA, create_card, flush_counters, make_settings, register
from tests.support.db import query

# A moment with every digit of its microseconds set, a day ahead (a JWT's exp must be in the future).
SET_TIME = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=123456)


def test_a_clock_set_on_the_database_dates_what_is_written(settings, app_of):
    with TestClient(app_of(settings), base_url="https://qr.example.test") as client:
        client.app.state.db.clock = lambda: SET_TIME
        account = register(client)
        card = create_card(client, account["headers"], slug="set-clock")
    stamp = isoformat(SET_TIME)
    assert stamp.endswith(".123456Z")
    assert card["createdAt"] == card["updatedAt"] == stamp
    assert query(settings, "SELECT created_at FROM users") == [(stamp,)]
    assert query(settings, "SELECT changed_at FROM card_changes WHERE slug = 'set-clock'") == [(stamp,)]
    # The refresh token's expiry in the same form as every other time (it had its own).
    expires = isoformat(SET_TIME + timedelta(days=settings.refresh_expiry_days))
    assert query(settings, "SELECT created_at, expires_at FROM refresh_tokens") == [(stamp, expires)]


def test_the_database_clock_dates_the_scans_counted_at_the_primary(settings, app_of):
    with TestClient(app_of(settings), base_url="https://qr.example.test") as client:
        account = register(client)
        create_card(client, account["headers"], slug="scanned")
        client.app.state.db.clock = lambda: SET_TIME
        assert client.get("/c/scanned", headers={"User-Agent": PHONE_UA}, follow_redirects=False).status_code == 302
        flush_counters(client)
    # scan_events keeps whole seconds (the edges ship them so, SPEC §7).
    assert query(settings, "SELECT occurred_at FROM scan_events") == [(f"{SET_TIME:%Y-%m-%dT%H:%M:%S}Z",)]


def test_an_access_token_lasts_its_whole_lifetime_whenever_its_transaction_began(settings, app_of):
    """The JWT is dated by the clock Litestar checks it against, and its exp counted from its
    own iat: counted from the transaction's `now`, a transaction that began earlier (here two
    seconds, as a slow one would) cut the token short."""
    with TestClient(app_of(settings), base_url="https://qr.example.test") as client:
        client.app.state.db.clock = lambda: datetime.now(UTC) - timedelta(seconds=2)
        claims = jwt.decode(register(client)["accessToken"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == settings.jwt_expiry_minutes * 60


def test_one_operation_writes_one_now_however_the_clock_moves(settings, app_of):
    readings = iter(SET_TIME + timedelta(seconds=n) for n in range(1000))
    with TestClient(app_of(settings), base_url="https://qr.example.test") as client:
        client.app.state.db.clock = lambda: next(readings)
        account = register(client)
        card = create_card(client, account["headers"], slug="one-now")
    # Registration wrote the user, its verification, its queued email and its refresh token in one transaction.
    times = query(
        settings,
        """SELECT created_at FROM users UNION SELECT created_at FROM email_verifications
        UNION SELECT created_at FROM email_outbox UNION SELECT created_at FROM refresh_tokens""",
    )
    assert len(times) == 1
    assert card["createdAt"] == card["updatedAt"] != times[0][0]
    assert query(settings, "SELECT changed_at FROM card_changes WHERE slug = 'one-now'") == [(card["createdAt"],)]


def _scenario(tmp_path, steps):
    async def run():
        database = Database(tmp_path / "tx.db")
        await database.open()
        try:
            return await steps(database)
        finally:
            await database.close()

    return asyncio.run(run())


def test_after_commit_steps_run_in_order_once_committed_and_a_failing_one_stops_nothing(tmp_path, caplog):
    ran: list[str] = []

    async def steps(database: Database):
        async with database.write() as tx:
            await tx.conn.execute("INSERT INTO retired_slugs VALUES ('kept', ?)", (tx.now_text,))
            tx.after_commit(lambda: ran.append("first"))
            tx.after_commit(lambda: 1 / 0)
            tx.after_commit(lambda: ran.append("third"))
            assert ran == []  # nothing before the commit
        async with database.read() as conn:
            async with conn.execute("SELECT slug FROM retired_slugs") as cursor:
                return [row[0] for row in await cursor.fetchall()]

    assert _scenario(tmp_path, steps) == ["kept"]
    assert ran == ["first", "third"]
    assert "after-commit step" in caplog.text and "ZeroDivisionError" in caplog.text


def test_after_commit_steps_never_run_after_a_rollback(tmp_path):
    ran: list[str] = []

    async def steps(database: Database):
        with pytest.raises(RuntimeError):
            async with database.write() as tx:
                await tx.conn.execute("INSERT INTO retired_slugs VALUES ('undone', ?)", (tx.now_text,))
                tx.after_commit(lambda: ran.append("step"))
                raise RuntimeError("fail mid-transaction")
        async with database.read() as conn:
            async with conn.execute("SELECT count(*) FROM retired_slugs") as cursor:
                return (await cursor.fetchone())[0]

    assert _scenario(tmp_path, steps) == 0
    assert ran == []


def test_each_transaction_reads_the_clock_once_as_it_begins(tmp_path):
    readings = iter(SET_TIME + timedelta(minutes=n) for n in range(10))

    async def steps(database: Database):
        database.clock = lambda: next(readings)
        async with database.write() as first:
            pass
        async with database.write() as second:
            pass
        return first.now, first.now_text, second.now

    first, first_text, second = _scenario(tmp_path, steps)
    assert (first, second) == (SET_TIME, SET_TIME + timedelta(minutes=1))
    assert first_text == isoformat(SET_TIME)


# --- old rows migrated to the one form -----------------------------------------------


def _migrated_up_to(monkeypatch, tmp_path, last: str, path) -> None:
    """Apply the migrations up to `last` only: a database as an older release left it."""
    older = tmp_path / "older-migrations"
    older.mkdir()
    for file in sorted(dbmodule.MIGRATIONS_DIR.glob("*.sql")):
        if file.name <= last:
            shutil.copy(file, older / file.name)
    with monkeypatch.context() as patch:
        patch.setattr(dbmodule, "MIGRATIONS_DIR", older)
        migrate(path)


def test_a_refresh_token_issued_before_the_form_changed_refreshes_until_its_expiry(tmp_path, monkeypatch, app_of):
    settings = make_settings(tmp_path)
    _migrated_up_to(monkeypatch, tmp_path, "0008_history.sql", settings.database_path)
    expiry = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=654321)
    whole_second = expiry.replace(microsecond=0)
    conn = dbmodule.sqlite3.connect(settings.database_path)
    with conn:
        conn.execute(
            "INSERT INTO users (user_id, email, password_hash, created_at) VALUES ('u1', 'old@example.com', 'x', ?)",
            (isoformat(expiry - timedelta(days=30)),),
        )
        # As the old code wrote them: datetime.isoformat(), `+00:00`, no fraction for a whole second.
        for token, expires in (("old-token", expiry), ("whole-second-token", whole_second)):
            conn.execute(
                "INSERT INTO refresh_tokens (token_hash, user_id, family_id, created_at, expires_at) VALUES (?, 'u1', ?, ?, ?)",
                (token_hash(token), token, isoformat(expiry - timedelta(days=30)), expires.isoformat()),
            )
    began_at = conn.execute("SELECT began_at FROM history").fetchone()[0]
    conn.close()
    assert len(began_at) == len("2026-12-07T11:46:19.123Z")  # 0008's milliseconds

    with TestClient(app_of(settings), base_url="https://qr.example.test") as client:
        db = client.app.state.db
        db.clock = lambda: expiry + timedelta(microseconds=1)
        assert client.post("/v1/auth/refresh", json={"refreshToken": "old-token"}).status_code == 401
        db.clock = lambda: expiry - timedelta(seconds=1)
        refreshed = client.post("/v1/auth/refresh", json={"refreshToken": "old-token"})
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["user"]["email"] == "old@example.com"
        db.clock = lambda: whole_second
        assert client.post("/v1/auth/refresh", json={"refreshToken": "whole-second-token"}).status_code == 401
        db.clock = lambda: whole_second - timedelta(microseconds=1)
        assert client.post("/v1/auth/refresh", json={"refreshToken": "whole-second-token"}).status_code == 200

    stored = dict(query(
        settings, "SELECT family_id, expires_at FROM refresh_tokens WHERE token_hash IN (?, ?)",
        (token_hash("old-token"), token_hash("whole-second-token")),
    ))
    assert stored == {"old-token": isoformat(expiry), "whole-second-token": isoformat(whole_second)}
    [(migrated_began_at,)] = query(settings, "SELECT began_at FROM history")
    assert migrated_began_at == began_at[:23] + "000Z"
    assert all(
        at.endswith("Z") and len(at) == len("2026-12-07T11:46:19.123456Z")
        for (at,) in query(settings, "SELECT expires_at FROM refresh_tokens UNION SELECT began_at FROM history")
    )
