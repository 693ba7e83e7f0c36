"""Shared fixtures: a real SQLite file under tmp_path with every migration, and the app over HTTP."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from app.config import Settings
from app.main import create_app

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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient]:
    with TestClient(app, base_url="https://qr.example.test") as client:
        yield client


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


@pytest.fixture
def user(client: TestClient) -> dict:
    return register(client)


def create_card(client: TestClient, headers: dict, **fields) -> dict:
    body = {"fullName": "Jane Doe", "email": "jane@example.com", **fields}
    response = client.post("/v1/cards", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def flush_counters(client: TestClient) -> None:
    """Write the buffered scan and view counts now instead of waiting for the next second."""
    state = client.app.state
    client.blocking_portal.call(state.counters.flush, state.db)


def assert_problem(response, status: int) -> dict:
    """The response is an RFC 9457 problem document with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    return body

