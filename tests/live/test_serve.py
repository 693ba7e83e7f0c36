"""The `qrcontact` command as a user runs it: a real process, real HTTP, real Litestream."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from app.cli import MALLOC_ARENAS
from app.sqlite import FIXED_VERSION, sqlite3
from tests.support.app import PASSWORD, PHONE_UA
from tests.support.net import free_port
from tests.support.service import QRCONTACT, Service
from tests.support.waiting import wait_until


def test_serve_works_end_to_end_and_replicates(service, tmp_path):
    svc = service()
    health = httpx.get(f"{svc.url}/health").json()
    assert health["status"] == "ok" and health["checks"]["database"] == "ok"
    auth = httpx.post(
        f"{svc.url}/v1/auth/register", json={"email": "e2e@example.com", "password": PASSWORD, "marketingConsent": True}
    ).json()
    headers = {"Authorization": f"Bearer {auth['accessToken']}"}
    card = httpx.post(f"{svc.url}/v1/cards", json={"fullName": "E2E", "email": "e2e@example.com", "slug": "e2e-card"}, headers=headers)
    assert card.status_code == 201
    scan = httpx.get(f"{svc.url}/c/e2e-card", headers={"User-Agent": PHONE_UA})
    assert scan.status_code == 302 and scan.headers["location"] == "/p/e2e-card?src=qr"
    for _ in range(20):  # work for the database's threads
        assert httpx.get(f"{svc.url}/v1/cards", headers=headers).status_code == 200
    # The app (Litestream's child) limits glibc's malloc arenas: besides the main one, each
    # is a heap mapped at a multiple of 64 MiB.
    (app_pid,) = [pid for task in Path(f"/proc/{svc.process.pid}/task").iterdir() for pid in (task / "children").read_text().split()]
    assert len(malloc_heaps(int(app_pid))) <= MALLOC_ARENAS - 1
    assert svc.stop() == 0
    data = tmp_path / "data"
    # The scan was flushed at shutdown, and Litestream wrote the replica.
    assert sqlite3.connect(data / "qrcontact.db").execute("SELECT scan_count FROM cards").fetchone() == (1,)
    assert list((data / "replica").rglob("*.ltx"))
    assert oct((data / "jwt_secret").stat().st_mode & 0o777) == "0o600"


def malloc_heaps(pid: int) -> list[str]:
    """The process's glibc arenas other than the main one: writable mappings that start at a
    multiple of their 64 MiB size (on 64-bit Linux)."""
    heaps = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split()
        start = int(fields[0].split("-")[0], 16)
        if len(fields) == 5 and start % (64 << 20) == 0 and fields[1].startswith("rw"):
            heaps.append(line)
    return heaps


def open_to_others(folder: Path) -> list[str]:
    """Whatever under the folder (itself included) is not the service user's alone: folders
    must be 0700, files 0600, anything else (Litestream's socket) closed to group and others."""
    found = []
    for path in [folder, *sorted(folder.rglob("*"))]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        kind = path.lstat().st_mode
        wanted = 0o700 if stat.S_ISDIR(kind) else 0o600 if stat.S_ISREG(kind) else mode & 0o700
        if mode != wanted:
            found.append(f"{path.relative_to(folder.parent)} {oct(mode)}")
    return found


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask 022", "umask 000"])
def test_the_data_folder_is_the_service_users_alone_whatever_the_umask(service, tmp_path, umask):
    """Issue 17, 14: the database, its WAL and SHM, Litestream's state and replica, the JWT
    secret, emails holding live links, and restored copies are no one else's to read."""
    data = tmp_path / "data"
    svc = service(umask=umask)
    email = "private@example.com"
    auth = httpx.post(f"{svc.url}/v1/auth/register", json={"email": email, "password": PASSWORD, "marketingConsent": False}).json()
    headers = {"Authorization": f"Bearer {auth['accessToken']}"}
    body = {"fullName": "Private", "email": "card@example.com", "slug": "private-card"}
    card = httpx.post(f"{svc.url}/v1/cards", json=body, headers=headers)
    assert card.status_code == 201
    assert httpx.get(f"{svc.url}/c/private-card", headers={"User-Agent": PHONE_UA}).status_code == 302
    assert httpx.post(f"{svc.url}/v1/auth/password-reset", json={"email": email}).status_code == 202
    # The verification and the reset email, each with a live token, written to the outbox folder.
    wait_until(lambda: len(list((data / "outbox").glob("*.eml"))) >= 2, what="two emails in the outbox")
    svc.wait_until_replicated()
    assert (data / "qrcontact.db-wal").exists() and list((data / "replica").rglob("*.ltx"))
    while_running = open_to_others(data)
    assert svc.stop() == 0
    assert while_running == [] and open_to_others(data) == []
    # A lost database: the next start restores it from the replica, and `qrcontact restore` again.
    for leftover in data.glob("qrcontact.db*"):
        leftover.unlink()
    svc = service(umask=umask)
    assert httpx.post(f"{svc.url}/v1/auth/login", json={"email": email, "password": PASSWORD}).status_code == 200
    assert svc.stop() == 0
    restored = subprocess.run([QRCONTACT, "restore"], env=svc.env, capture_output=True, text=True, timeout=60, umask=umask)
    assert restored.returncode == 0, restored.stderr
    assert open_to_others(data) == []


def test_an_edges_data_folder_is_its_users_alone_too(tmp_path):
    """An edge's copy of the replica and its outbox of counted scans, with umask 000."""
    token = "t" * 40
    internal = free_port()
    primary = Service(tmp_path / "primary", EDGE_TOKEN=token, INTERNAL_PORT=str(internal))
    edge = Service(
        tmp_path / "edge", ROLE="edge", EDGE_TOKEN=token, REPLICA_URL=f"file://{tmp_path / 'primary' / 'replica'}",
        PRIMARY_URL=primary.url, PRIMARY_INTERNAL_URL=f"http://127.0.0.1:{internal}", PUBLIC_BASE_URL=primary.url,
    )
    try:
        primary.start(umask=0o000)
        body = {"email": "edge@example.com", "password": PASSWORD, "marketingConsent": False}
        headers = {"Authorization": f"Bearer {httpx.post(f'{primary.url}/v1/auth/register', json=body).json()['accessToken']}"}
        body = {"fullName": "At the edge", "email": "card@example.com", "slug": "edge-card"}
        card = httpx.post(f"{primary.url}/v1/cards", json=body, headers=headers)
        assert card.status_code == 201
        primary.wait_until_replicated()
        edge.start(umask=0o000)
        # Counted at the edge (answered from its copy, no Via), so the scan goes through its outbox.
        wait_until(lambda: "via" not in httpx.get(f"{edge.url}/c/edge-card", headers={"User-Agent": PHONE_UA}).headers,
                   what="the edge to answer from its copy")
        assert (tmp_path / "edge" / "edge-outbox.db").exists() and (tmp_path / "edge" / "copy").is_dir()
        assert open_to_others(tmp_path / "edge") == []
        assert edge.stop() == 0
        assert open_to_others(tmp_path / "edge") == []
    finally:
        for svc in (edge, primary):
            if svc.process is not None and svc.process.poll() is None:
                svc.stop()


def test_serve_restores_a_missing_database_from_the_replica(service, tmp_path):
    svc = service()
    httpx.post(f"{svc.url}/v1/auth/register", json={"email": "keep@example.com", "password": PASSWORD, "marketingConsent": False})
    # No waiting: Litestream's last sync on SIGTERM holds every acknowledged write.
    assert svc.stop() == 0
    data = tmp_path / "data"
    for leftover in data.glob("qrcontact.db*"):
        leftover.unlink()
    svc = service()
    login = httpx.post(f"{svc.url}/v1/auth/login", json={"email": "keep@example.com", "password": PASSWORD})
    assert login.status_code == 200


def test_serve_without_replication(service, tmp_path):
    svc = service(REPLICA_URL="off")
    assert httpx.get(f"{svc.url}/health").json()["checks"]["replication"] == "off"
    assert svc.stop() == 0
    assert not (tmp_path / "data" / "replica").exists()
    # The start says so when the app's SQLite is older than the WAL-reset fix (with the
    # pysqlite3 wheel installed, it is not).
    warned = "has the WAL-reset bug fixed in 3.51.3" in svc.log.read_text()
    assert warned == (sqlite3.sqlite_version_info < FIXED_VERSION)


def test_a_bad_setting_stops_the_start_with_a_message(tmp_path):
    result = subprocess.run(
        [QRCONTACT, "serve"], env={**os.environ, "DATA_DIR": str(tmp_path), "RATE_LIMIT_PER_MINUTE": "many"},
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "RATE_LIMIT_PER_MINUTE" in result.stderr


def test_migrate_command(tmp_path):
    env = {**os.environ, "DATA_DIR": str(tmp_path)}
    first = subprocess.run([QRCONTACT, "migrate"], env=env, capture_output=True, text=True, timeout=30)
    assert first.returncode == 0 and "0001_core.sql" in first.stdout
    second = subprocess.run([QRCONTACT, "migrate"], env=env, capture_output=True, text=True, timeout=30)
    assert second.returncode == 0 and "nothing pending" in second.stdout
