"""Replication with the real `litestream` binary: what survives a kill, a stop, a lost
volume, and a round trip through S3-compatible storage (moto_server on loopback)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import certifi
import httpx
import pytest

from app.db import Database
from app.ops import replication
from app.ops.replication import ltx_files, meta_dir
from app.sqlite import sqlite3
from tests.support.app import PASSWORD, PHONE_UA, make_settings
from tests.support.s3 import S3_ENV, make_bucket
from tests.support.service import QRCONTACT, Service, sign_up

# How long the lag test keeps the replica unwritable: the lag must have grown by this much.
STUCK_FOR = 3.0


class Deployment:
    """A data folder (the volume) and a replica that outlives it, and serve processes on them."""

    def __init__(self, root: Path, replica_url: str | None = None, **env: str) -> None:
        self.data = root / "data"
        self.replica = root / "replica"
        # The writes here come faster than the default API rate limit allows.
        self.env = {"REPLICA_URL": replica_url or f"file://{self.replica}", "RATE_LIMIT_PER_MINUTE": "100000", **env}
        self.started: list[Service] = []
        self.headers: dict[str, str] = {}

    def serve(self) -> Service:
        svc = Service(self.data, **self.env).start()
        self.started.append(svc)
        return svc

    def command(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "DATA_DIR": str(self.data), **self.env}
        return subprocess.run([QRCONTACT, *args], env=env, capture_output=True, text=True, timeout=120)

    def lose_volume(self) -> None:
        shutil.rmtree(self.data)

    def cards_on_disk(self) -> set[str]:
        conn = sqlite3.connect(self.data / "qrcontact.db")
        try:
            return {slug for (slug,) in conn.execute("SELECT slug FROM cards")}
        finally:
            conn.close()

    def stop_all(self) -> None:
        for svc in self.started:
            if svc.process and svc.process.poll() is None:
                svc.stop(signal.SIGKILL)


@pytest.fixture
def deployment(tmp_path) -> Iterator[callable]:
    made: list[Deployment] = []

    def make(**kwargs) -> Deployment:
        made.append(Deployment(tmp_path, **kwargs))
        return made[-1]

    yield make
    for d in made:
        d.stop_all()


def log_in(svc: Service, email: str = "owner@example.com") -> dict[str, str]:
    response = httpx.post(f"{svc.url}/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['accessToken']}"}


def write_card(svc: Service, headers: dict[str, str], slug: str) -> float:
    """Create a card; returns when its 201 arrived (the write is acknowledged)."""
    response = httpx.post(f"{svc.url}/v1/cards", json={"fullName": "Kept", "email": "kept@example.com", "slug": slug}, headers=headers)
    assert response.status_code == 201, response.text
    return time.monotonic()


def test_sigkill_loses_nothing_the_replica_confirmed(deployment):
    d = deployment()
    svc = d.serve()
    headers = sign_up(svc)
    confirmed = [f"card-{i}" for i in range(10)]
    for slug in confirmed:
        write_card(svc, headers, slug)
    svc.wait_until_replicated()
    # More writes, then Litestream and the app killed at once, mid-stream: what the replica
    # had confirmed survives the lost volume; the newest writes may or may not (the window
    # is measured by bench/soak_sigkill.py --lost-window, not here).
    later = [f"later-{i}" for i in range(10)]
    for slug in later:
        write_card(svc, headers, slug)
    svc.stop(signal.SIGKILL)
    d.lose_volume()

    restored = d.command("restore")
    assert restored.returncode == 0, restored.stderr
    on_replica = d.cards_on_disk()
    assert set(confirmed) <= on_replica
    # Nothing is invented, and what survived of the later writes has no hole: a prefix.
    survivors = on_replica - set(confirmed)
    assert survivors == set(later[:len(survivors)])


def test_sigterm_right_after_writes_loses_nothing(deployment):
    d = deployment()
    svc = d.serve()
    headers = sign_up(svc)
    slugs = [f"last-{i}" for i in range(10)]
    for slug in slugs:
        write_card(svc, headers, slug)
    # Counted in memory, written by the app's shutdown: it must still reach the replica.
    assert httpx.get(f"{svc.url}/c/last-9", headers={"User-Agent": PHONE_UA}).status_code == 302
    assert svc.stop(signal.SIGTERM) == 0
    log = svc.log.read_text()
    # The order of the shutdown: the app drains and exits, then Litestream's last sync.
    assert log.index("Application shutdown complete") < log.index("litestream shut down")
    d.lose_volume()

    restored = d.command("restore")
    assert restored.returncode == 0, restored.stderr
    assert set(slugs) <= d.cards_on_disk()
    conn = sqlite3.connect(d.data / "qrcontact.db")
    assert conn.execute("SELECT scan_count FROM cards WHERE slug = 'last-9'").fetchone() == (1,)
    conn.close()


def test_an_empty_data_folder_is_restored_at_start_and_replication_goes_on(deployment):
    d = deployment()
    svc = d.serve()
    headers = sign_up(svc)
    write_card(svc, headers, "before-loss")
    assert svc.stop() == 0
    d.lose_volume()

    # A fresh volume: serve restores before the app starts, and keeps replicating after.
    svc = d.serve()
    headers = log_in(svc)
    listed = httpx.get(f"{svc.url}/v1/cards", headers=headers).json()["items"]
    assert [c["slug"] for c in listed] == ["before-loss"]
    write_card(svc, headers, "after-restore")
    assert svc.stop() == 0
    d.lose_volume()
    assert d.command("restore").returncode == 0
    assert d.cards_on_disk() == {"before-loss", "after-restore"}


def test_restore_to_a_point_in_time(deployment):
    d = deployment()
    svc = d.serve()
    headers = sign_up(svc)
    write_card(svc, headers, "early")
    svc.wait_until_replicated()
    # After "early" is on the replica and before "late" is written (RFC 3339 with a fraction).
    between = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    write_card(svc, headers, "late")
    assert svc.stop() == 0

    result = d.command("restore", "--timestamp", between)
    assert result.returncode == 0, result.stderr
    assert d.cards_on_disk() == {"early"}
    assert d.command("restore").returncode == 0
    assert d.cards_on_disk() == {"early", "late"}


def test_restore_refuses_while_the_service_runs(deployment):
    d = deployment()
    d.serve()
    result = d.command("restore")
    assert result.returncode == 1
    assert "running" in result.stderr


def test_verify_backup_checks_the_replica_and_fails_on_damage(deployment):
    d = deployment()
    nothing = d.command("verify-backup")
    assert nothing.returncode == 1 and "litestream restore failed" in nothing.stderr

    svc = d.serve()
    write_card(svc, sign_up(svc), "checked")
    assert svc.stop() == 0
    ok = d.command("verify-backup")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "integrity_check: ok"

    # Flip bytes in the middle of every file on the replica: its checksums catch it.
    for ltx in (d.replica / "ltx").rglob("*.ltx"):
        raw = bytearray(ltx.read_bytes())
        middle = len(raw) // 2
        raw[middle:middle + 8] = bytes(b ^ 0xFF for b in raw[middle:middle + 8])
        ltx.write_bytes(bytes(raw))
    damaged = d.command("verify-backup")
    assert damaged.returncode != 0


def test_health_reports_litestream_and_a_lag_that_grows_while_the_replica_cannot_be_written(deployment):
    d = deployment()
    svc = d.serve()
    headers = sign_up(svc)
    write_card(svc, headers, "first")
    replication = wait_for(svc, lambda r: r["lagSeconds"] == 0)
    assert replication == {"enabled": True, "litestreamRunning": True, "lagSeconds": 0}

    # The replica's folder becomes a file: Litestream can no longer write there.
    shutil.rmtree(d.replica)
    d.replica.write_text("not a folder")
    written = time.monotonic()
    write_card(svc, headers, "stuck")
    time.sleep(STUCK_FOR)  # time passing is the point here, not a wait for work
    health = httpx.get(f"{svc.url}/health").json()
    assert health["status"] == "ok"  # a lagging replica is for alerts, not for restarts
    assert health["replication"]["lagSeconds"] >= STUCK_FOR
    assert health["replication"]["lagSeconds"] <= time.monotonic() - written + 0.1
    assert scrape(svc, "replication_lag_seconds") >= STUCK_FOR

    d.replica.unlink()
    wait_for(svc, lambda r: r["lagSeconds"] == 0)
    assert svc.stop() == 0
    d.lose_volume()
    assert d.command("restore").returncode == 0
    assert d.cards_on_disk() == {"first", "stuck"}


def test_a_commit_litestream_cut_before_the_app_ran_again_is_no_lag(tmp_path, monkeypatch):
    """The lag counts a commit from the moment its COMMIT is sent. Under a crowd of scans the
    loop may resume the committing coroutine only after Litestream has cut the commit into a
    file; a moment read then was later than that file, which did not count as holding the
    commit, and /health read a lag of a second or more (bench/scanners.py's bound missed)
    that held until some later commit was replicated."""
    settings = make_settings(tmp_path / "data", replica_url=f"file://{tmp_path / 'replica'}")
    replication.prepare(settings)
    log = tmp_path / "litestream.log"
    with open(log, "w") as output:
        litestream = subprocess.Popen(
            [replication.binary(), "replicate", "-config", str(replication.CONFIG)],
            env=replication.environment(settings), stdout=output, stderr=subprocess.STDOUT,
        )
    monkeypatch.setenv(replication.SOCKET_VARIABLE, str(replication.control_socket(settings)))
    local = meta_dir(settings.database_path) / "ltx" / "0"

    def newest_cut() -> int:
        return max((txid for txid, _ in ltx_files(local)), default=0)

    async def scenario() -> float | None:
        db = Database(settings.database_path, replicated=True)
        await db.open()
        try:
            await replication.wait_until_replicating(settings, timeout=60)
            before = newest_cut()

            def hold_the_loop_until_litestream_cuts_the_commit() -> None:
                deadline = time.monotonic() + 30
                while newest_cut() == before and time.monotonic() < deadline:
                    time.sleep(0.01)
                # And a little longer, as a loop busy with scans would be: a moment read
                # now is well past the file's time, whatever allowance the monitor makes.
                time.sleep(0.1)

            async with db.write() as tx:
                # A new value: SQLite writes no page for a row set to what it holds.
                await tx.conn.execute("UPDATE migrations SET applied_at = ?", (datetime.now(UTC).isoformat(),))
                # Runs at the loop's next turn, once COMMIT is on its way to the writer's thread.
                asyncio.get_running_loop().call_soon(hold_the_loop_until_litestream_cuts_the_commit)
            cut = newest_cut()
            assert cut > before, log.read_text()
            monitor = replication.LagMonitor(settings, db)
            deadline = time.monotonic() + 30
            while (monitor.replica_txid or 0) < cut:  # until the file is on the replica
                assert time.monotonic() < deadline, f"the replica never held TXID {cut}:\n{log.read_text()}"
                await monitor.check()
                await asyncio.sleep(0.05)
            return monitor.lag()
        finally:
            await db.close()

    try:
        assert asyncio.run(scenario()) == 0.0
    finally:
        litestream.terminate()
        try:
            litestream.wait(timeout=30)
        except subprocess.TimeoutExpired:
            litestream.kill()
            litestream.wait()


def wait_for(svc: Service, condition, timeout: float = 30) -> dict:
    """Poll /health until its replication part meets `condition`; returns that part."""
    deadline = time.monotonic() + timeout
    while True:
        replication = httpx.get(f"{svc.url}/health").json()["replication"]
        if condition(replication):
            return replication
        if time.monotonic() > deadline:
            raise AssertionError(f"replication never got there: {replication}")
        time.sleep(0.2)


def scrape(svc: Service, name: str) -> float:
    text = httpx.get(f"{svc.url}/metrics").text
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


# --- S3-compatible storage -------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["AWS", "LITESTREAM"])
def test_s3_round_trip(deployment, s3_endpoint, prefix):
    bucket = f"qrcontact-{prefix.lower()}"
    make_bucket(s3_endpoint, bucket)
    url = f"s3://{bucket}/prod/db?endpoint={s3_endpoint}&region=us-east-1&forcePathStyle=true"
    credentials = {f"{prefix}_ACCESS_KEY_ID": "test", f"{prefix}_SECRET_ACCESS_KEY": "test"}
    # An AWS_CA_BUNDLE meant for other tools breaks Litestream's S3 client: serve,
    # restore and verify-backup must not hand it over.
    d = deployment(replica_url=url, AWS_CA_BUNDLE=certifi.where(), **credentials)
    svc = d.serve()
    headers = sign_up(svc)
    for i in range(5):
        write_card(svc, headers, f"s3-{i}")
    assert svc.stop(signal.SIGTERM) == 0
    d.lose_volume()

    assert d.command("verify-backup").stdout.strip() == "integrity_check: ok"
    svc = d.serve()  # restores the empty volume from the bucket
    listed = httpx.get(f"{svc.url}/v1/cards", params={"limit": 100}, headers=log_in(svc)).json()["items"]
    assert sorted(c["slug"] for c in listed) == [f"s3-{i}" for i in range(5)]
    assert httpx.get(f"{svc.url}/health").json()["replication"]["litestreamRunning"] is True


def test_s3_replica_lag_is_measured_from_the_bucket(deployment, s3_endpoint):
    make_bucket(s3_endpoint, "qrcontact-lag")
    url = f"s3://qrcontact-lag/db?endpoint={s3_endpoint}&region=us-east-1&forcePathStyle=true"
    d = deployment(replica_url=url, **S3_ENV)
    svc = d.serve()
    write_card(svc, sign_up(svc), "lagged")
    # The app looks at a bucket every 10 s: the lag shows, then clears.
    seen = wait_for(svc, lambda r: r["lagSeconds"] > 0)
    assert seen["lagSeconds"] > 0
    wait_for(svc, lambda r: r["lagSeconds"] == 0, timeout=40)


def test_a_start_with_nothing_committed_yet_reports_no_lag(deployment, s3_endpoint):
    """The app looks at a bucket every 10 s; before its first look and before its first
    commit nothing waits for the replica: 0, not the age of the Unix epoch."""
    make_bucket(s3_endpoint, "qrcontact-fresh")
    url = f"s3://qrcontact-fresh/db?endpoint={s3_endpoint}&region=us-east-1&forcePathStyle=true"
    svc = deployment(replica_url=url, **S3_ENV).serve()
    assert httpx.get(f"{svc.url}/health").json()["replication"]["lagSeconds"] == 0
    lag = [line for line in httpx.get(f"{svc.url}/metrics").text.splitlines() if line.startswith("replication_lag_seconds ")]
    assert lag == ["replication_lag_seconds 0.0"]


# --- SIGTERM at any moment ---------------------------------------------------------------

# Seconds after the first acknowledged write at which the SIGTERM comes.
SIGTERM_MOMENTS = [0, 0.1, 0.3, 0.6, 1.0]


class Writer(threading.Thread):
    """Creates cards one after another until the service stops answering; keeps the slugs
    whose 201 arrived (the acknowledged writes)."""

    def __init__(self, svc: Service, headers: dict[str, str], prefix: str) -> None:
        super().__init__(daemon=True)
        self.svc, self.headers, self.prefix = svc, headers, prefix
        self.acknowledged: list[str] = []
        self.first = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.svc.url, headers=self.headers, timeout=30) as client:
            for i in range(100_000):
                slug = f"{self.prefix}-{i:05d}"
                try:
                    response = client.post("/v1/cards", json={"fullName": "Kept", "email": "k@example.com", "slug": slug})
                except httpx.HTTPError:
                    return  # the service is gone: what was in flight was never acknowledged
                if response.status_code != 201:
                    return  # 503 while it drains: not acknowledged either
                self.acknowledged.append(slug)
                self.first.set()


def term_at(svc: Service, headers: dict[str, str], prefix: str, moment: float) -> list[str]:
    """Write continuously, SIGTERM the service `moment` seconds after the first acknowledged
    write (the account's own registration came before it), and return the acknowledged slugs."""
    writer = Writer(svc, headers, prefix)
    writer.start()
    assert writer.first.wait(60), "no write was acknowledged"
    time.sleep(moment)  # the moment of the signal is what is tested
    assert svc.stop(signal.SIGTERM) == 0, svc.log.read_text()[-3000:]
    writer.join(60)
    return writer.acknowledged


# Every moment with a folder replica; with S3 (each case is two starts of the service) the
# first, middle and last, since what differs there is only the last upload itself.
SIGTERM_CASES = [("file", m) for m in SIGTERM_MOMENTS] + [("s3", m) for m in (0, 0.3, 1.0)]


@pytest.mark.parametrize(("replica_kind", "moment"), SIGTERM_CASES)
def test_sigterm_at_any_moment_keeps_every_acknowledged_write(deployment, request, replica_kind, moment):
    if replica_kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"term-{str(moment).replace('.', '-')}"
        make_bucket(endpoint, bucket)
        d = deployment(replica_url=f"s3://{bucket}/db?endpoint={endpoint}&region=us-east-1&forcePathStyle=true", **S3_ENV)
    else:
        d = deployment()

    # A brand-new data folder: the registration is the first write ever.
    svc = d.serve()
    headers = sign_up(svc)
    # Litestream had the database open before this first write was acknowledged (on
    # 0.5.17, before that its shutdown skips the last sync): its local state holds an LTX file.
    assert ltx_files(meta_dir(d.data / "qrcontact.db") / "ltx" / "0")
    first = term_at(svc, headers, "new", moment)
    # A restart on the folder just left behind (the access token is still valid).
    svc = d.serve()
    second = term_at(svc, headers, "restart", moment)
    assert first and second

    d.lose_volume()
    restored = d.command("restore")
    assert restored.returncode == 0, restored.stderr
    on_replica = d.cards_on_disk()
    missing = (set(first) | set(second)) - on_replica
    assert not missing, sorted(missing)[:10]


