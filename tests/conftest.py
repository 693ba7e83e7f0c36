"""Fixtures of every tier: a real SQLite file under tmp_path with every migration and the
app in process (Litestar's TestClient); and the tier markers, given by folder.

The tiers: tests/unit (no server, no subprocess: the app in process), tests/live (real
servers over sockets, `qrcontact serve`, Litestream, moto, SMTP), tests/browser (Chromium).
Helpers and harnesses live in tests/support/; each tier's own fixtures in its conftest.py.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from litestar import Litestar
from litestar.testing import TestClient

from app.accounts import hashing
from app.config import Settings
from app.db import migrate
from app.main import bind, build_app
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


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file as the real migrations leave a new one (app/db.py migrate), made
    once a worker: applying the 22 migrations costs 25 ms, half of an app's start."""
    path = tmp_path_factory.mktemp("migrated") / "qrcontact.db"
    migrate(path)
    return path


@pytest.fixture
def settings(tmp_path: Path, migrated_database: Path) -> Settings:
    """Settings on a new database of this test's own: a copy of `migrated_database`. Tests of
    the migrations themselves make their own from scratch (test_db, test_tx, test_stats)."""
    settings = make_settings(tmp_path)
    shutil.copyfile(migrated_database, settings.database_path)
    return settings


@pytest.fixture(scope="session")
def built_app() -> Litestar:
    """The primary's routes, built once a worker: building them (about 1,500 handlers'
    signatures, each router copied) is most of what an app costs, 0.2 s against 0.05 s
    for the rest of a test's setup. Each test binds it to its own settings (`app`)."""
    return build_app()


@pytest.fixture
def app(built_app: Litestar, settings: Settings) -> Litestar:
    """The app in process on this test's database, stores and background work (main.bind)."""
    return bind(built_app, settings)


@pytest.fixture
def app_of(built_app: Litestar) -> Callable[[Settings], Litestar]:
    """The worker's app bound to other settings than `settings`, for a test that runs one
    app at a time (bind refuses a running app; a module's shared client builds its own)."""
    return functools.partial(bind, built_app)


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
