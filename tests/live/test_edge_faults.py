"""Scans at the edges reach the primary's counts and stats exactly once through three faults
at once (SPEC §7): the object store unreachable for 30 s, the primary stopped for 10 s
inside that window, and an edge killed with `kill -9` and restarted inside it too.

Real processes on 127.0.0.1: a primary and two edges (`qrcontact serve`), the real
`litestream`, moto_server as S3 behind tests/support/store_proxy.py, which every one of them
reaches the store through and which drops every request while the store is "down". The
faults break the servers, so this module has its own (tests/live/test_edges.py shares its set
among tests that need them whole).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.ops import replication
from tests.support.app import PHONE_UA
from tests.support.edges import TOKEN, edge_env, replica_url, served_by_the_edge
from tests.support.net import free_port
from tests.support.s3 import S3_ENV, make_bucket
from tests.support.service import QRCONTACT, Service, sign_up
from tests.support.store_proxy import StoreProxy
from tests.support.waiting import wait_until

STORE_DOWN = 30.0  # seconds the object store is unreachable
PRIMARY_DOWN = 10.0  # seconds the primary is stopped, inside the store's outage
STOP_GRACE = 3.0  # seconds a stopping primary gets before SIGKILL
START_GRACE = replication.START_GRACE  # seconds a starting primary waits for Litestream
SCAN_EVERY = 0.2  # a scanner's pace at each edge


class Scanner:
    """Scans /c/{slug} at one edge with a phone's User-Agent until stopped, keeping every
    answer: (when, status, who answered: "edge" from its copy, "primary" through it)."""

    def __init__(self, url: str, slug: str) -> None:
        self.url = f"{url}/c/{slug}"
        self.answers: list[tuple[float, int, str]] = []
        self._go = threading.Event()
        self._resting = threading.Event()
        self._stopped = threading.Event()
        self._go.set()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(headers={"User-Agent": PHONE_UA}, timeout=10) as client:
            while not self._stopped.is_set():
                if not self._go.is_set():
                    self._resting.set()
                    self._go.wait()
                    continue
                try:
                    r = client.get(self.url)
                    self.answers.append((time.time(), r.status_code, "edge" if served_by_the_edge(r) else "primary"))
                except httpx.HTTPError:
                    self.answers.append((time.time(), 0, "none"))  # the edge itself is down (killed)
                self._stopped.wait(SCAN_EVERY)  # the pace, not a wait for anything
        self._resting.set()

    def pause(self) -> None:
        """Stop scanning; returns once no scan is in flight."""
        self._resting.clear()
        self._go.clear()
        assert self._resting.wait(30), "the scanner did not pause"

    def resume(self) -> None:
        self._go.set()

    def stop(self) -> None:
        self._stopped.set()
        self._go.set()
        self._thread.join(30)

    def acknowledged(self, by: str | None = None) -> list[float]:
        """When each 302 came (all of them, or only those answered `by` the edge or the primary)."""
        return [at for at, status, who in self.answers if status == 302 and by in (None, who)]


def metric(url: str, name: str) -> float:
    """A sample's value from a server's /metrics (0 when absent)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples if s.name == name)


def stop_primary(primary: Service) -> str:
    """SIGTERM, then SIGKILL after a grace period, as a platform stops a Machine (Fly:
    kill_timeout). With the store unreachable the app shuts down at once but Litestream's
    last sync waits for the store (longer than 30 s here), so the grace usually runs out:
    what the primary had committed is in its database file either way."""
    primary.process.send_signal(signal.SIGTERM)
    wait_until(lambda: answer(f"{primary.url}/health") is None, timeout=30, what="the primary to stop answering")
    try:
        primary.process.wait(timeout=STOP_GRACE)
        return "SIGTERM"
    except subprocess.TimeoutExpired:
        os.killpg(primary.process.pid, signal.SIGKILL)
        primary.process.wait(timeout=30)
        return "SIGKILL after the grace"


