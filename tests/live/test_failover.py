"""Failover by one command (SPEC §11) with real processes: a primary and two edges, each a
`qrcontact serve` on 127.0.0.1 sharing a replica on moto_server as S3. The primary is
killed with SIGKILL and its data folder deleted while cards are being written at it and
scans run at the second edge; `qrcontact promote` on the first edge makes it the primary.
bench/failover.py runs the same drill and prints its figures.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import threading
import time

import httpx

from app.ops import failover
from tests.support.app import PHONE_UA
from tests.support.edges import TOKEN, edge_env, replica_url, served_by_the_edge
from tests.support.net import free_port
from tests.support.s3 import S3_ENV, make_bucket
from tests.support.service import QRCONTACT, Service, sign_up
from tests.support.waiting import wait_until

JWT = {"JWT_SECRET": secrets.token_urlsafe(32), "RATE_LIMIT_PER_MINUTE": "100000"}


class Writer(threading.Thread):
    """Creates cards at `url` one after another; remembers when each was acknowledged."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.headers = url, headers
        self.acked: list[tuple[float, str]] = []  # (monotonic time of the 201, cardId)
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self.stopping.is_set():
                try:
                    r = client.post(f"{self.url}/v1/cards", json={"fullName": "Written", "email": "w@example.com"},
                                    headers=self.headers)
                except httpx.HTTPError:
                    return  # the primary is gone
                if r.status_code == 201:
                    self.acked.append((time.monotonic(), r.json()["cardId"]))
                self.stopping.wait(0.02)


class Scanner(threading.Thread):
    """Scans one card at an edge as a phone does, until stopped; counts the answers."""

    def __init__(self, url: str, slug: str) -> None:
        super().__init__(daemon=True)
        self.url, self.slug = url, slug
        self.ok, self.failed = 0, []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10, headers={"User-Agent": PHONE_UA}) as client:
            while not self.stopping.is_set():
                try:
                    r = client.get(f"{self.url}/c/{self.slug}")
                    if r.status_code == 302:
                        self.ok += 1
                    else:
                        self.failed.append(r.status_code)
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))
                self.stopping.wait(0.02)


def scan_count(headers: dict[str, str], url: str, card_id: str) -> int:
    r = httpx.get(f"{url}/v1/cards/{card_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["scanCount"]


def test_promote_an_edge_after_the_primary_and_its_disk_are_lost(s3_endpoint, tmp_path):
    make_bucket(s3_endpoint, "failover")
    replica = replica_url(s3_endpoint, "failover")
    internal = free_port()
    primary_env = dict(ROLE="primary", EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal), REPLICA_URL=replica, **S3_ENV, **JWT)
    primary = Service(tmp_path / "primary", **primary_env)
    started = [primary]
    try:
        primary.start()
        headers = sign_up(primary, "failover@example.com")
        edge_settings = edge_env(primary, f"http://127.0.0.1:{internal}", replica)
        first = Service(tmp_path / "edge1", **edge_settings, INTERNAL_PORT=str(free_port()), **JWT).start()
        second = Service(tmp_path / "edge2", **edge_settings, **JWT).start()
        started += [first, second]
        made = httpx.post(f"{primary.url}/v1/cards", json={"fullName": "Scanned", "email": "s@example.com", "slug": "scanned"},
                          headers=headers)
        assert made.status_code == 201, made.text
        card = made.json()
        wait_until(lambda: served_by_the_edge(httpx.head(f"{second.url}/c/scanned", headers={"User-Agent": PHONE_UA})),
                   what="the second edge to answer from its copy")  # HEAD: nothing counted

        # Scans at the second edge before the kill, all of them applied at the primary and
        # on the replica; then the writer at the primary and the scans again, through the kill.
        scanner = Scanner(second.url, "scanned")
        scanner.start()
        wait_until(lambda: scanner.ok >= 20, what="some scans at the second edge")
        scanner.stopping.set()
        scanner.join()
        wait_until(lambda: scan_count(headers, primary.url, card["cardId"]) == scanner.ok, timeout=30,
                   what="the primary to count the second edge's scans")
        before = scanner.ok
        primary.wait_until_replicated()
        writer = Writer(primary.url, headers)
        writer.start()
        wait_until(lambda: len(writer.acked) >= 30, what="cards written at the primary")
        scanner = Scanner(second.url, "scanned")
        scanner.start()

        primary.stop(signal.SIGKILL)
        killed = time.monotonic()
        shutil.rmtree(primary.data_dir)
        writer.stopping.set()
        promoted = subprocess.run([QRCONTACT, "promote"], env=first.env, capture_output=True, text=True, timeout=60)
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        written = wait_until(
            lambda: _write(first.url, headers), timeout=60, every=0.1, what="the promoted edge to accept writes",
        )
        rto = time.monotonic() - killed
        assert rto < 60 and written.headers.get("via") is None  # written there, not proxied

        # Every card acknowledged more than 1 s before the kill is at the new primary.
        for acked_at, card_id in writer.acked:
            found = httpx.get(f"{first.url}/v1/cards/{card_id}", headers=headers).status_code
            assert found == 200 or acked_at > killed - 1.0, f"card acknowledged {killed - acked_at:.2f} s before the kill is lost"
        missing = [killed - at for at, cid in writer.acked if httpx.get(f"{first.url}/v1/cards/{cid}", headers=headers).status_code != 200]
        print(f"\nRTO {rto:.1f} s (kill to a write accepted); RPO {max(missing, default=0):.2f} s "
              f"({len(missing)} of {len(writer.acked)} cards lost, all acknowledged in the last second)")

        # The second edge's scans never failed, and every one is counted once at the new primary.
        wait_until(lambda: scanner.ok >= 20, what="scans at the second edge after the promote")
        scanner.stopping.set()
        scanner.join()
        assert scanner.failed == []
        wait_until(lambda: scan_count(headers, first.url, card["cardId"]) == before + scanner.ok, timeout=30,
                   what=f"the new primary to count {before + scanner.ok} scans")

        # The old primary, started again on a fresh disk, does not write: it is an edge of the new one.
        lease = failover.LeaseStore(replica, {**S3_ENV}).read()
        assert lease is not None and lease.epoch == 1
        again = Service(tmp_path / "primary", **primary_env)
        again.port, again.url = primary.port, primary.url
        again.env.update(PORT=str(primary.port), PUBLIC_BASE_URL=primary.url)
        started.append(again.start())
        health = httpx.get(f"{again.url}/health").json()
        assert health["role"] == "edge"
        created = httpx.post(f"{again.url}/v1/cards", json={"fullName": "Through", "email": "t@example.com"}, headers=headers)
        assert created.status_code == 201 and created.headers["via"] == "1.1 qrcontact-edge"
    finally:
        for svc in started:
            if svc.process is not None and svc.process.poll() is None:
                svc.stop(signal.SIGKILL)


def _write(url: str, headers: dict[str, str]) -> httpx.Response | None:
    try:
        r = httpx.post(f"{url}/v1/cards", json={"fullName": "After", "email": "a@example.com"}, headers=headers, timeout=2)
    except httpx.HTTPError:
        return None
    return r if r.status_code == 201 else None
