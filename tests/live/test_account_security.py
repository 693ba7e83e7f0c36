"""A password reset answered before the address is looked up, timed on a real uvicorn
server (LiveServer), by the API and by the console.
"""

from __future__ import annotations

import pytest

from app.sqlite import sqlite3
from tests.support.app import make_settings, register, unique_email
from tests.support.console import csrf_of
from tests.support.db import query
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until


def ask_for_reset_by_api(http, email: str):
    return http.post("/v1/auth/password-reset", json={"email": email})


def ask_for_reset_in_console(http, email: str):
    csrf = csrf_of(http.get("/app/password-reset").text)
    return http.post("/app/password-reset", data={"_csrf_token": csrf, "email": email})


@pytest.mark.parametrize("ask", [ask_for_reset_by_api, ask_for_reset_in_console], ids=["api", "console"])
def test_a_reset_is_answered_before_the_address_is_looked_up(tmp_path, ask):
    # While an operator's sqlite3 holds the database's write lock, the lookup, the link and
    # its email cannot happen: both addresses are answered anyway, alike, and the work
    # follows once the lock is let go. (Plain http, so the console's cookies come back.)
    server = LiveServer(make_settings(tmp_path, public_base_url="http://qr.example.test"))
    settings = server.app.state.settings
    try:
        email = register(server.http)["user"]["email"]
        lock = sqlite3.connect(settings.database_path, isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            known, unknown = ask(server.http, email), ask(server.http, unique_email())
            assert query(settings, "SELECT count(*) FROM password_resets") == [(0,)]
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert known.status_code == unknown.status_code and known.status_code in (202, 303)
        assert known.content == unknown.content and known.headers.get("location") == unknown.headers.get("location")
        wait_until(
            lambda: query(settings, "SELECT 1 FROM email_outbox WHERE kind = 'password_reset' AND recipient = ?", (email,)),
            what="the reset email to be queued",
        )
        assert query(settings, "SELECT count(*) FROM password_resets") == [(1,)]
    finally:
        server.stop()


