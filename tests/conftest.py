"""Fixtures of every tier: a real SQLite file under tmp_path with every migration and the
app in process (Litestar's TestClient); and the tier markers, given by folder.

The tiers: tests/unit (no server, no subprocess: the app in process), tests/live (real
servers over sockets, `qrcontact serve`, Litestream, moto, SMTP), tests/browser (Chromium).
Helpers and harnesses live in tests/support/; each tier's own fixtures in its conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from app.config import Settings
from app.main import create_app
from tests.support.app import make_settings, register

TIERS = ("unit", "live", "browser")


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


@pytest.fixture
def user(client: TestClient) -> dict:
    return register(client)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier, the folder it is in (`pytest -m unit` = `pytest tests/unit`)."""
    root = Path(__file__).parent
    for item in items:
        tier = item.path.relative_to(root).parts[0]
        if tier not in TIERS:
            raise pytest.UsageError(f"{item.nodeid}: a test belongs in tests/unit, tests/live or tests/browser")
        item.add_marker(getattr(pytest.mark, tier))
