"""The links the app emailed, read as a person would: from the messages the outbox wrote.

Without SMTP_URL the outbox writes each message as an .eml file in the data folder;
`links` waits until the queue is drained and reads them.
"""

from __future__ import annotations

import email
import email.policy
import re
from pathlib import Path

from tests.conftest import drain_outbox, text_part, wait_until


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
