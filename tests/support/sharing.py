"""Sharing a card through the API and reading back its invitations and tracked links."""

from __future__ import annotations

import re
from urllib.parse import unquote

from prometheus_client import REGISTRY

LINK = re.compile(r"https://qr\.example\.test/i/([A-Za-z0-9_-]+)")


def share(client, user, card, *recipients, message=None):
    body = {"recipients": list(recipients)} | ({"message": message} if message is not None else {})
    return client.post(f"/v1/cards/{card['cardId']}/share", json=body, headers=user["headers"])


def invitations(client, user, card) -> list[dict]:
    response = client.get(f"/v1/cards/{card['cardId']}/invitations", headers=user["headers"])
    assert response.status_code == 200
    return response.json()["items"]


def token_of(url: str) -> str:
    return LINK.search(unquote(url)).group(1)


def viral(event_type: str, channel: str) -> float:
    return REGISTRY.get_sample_value("viral_events_total", {"event_type": event_type, "channel": channel}) or 0.0