def start_edge(edge: Service) -> None:
    """Start an edge process without waiting for /health 200 (with the store down it has no copy)."""
    edge.process = subprocess.Popen(
        [QRCONTACT, "serve"], env=edge.env, stdout=open(edge.log, "a"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    wait_until(lambda: answer(f"{edge.url}/health") is not None, timeout=30, what="the edge to listen")


def answer(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return None


@pytest.fixture
def regions_behind_a_proxy(s3_endpoint, tmp_path) -> Iterator[tuple[StoreProxy, Service, list[Service], dict]]:
    make_bucket(s3_endpoint, "faults")
    store = StoreProxy(s3_endpoint)
    replica = replica_url(store.url, "faults")
    internal_url = f"http://127.0.0.1:{(internal_port := free_port())}"
    primary = Service(tmp_path / "primary", ROLE="primary", EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal_port),
                      REPLICA_URL=replica, RATE_LIMIT_PER_MINUTE="100000", **S3_ENV)
    edges = [Service(tmp_path / f"edge{n}", **edge_env(primary, internal_url, replica)) for n in (1, 2)]
    try:
        primary.start()
        headers = sign_up(primary, "faults@example.com")
        with concurrent.futures.ThreadPoolExecutor() as pool:
            list(pool.map(Service.start, edges))
        yield store, primary, edges, headers
    finally:
        store.down = False  # a primary stopping after a failure may want the store
        for svc in (primary, *edges):
            if svc.process is not None and svc.process.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    svc.stop()  # kills the process group in the end, whatever happened
        store.close()


def test_scans_at_the_edges_are_counted_once_through_a_store_outage_a_primary_stop_and_an_edge_kill(regions_behind_a_proxy):
    store, primary, edges, headers = regions_behind_a_proxy
    created = httpx.post(f"{primary.url}/v1/cards", json={"fullName": "Faults", "email": "f@example.com", "slug": "faults"},
                         headers=headers)
    assert created.status_code == 201, created.text
    card_url = f"{primary.url}/v1/cards/{created.json()['cardId']}"
    for edge in edges:
        # HEAD is answered but not counted: each edge's copy has the card before the store goes.
        wait_until(lambda edge=edge: served_by_the_edge(httpx.head(f"{edge.url}/c/faults")), timeout=60,
                   what="the edge's copy to have the card")
    scanners = [Scanner(edge.url, "faults") for edge in edges]
    doomed = edges[1]
    try:
        store.down = True
        store_down_at = time.monotonic()
        # The primary's stop: PRIMARY_DOWN seconds in the middle of the store's outage, and
        # its start while the store is still unreachable (it serves after
        # replication.START_GRACE without Litestream's first sync, which waits for the store).
        time.sleep(STORE_DOWN - PRIMARY_DOWN - START_GRACE)  # the fault window itself
        primary_down_at = time.monotonic()
        stopped_by = stop_primary(primary)
        # The primary is down: a known card still redirects from the edge's copy (the point
        # of edges); a slug the copy does not know gets a 503 page with Retry-After, not a 502.
        known = httpx.get(f"{edges[0].url}/c/faults", headers={"User-Agent": PHONE_UA})
        assert known.status_code == 302 and served_by_the_edge(known)
        probes = [time.time()]  # a counted scan too
        unknown = httpx.get(f"{edges[0].url}/c/not-on-the-copy", headers={"User-Agent": PHONE_UA})
        assert (unknown.status_code, unknown.headers["retry-after"]) == (503, "10")
        assert unknown.headers["content-type"].startswith("text/html")

        # The kill: SPEC §7 allows a hard kill to lose the last second (what the counters
        # hold in memory). Here nothing may be lost: the edge's scanner pauses, and the kill
        # comes only once the edge's flushes have written every scan it counted into its
        # outbox file (counter_flush_events_sum, events written by flushes, reaches the
        # scans it answered from its copy). Its file then holds batches the primary has not seen.
        after_the_stop = len(scanners[1].acknowledged()) + 3  # so its outbox holds batches the primary never saw
        wait_until(lambda: len(scanners[1].acknowledged()) >= after_the_stop, timeout=30, what="scans after the stop")
        scanners[1].pause()
        counted_here = len(scanners[1].acknowledged("edge"))
        wait_until(lambda: metric(doomed.url, "counter_flush_events_sum") == counted_here, timeout=30,
                   what="the doomed edge's last flush")
        assert metric(doomed.url, "edge_outbox_depth") >= 1
        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=30)
        # Restarted with the store still down it cannot restore a copy: it is not healthy,
        # and its scans go to the primary (a 503 page while that is down too).
        start_edge(doomed)
        assert answer(f"{doomed.url}/health").status_code == 503
        scanners[1].resume()

        time.sleep(max(0.0, PRIMARY_DOWN - (time.monotonic() - primary_down_at)))  # the fault windows themselves
        primary.start()  # with the store still down
        primary_was_down = time.monotonic() - primary_down_at
        assert store.down and answer(f"{primary.url}/health").status_code == 200
        time.sleep(max(0.0, STORE_DOWN - (time.monotonic() - store_down_at)))
        store.down = False
        store_was_down = time.monotonic() - store_down_at
        print(f"store down {store_was_down:.1f} s, primary down {primary_was_down:.1f} s (stopped by {stopped_by})")

        # The restarted edge restores its copy from the store and answers from it again.
        wait_until(lambda: answer(f"{doomed.url}/health").status_code == 200, timeout=90, what="the restarted edge's copy")
        wait_until(lambda: len(scanners[1].acknowledged("edge")) > counted_here, timeout=60,
                   what="the restarted edge to answer from its copy")
    finally:
        for scanner in scanners:
            scanner.stop()

    acknowledged = sorted([*probes, *(at for scanner in scanners for at in scanner.acknowledged())])
    expected = len(acknowledged)
    # Every scan was answered, at one edge or the other, in each part of the run.
    assert all(scanner.acknowledged("edge") for scanner in scanners)
    # The restarted edge, without a copy while the store was down, sent its scans to the
    # primary: the 503 page while that was down too (not acknowledged, so not expected).
    assert any(status == 503 for _, status, _ in scanners[1].answers)
    print({n: collections.Counter((status, who) for _, status, who in scanner.answers) for n, scanner in enumerate(scanners)})

    def counts() -> tuple[int, dict]:
        return (httpx.get(card_url, headers=headers).json()["scanCount"],
                httpx.get(f"{card_url}/stats", headers=headers).json())

    wait_until(lambda: counts()[0] >= expected and counts()[1]["totals"]["scans"] >= expected, timeout=90,
               what="the edges' scans at the primary")
    # Once both outboxes are empty, nothing more can arrive: a batch sent again after a
    # lost acknowledgement would show here as a double count.
    for edge in edges:
        wait_until(lambda edge=edge: metric(edge.url, "edge_outbox_depth") == 0, timeout=60, what="the outbox to drain")
    scan_count, stats = counts()
    assert (scan_count, stats["totals"]) == (expected, {"scans": expected, "views": 0, "saves": 0})
    per_day = {day["date"]: day["scans"] for day in stats["daily"] if day["scans"]}
    days = collections.Counter(datetime.fromtimestamp(at, UTC).date().isoformat() for at in acknowledged)
    if len(days) == 1:
        assert per_day == days
    else:  # the run crossed midnight: a scan at its edge is dated by the server's clock
        assert sum(per_day.values()) == expected and set(per_day) <= set(days)
