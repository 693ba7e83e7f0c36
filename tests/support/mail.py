"""Email in tests: a real SMTP server on loopback (aiosmtpd) that keeps what it accepts,
and the links the app emailed, read as a person would: from the messages the outbox wrote.

Without SMTP_URL the outbox writes each message as an .eml file in the data folder;
`links` waits until the queue is drained and reads them.
"""

from __future__ import annotations

import email
import email.policy
import re
import time
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller
from litestar.testing import TestClient

from tests.support.db import execute, query
from tests.support.net import free_port
from tests.support.waiting import wait_until


class MailSink:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts.

    `rcpt_reply` set to an SMTP reply ("550 …", "451 …") refuses recipients with it.
    Stop and start it again to play a server that goes away and comes back (same port).
    """

    def __init__(self, port: int | None = None, **smtp_options) -> None:
        self.port = port or free_port()
        self.smtp_options = smtp_options
        self.received: list[tuple[float, str, list[str], bytes]] = []
        self.rcpt_reply: str | None = None
        self._controller: Controller | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((time.time(), envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def start(self) -> MailSink:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **self.smtp_options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def messages(self) -> list[EmailMessage]:
        return [email.message_from_bytes(content, policy=email.policy.default) for *_, content in self.received]

    def wait_for(self, count: int, timeout: float = 60.0) -> list[EmailMessage]:
        """Wait until `count` messages have arrived (a liveness bound, not a speed check)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages, got {len(self.received)}")
            time.sleep(0.02)
        return self.messages()


def text_part(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def html_part(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def wake_outbox(client: TestClient) -> None:
    """Make every waiting email due now and wake the worker (instead of waiting out the backoff)."""
    execute(client.app.state.settings, "UPDATE email_outbox SET next_attempt_at = '2000-01-01T00:00:00.000000Z' WHERE status = 'pending'")
    client.blocking_portal.call(client.app.state.outbox.wake)


def drain_outbox(client) -> None:
    """Wait until the email outbox has nothing pending (every queued message delivered or
    given up). Waiting mail is made due now, so no backoff is waited out."""
    wake_outbox(client)
    wait_until(
        lambda: not query(client.app.state.settings, "SELECT 1 FROM email_outbox WHERE status = 'pending'"),
        what="the email outbox to drain",
    )


def messages_to(client, address: str) -> list:
    drain_outbox(client)
    return messages_in(client.app.state.settings.outbox_dir, address)


def messages_in(folder: Path, address: str) -> list:
    """The messages to `address` written to an outbox folder so far, oldest first."""
    found = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"].addresses[0].addr_spec.casefold() == address.casefold():
            found.append(message)
    return found


def links(client, address: str, path: str) -> list[str]:
    """The tokens of every link to `path` (followed by the token) in the emails sent to `address`."""
    base = re.escape(client.app.state.settings.public_base_url + path)
    pattern = re.compile(base + r"([A-Za-z0-9_-]{16,64})")
    return [match for message in messages_to(client, address) for match in pattern.findall(text_part(message))]


def wait_for_link(folder: Path, base_url: str, address: str, path: str) -> str:
    """A live server's newest emailed link to `path` for `address`, waiting until its outbox
    worker has written it (a poll with a deadline: the worker is woken by the commit)."""
    pattern = re.compile(re.escape(base_url + path) + r"([A-Za-z0-9_-]{16,64})")

    def newest() -> str | None:
        found = [m for message in messages_in(folder, address) for m in pattern.findall(text_part(message))]
        return found[-1] if found else None

    return wait_until(newest, what=f"an email to {address} with a link to {path}")
