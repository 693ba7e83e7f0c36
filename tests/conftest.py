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
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient

from app.accounts import hashing
from app.config import Settings
from app.main import create_app
from tests.support.app import make_settings, register

TIERS = ("unit", "live", "browser")


# The in-process app hashes passwords with argon2id's smallest parameters: with OWASP's
# (19 MiB, 2 passes) each account a test registers cost 35 ms of CPU, about a minute of a
# full run. The OWASP parameters are what `qrcontact serve` uses (every live and browser
# test) and what test_accounts checks a stored hash for, through `owasp_hasher`.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True, scope="session")
def fast_password_hashing() -> Iterator[None]:
    production, hashing.HASHER = hashing.HASHER, FAST_HASHER
    yield
    hashing.HASHER = production


@pytest.fixture
def owasp_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production parameters (app/accounts/hashing.py) for this test."""
    monkeypatch.setattr(hashing, "HASHER", hashing.PRODUCTION_HASHER)


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
