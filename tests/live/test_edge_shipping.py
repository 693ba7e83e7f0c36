"""Scans counted at edges in processes of their own reach a live primary exactly once:
the primary stopped and started again under them, an edge killed with SIGKILL right after
a flush and restarted (SPEC §7). The edges here are the counting pipeline alone
(tests/support/edge_counting_process.py: Counters, outbox file, Shipper); tests/live/test_edges.py runs
whole edge apps.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from app.sqlite import sqlite3
from tests.support import ROOT
from tests.support.app import PASSWORD
from tests.support.edge_counting import TOKEN, copy_database
from tests.support.load import LOAD_ENV
from tests.support.net import free_port
from tests.support.service import Service
from tests.support.waiting import wait_until


class EdgeProcess:
    """tests/support/edge_counting_process.py: an edge's Counters and Shipper in a process of their own."""

    def __init__(self, data_dir: Path, primary_internal_url: str, copy: Path, slug: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.edge_counting_process", str(data_dir), primary_internal_url, TOKEN, str(copy), slug],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(data_dir.parent / f"{data_dir.name}.log", "a"),
            text=True, cwd=ROOT,
        )

    def ask(self, command: str) -> str:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        assert answer, f"the edge process ended (exit {self.process.poll()})"
        return answer

    def scan(self, n: int) -> None:
        assert self.ask(f"scan {n}").startswith("durable ")

    def failures(self) -> int:
        return int(self.ask("status").split()[3])

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        self.process.stdin.close()
        return self.process.wait(timeout=30)


def test_two_edge_processes_count_exactly_once_across_a_primary_restart_and_a_kill(tmp_path):
    """A live primary (`qrcontact serve`) stopped with SIGTERM (it drains both ports and
    exits 0) and started again while two edge processes keep counting, one of them killed
    with SIGKILL right after a flush and restarted meanwhile."""
    internal_port = free_port()
    primary = Service(tmp_path / "primary", REPLICA_URL="off", EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal_port),
                      **LOAD_ENV).start()
    internal_url = f"http://127.0.0.1:{internal_port}"
    edges: list[EdgeProcess] = []
    try:
        refused = httpx.post(f"{internal_url}/internal/scan-batches", json={}, headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401
        auth = httpx.post(f"{primary.url}/v1/auth/register", json={"email": "edges@example.com", "password": PASSWORD,
                                                                      "marketingConsent": False}).json()
        httpx.post(f"{primary.url}/v1/cards", json={"fullName": "Edge", "email": "edges@example.com", "slug": "two-edges"},
                   headers={"Authorization": f"Bearer {auth['accessToken']}"}).raise_for_status()
        copy = copy_database(tmp_path / "primary" / "qrcontact.db", tmp_path / "copy.db")
        database = tmp_path / "primary" / "qrcontact.db"

        def counted() -> tuple[int, int]:
            conn = sqlite3.connect(database)
            try:
                return conn.execute("""SELECT scan_count, (SELECT coalesce(sum(hits), 0) FROM scan_events)
                    FROM cards WHERE slug = 'two-edges'""").fetchone()
            finally:
                conn.close()

        a, b = (EdgeProcess(tmp_path / name, internal_url, copy, "two-edges") for name in ("edge-a", "edge-b"))
        edges += [a, b]
        a.scan(30)
        b.scan(20)
        wait_until(lambda: counted() == (50, 50), what="the first scans at the primary")
        assert primary.stop() == 0
        a.scan(15)
        b.scan(25)
        wait_until(lambda: a.failures() >= 1 and b.failures() >= 1, what="both edges failing to ship")
        a.kill()  # right after its flush: its 15 scans are in its outbox file, not shipped
        a = EdgeProcess(tmp_path / "edge-a", internal_url, copy, "two-edges")
        edges.append(a)
        assert int(a.ask("status").split()[1]) >= 1  # the killed edge's batches, found in its file
        a.scan(5)
        assert counted() == (50, 50)
        primary.start()
        wait_until(lambda: counted() == (95, 95), what="every scan at the primary once")
        # The primary has committed the last batch; its 200 reaches the edge right after.
        wait_until(lambda: [a.ask("status"), b.ask("status")] == ["depth 0 failures 0"] * 2, what="both outboxes empty")
        assert a.stop() == 0 and b.stop() == 0
    finally:
        for edge in edges:
            if edge.process.poll() is None:
                edge.kill()
        if primary.process and primary.process.poll() is None:
            primary.stop()
    assert counted() == (95, 95)
