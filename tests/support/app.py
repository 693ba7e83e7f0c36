"""The app as tests drive it: settings over a temp folder, an account, a card, the
problem documents and metrics it answers with, and the user agents it sorts scans by."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

from litestar.testing import TestClient

from app.config import Settings

PASSWORD = "correct horse battery staple"
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
_emails = itertools.count(1)


def make_settings(data_dir: Path, **overrides) -> Settings:
    base = Settings(
        data_dir=data_dir,
        database_path=data_dir / "qrcontact.db",
        jwt_secret="test-secret-" + "x" * 40,
        public_base_url="https://qr.example.test",
        rate_limit_per_minute=100_000,
    )
    return dataclasses.replace(base, **overrides)


def unique_email() -> str:
    return f"user{next(_emails)}@example.com"


def register(client: TestClient, email: str | None = None, **extra) -> dict:
    """Register an account and return the AuthResponse, with `headers` added for convenience."""
    response = client.post(
        "/v1/auth/register",
        json={"email": email or unique_email(), "password": PASSWORD, "marketingConsent": False, **extra},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    body["headers"] = {"Authorization": f"Bearer {body['accessToken']}"}
    return body


def create_card(client: TestClient, headers: dict, **fields) -> dict:
    body = {"fullName": "Jane Doe", "email": "jane@example.com", **fields}
    response = client.post("/v1/cards", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def flush_counters(client: TestClient) -> None:
    """Write the buffered scan and view counts now instead of waiting for the next second."""
    state = client.app.state
    client.blocking_portal.call(state.counters.flush)


def assert_problem(response, status: int) -> dict:
    """The response is an RFC 9457 problem document with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    return body


def metric(client, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when there are none)."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


BOT_AGENTS = [
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "WhatsApp/2.23.20.0 A",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Twitterbot/1.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "TelegramBot (like TwitterBot)",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "",
]


def replica_settings(tmp_path: Path, **overrides) -> Settings:
    return make_settings(tmp_path, replica_url=f"file://{tmp_path / 'replica'}", **overrides)
