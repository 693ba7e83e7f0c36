"""Queued email survives a crash: a real `qrcontact serve` process, a real SMTP server that
goes away, SIGKILL to the whole process group, and both started again."""

from __future__ import annotations

import signal

import httpx

from app.sqlite import sqlite3
from tests.support.app import PASSWORD
from tests.support.mail import MailSink
from tests.support.service import Service
from tests.support.waiting import wait_until


def rows(database, sql: str) -> list[tuple]:
    conn = sqlite3.connect(database, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_a_share_queued_while_smtp_is_down_arrives_after_sigkill_and_restart(tmp_path):
    data = tmp_path / "data"
    database = data / "qrcontact.db"
    sink = MailSink().start()
    service = Service(data, SMTP_URL=sink.url)
    try:
        service.start()
        auth = httpx.post(
            f"{service.url}/v1/auth/register", json={"email": "owner@example.com", "password": PASSWORD, "marketingConsent": False}
        ).json()
        headers = {"Authorization": f"Bearer {auth['accessToken']}"}
        assert sink.wait_for(1)[0]["To"] == "owner@example.com"  # the verification email
        card = httpx.post(f"{service.url}/v1/cards", json={"fullName": "Owner", "email": "owner@example.com"}, headers=headers).json()

        sink.stop()
        shared = httpx.post(
            f"{service.url}/v1/cards/{card['cardId']}/share",
            json={"recipients": [{"channel": "email", "to": "friend@example.com"}], "message": "Survive this"},
            headers=headers,
        )
        assert shared.status_code == 202 and shared.json()["invitations"][0]["status"] == "queued"
        # The worker has tried and failed: the job waits in the table, backing off.
        wait_until(
            lambda: rows(database, "SELECT 1 FROM email_outbox WHERE kind = 'invitation' AND last_error IS NOT NULL"),
            what="the first failed attempt",
        )
        service.stop(signal.SIGKILL)
        [(message_id, status)] = rows(database, "SELECT message_id, status FROM email_outbox WHERE kind = 'invitation'")
        assert status == "pending"

        sink.start()
        service.start()
        message = sink.wait_for(2)[1]
        assert message["To"] == "friend@example.com" and message["Message-ID"] == message_id
        assert "Survive this" in message.get_body(preferencelist=("plain",)).get_content()
        wait_until(
            lambda: rows(database, "SELECT status FROM invitations") == [("sent",)], what="the invitation marked sent"
        )
        assert rows(database, "SELECT status FROM email_outbox WHERE kind = 'invitation'") == [("sent",)]
        assert httpx.get(f"{service.url}/health").json()["checks"]["queue"] == "ok"
        assert service.stop() == 0
        assert len(sink.received) == 2
    finally:
        if service.process and service.process.poll() is None:
            service.stop(signal.SIGKILL)
        sink.stop()
