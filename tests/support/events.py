"""Reading back the events the operations recorded (SPEC §9), straight from the table."""

from __future__ import annotations

import json
import re

from app.config import Settings
from tests.support.db import query

# A key naming something no event may carry: a secret, a token, a key's value, a hash, a password.
SECRET_KEY = re.compile(r"(secret|token|hash|password|^key$|apikey$|clientkey|iphash)", re.IGNORECASE)


def recorded(settings: Settings, type_: str | None = None) -> list[dict]:
    """The events, oldest first (only those of `type_` when given)."""
    rows = query(settings, "SELECT event_id, type, actor_id, user_id, data FROM events ORDER BY id")
    return [
        {"event_id": event_id, "type": type, "actor_id": actor, "user_id": owner, "data": json.loads(data)}
        for event_id, type, actor, owner, data in rows
        if type_ in (None, type)
    ]


def secret_looking_keys(value: object, path: str = "") -> list[str]:
    """The paths of the keys anywhere in `value` that look like they hold a secret."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            if SECRET_KEY.search(key):
                found.append(f"{path}.{key}")
            found += secret_looking_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += secret_looking_keys(item, f"{path}[{index}]")
    return found
