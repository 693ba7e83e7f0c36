"""The failover drill (SPEC §11) with real processes, for tests/live/test_failover.py and
bench/failover.py: a primary and two edges, each a `qrcontact serve` on 127.0.0.1 sharing
a replica on S3 (moto); the primary killed with SIGKILL and its data folder deleted while
cards are written at it and scans run at the second edge; `qrcontact promote` on the
first edge. Returns its figures; asserts what SPEC §11 promises."""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.app import PHONE_UA
from tests.support.edges import TOKEN, edge_env, replica_url, served_by_the_edge
from tests.support.net import free_port
from tests.support.s3 import S3_ENV, make_bucket
from tests.support.service import QRCONTACT, Service, sign_up
from tests.support.waiting import wait_until

# Every node verifies the tokens the others signed: one JWT_SECRET (kept outside the platform).
# A scan counted at an edge is on the replica within this after it was answered (flush
# each second, shipped, applied, uploaded within the next second).
SCAN_RPO = 2.5
SHARED = {"JWT_SECRET": secrets.token_urlsafe(32), "RATE_LIMIT_PER_MINUTE": "100000"}


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
        self.ok = 0
        self.times: list[float] = []  # monotonic time of each answered scan
        self.failed: list[object] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10, headers={"User-Agent": PHONE_UA}) as client:
            while not self.stopping.is_set():
                try:
                    r = client.get(f"{self.url}/c/{self.slug}")
                    if r.status_code == 302:
                        self.ok += 1
                        self.times.append(time.monotonic())
                    else:
                        self.failed.append(r.status_code)
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))
                self.stopping.wait(0.02)

    def finish(self) -> None:
        self.stopping.set()
        self.join()


@dataclass
class Figures:
    rto: float = 0.0  # kill to the first write accepted at the promoted edge
    rpo: float = 0.0  # the oldest lost acknowledgement, seconds before the kill (0: none lost)
    written: int = 0
    lost: int = 0
    scans: int = 0  # at the second edge, from before the kill to after the promote
    scans_lost: int = 0  # shipped to the old primary in its last seconds
    failed_scans: list = field(default_factory=list)
    old_primary_role: str = ""


def scan_count(url: str, headers: dict[str, str], card_id: str) -> int:
    r = httpx.get(f"{url}/v1/cards/{card_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["scanCount"]


def write_once(url: str, headers: dict[str, str]) -> httpx.Response | None:
    try:
        r = httpx.post(f"{url}/v1/cards", json={"fullName": "After", "email": "a@example.com"}, headers=headers, timeout=2)
    except httpx.HTTPError:
        return None
    return r if r.status_code == 201 else None


def drill(root: Path, s3_endpoint: str, bucket: str, old_primary_back: bool = True) -> Figures:
    """Run the drill once under `root` with a new bucket; every server it started is stopped on return."""
    root.mkdir(parents=True, exist_ok=True)
    make_bucket(s3_endpoint, bucket)
    replica = replica_url(s3_endpoint, bucket)
    internal = free_port()
    primary_env = dict(ROLE="primary", EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal), REPLICA_URL=replica, **S3_ENV, **SHARED)
    primary = Service(root / "primary", **primary_env)
    started = [primary]
    figures = Figures()
    try:
        primary.start()
        headers = sign_up(primary, "failover@example.com")
        edges = edge_env(primary, f"http://127.0.0.1:{internal}", replica)
        first = Service(root / "edge1", **edges, INTERNAL_PORT=str(free_port()), **SHARED)
        second = Service(root / "edge2", **edges, **SHARED)
        started += [first.start(), second.start()]
        made = httpx.post(f"{primary.url}/v1/cards", json={"fullName": "Scanned", "email": "s@example.com", "slug": "scanned"},
                          headers=headers)
        assert made.status_code == 201, made.text
        card_id = made.json()["cardId"]
        wait_until(lambda: served_by_the_edge(httpx.head(f"{second.url}/c/scanned")),  # HEAD: nothing counted
                   what="the second edge to answer from its copy")

        # Cards written at the primary and scans at the second edge, through the kill.
        writer, scanner = Writer(primary.url, headers), Scanner(second.url, "scanned")
        writer.start()
        scanner.start()
        wait_until(lambda: len(writer.acked) >= 20 and scanner.ok >= 20, what="writes and scans under way")
        primary.stop(signal.SIGKILL)
        killed = time.monotonic()
        shutil.rmtree(primary.data_dir)
        writer.stopping.set()
        promoted = subprocess.run([QRCONTACT, "promote"], env=first.env, capture_output=True, text=True, timeout=60)
        assert promoted.returncode == 0, promoted.stdout + promoted.stderr
        written = wait_until(lambda: write_once(first.url, headers), timeout=60, every=0.1,
                             what="the promoted edge to accept writes")
        figures.rto = time.monotonic() - killed
        assert written.headers.get("via") is None  # written there, not proxied

        # Every card acknowledged more than 1 s before the kill is at the new primary.
        lost = [killed - at for at, cid in writer.acked
                if httpx.get(f"{first.url}/v1/cards/{cid}", headers=headers).status_code != 200]
        figures.written, figures.lost, figures.rpo = len(writer.acked), len(lost), max(lost, default=0.0)
        assert figures.rpo <= 1.0, f"a card acknowledged {figures.rpo:.2f} s before the kill is lost"

        # The second edge's scans never failed, and none is counted twice at the new primary;
        # only those shipped to the old primary in its last moments may be missing, as any
        # write acknowledged there then: a scan is flushed within 1 s and on the replica
        # within 1 s after its batch is applied.
        wait_until(lambda: served_by_the_edge(httpx.head(f"{second.url}/c/scanned")), timeout=60,
                   what="the second edge to answer from a copy of the new primary's")
        scanner.finish()
        figures.scans, figures.failed_scans = scanner.ok, scanner.failed
        assert scanner.failed == []
        at_risk = sum(1 for at in scanner.times if killed - SCAN_RPO < at <= killed)
        counted = wait_until(
            lambda: (n := scan_count(first.url, headers, card_id)) >= scanner.ok - at_risk and n, timeout=30,
            what=f"the new primary to count the second edge's {scanner.ok} scans (up to {at_risk} lost with the old one)",
        )
        figures.scans_lost = scanner.ok - counted
        assert counted <= scanner.ok, f"{counted} counted for {scanner.ok} scans: some counted twice"

        if old_primary_back:
            # The old primary, started again on a fresh disk, does not write: an edge of the new one.
            again = Service(root / "primary", **primary_env)
            again.port, again.url = primary.port, primary.url
            again.env.update(PORT=str(primary.port), PUBLIC_BASE_URL=primary.url)
            started.append(again.start())
            figures.old_primary_role = httpx.get(f"{again.url}/health").json()["role"]
            assert figures.old_primary_role == "edge"
            through = httpx.post(f"{again.url}/v1/cards", json={"fullName": "Through", "email": "t@example.com"}, headers=headers)
            assert through.status_code == 201 and through.headers["via"] == "1.1 qrcontact-edge"
        return figures
    finally:
        for svc in started:
            if svc.process is not None and svc.process.poll() is None:
                svc.stop(signal.SIGKILL)
