"""The links the app emailed, read as a person would: from the messages the outbox wrote.

Without SMTP_URL the outbox writes each message as an .eml file in the data folder;
`links` waits until the queue is drained and reads them.
"""

from __future__ import annotations

import email
import email.policy
import re

from tests.conftest import drain_outbox, text_part


def messages_to(client, address: str) -> list:
    drain_outbox(client)
    folder = client.app.state.settings.outbox_dir
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
