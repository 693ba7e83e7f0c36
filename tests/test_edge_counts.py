"""Scans counted at an edge reach the primary exactly once (SPEC §7): the primary's internal
port and its token, batches applied once, and an edge's Counters + outbox + shipper
against a real primary (its app, database and internal port) while the primary is down,
failing, or loses acknowledgements, and after the edge is killed with SIGKILL.

The edge side here is the real pipeline without the edge's copy: `Edge` holds the
Counters writing into an outbox file and the Shipper, in the primary's event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.cards import Card
from app.config import Settings
from app.counters import Counters
from app.edge_counts import MAX_BATCH_ROWS
from app.edge_outbox import EdgeOutbox, ShipFailed, Shipper
from app.internal import MAX_BODY_BYTES, InternalServer, create_internal_app, listen_host
from app.main import create_app
from app.sqlite import sqlite3
from tests.conftest import PASSWORD, PHONE_UA, create_card, free_port, make_settings, query, register, wait_until
from tests.test_faults import LOAD_ENV
from tests.test_serve import Service

TOKEN = "edge-token-" + "e" * 40
ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Primary:
    """A primary app in process (TestClient) with its internal port on a real socket."""

    client: TestClient
    settings: Settings

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.internal_port}"

    def call(self, fn, *args):
        """Run a coroutine function in the primary's event loop (where the edge runs too)."""
        return self.client.blocking_portal.call(fn, *args)

    def card(self, slug: str) -> Card:
        card = self.call(self.client.app.state.public_cards.get, slug)
        assert isinstance(card, Card)
        return card

    def counts(self, slug: str) -> tuple[int, int]:
        ((scans, views),) = query(self.settings, "SELECT scan_count, view_count FROM cards WHERE slug = ?", (slug,))
        return scans, views

    def events(self, slug: str) -> list[tuple]:
        return query(self.settings, """SELECT kind, device_class, referrer_host, country, sum(hits) FROM scan_events
            JOIN cards ON cards.id = scan_events.card_id WHERE slug = ? GROUP BY 1, 2, 3, 4 ORDER BY 1, 2""", (slug,))


def primary_settings(data_dir: Path, **overrides) -> Settings:
    return make_settings(data_dir, edge_token=TOKEN, internal_port=free_port(), **overrides)


def edge_settings(data_dir: Path, primary_internal_url: str) -> Settings:
    return make_settings(
        data_dir, role="edge", edge_token=TOKEN, primary_internal_url=primary_internal_url,
        primary_url="http://127.0.0.1:9", replica_url="file:///unused", fly_region="syd",
    )


@pytest.fixture(scope="module")
def primary(tmp_path_factory) -> Iterator[Primary]:
    settings = primary_settings(tmp_path_factory.mktemp("primary"))
    with TestClient(create_app(settings)) as client:
        yield Primary(client, settings)


@pytest.fixture(scope="module")
def owner(primary: Primary) -> dict:
    return register(primary.client)


def copy_database(source: Path, target: Path) -> Path:
    """A copy of the primary's database, as an edge restores one (SQLite's online backup)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
    return target


class Edge:
    """An edge's counting pipeline: Counters whose sink is the outbox file, and its Shipper."""

    def __init__(self, data_dir: Path, primary_internal_url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = edge_settings(data_dir, primary_internal_url)
        self.outbox = EdgeOutbox.for_settings(self.settings)
        self.counters = Counters(self.outbox)
        self.shipper = Shipper(self.outbox, self.settings, transport)

    async def open(self) -> Edge:
        await self.outbox.open()
        return self

    async def close(self) -> None:
        await self.shipper.stop(last_try=0)
        await self.outbox.close()


# --- the internal port ---------------------------------------------------------------


def batch_body(card_id: str, seq: int = 1, outbox_id: str = "a" * 32, scans: int = 1, **extra) -> dict:
    body = {
        "outboxId": outbox_id, "seq": seq, "edge": "syd",
        "counts": [[card_id, scans, 0]],
        "events": [[card_id, "scan", "2026-11-30T04:00:00Z", "mobile", "example.com", "AU", scans]],
    }
    return {**body, **extra}


@pytest.mark.parametrize(
    ("name", "authorization", "status"),
    [
        ("no token", None, 401),
        ("wrong token", f"Bearer {'x' * len(TOKEN)}", 401),
        ("right token, wrong scheme", f"Basic {TOKEN}", 401),
        ("token with a prefix of the right one", f"Bearer {TOKEN[:-1]}", 401),
        ("right token", f"Bearer {TOKEN}", 200),
    ],
)
def test_the_internal_port_needs_the_edge_token(primary, owner, name, authorization, status):
    card = create_card(primary.client, owner["headers"])
    headers = {"Authorization": authorization} if authorization else {}
    body = batch_body(card["cardId"], outbox_id=os.urandom(16).hex())
    response = httpx.post(f"{primary.internal_url}/internal/scan-batches", json=body, headers=headers)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.headers["www-authenticate"] == "Bearer"
        assert primary.counts(card["slug"]) == (0, 0)
    else:
        assert response.json() == {"applied": True}
        assert primary.counts(card["slug"]) == (1, 0)


def test_the_internal_port_is_not_the_public_one(primary):
    # The public port has no internal endpoint; the internal port no public one.
    public = primary.client.post("/internal/scan-batches", json={}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert public.status_code == 404
    internal = httpx.get(f"{primary.internal_url}/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert internal.status_code == 404


def test_no_internal_port_without_an_edge_token(tmp_path):
    settings = make_settings(tmp_path, internal_port=free_port())
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{settings.internal_port}/")


def test_on_fly_the_internal_port_listens_on_the_private_network(tmp_path):
    assert listen_host(make_settings(tmp_path, host="0.0.0.0", fly_region="ams", primary_region="ams")) == "fly-local-6pn"
    assert listen_host(make_settings(tmp_path, host="0.0.0.0")) == "0.0.0.0"


def test_a_batch_applied_twice_counts_once(primary, owner):
    card = create_card(primary.client, owner["headers"])
    body = batch_body(card["cardId"], outbox_id=os.urandom(16).hex(), scans=3)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answers = [httpx.post(f"{primary.internal_url}/internal/scan-batches", json=body, headers=headers) for _ in range(2)]
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"applied": True}), (200, {"applied": False})]
    # An older batch of the same outbox arriving late is not applied either; the next one is.
    late = httpx.post(f"{primary.internal_url}/internal/scan-batches", json={**body, "seq": 0}, headers=headers)
    assert late.status_code == 422
    nxt = httpx.post(f"{primary.internal_url}/internal/scan-batches", json={**body, "seq": 2}, headers=headers)
    assert nxt.json() == {"applied": True}
    assert primary.counts(card["slug"]) == (6, 0)
    assert primary.events(card["slug"]) == [("scan", "mobile", "example.com", "AU", 6)]
    assert query(primary.settings, "SELECT edge, last_seq FROM edge_outboxes WHERE outbox_id = ?", (body["outboxId"],)) == [("syd", 2)]
    metrics = primary.client.get("/metrics").text
    applied = {s.labels["result"]: s.value for f in text_string_to_metric_families(metrics) for s in f.samples
               if s.name == "edge_batches_applied_total"}
    assert applied["applied"] >= 2 and applied["duplicate"] >= 1


def test_a_batch_for_a_deleted_card_is_skipped(primary, owner):
    gone = create_card(primary.client, owner["headers"])
    kept = create_card(primary.client, owner["headers"])
    assert primary.client.delete(f"/v1/cards/{gone['cardId']}", headers=owner["headers"]).status_code == 204
    body = batch_body(kept["cardId"], outbox_id=os.urandom(16).hex())
    body["counts"].append([gone["cardId"], 5, 5])
    body["events"].append([gone["cardId"], "view", "2026-11-30T04:00:00Z", "desktop", None, None, 5])
    events_before = query(primary.settings, "SELECT count(*) FROM scan_events")[0][0]
    response = httpx.post(f"{primary.internal_url}/internal/scan-batches", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.json() == {"applied": True}
    assert primary.counts(kept["slug"]) == (1, 0)
    assert query(primary.settings, "SELECT count(*) FROM scan_events")[0][0] == events_before + 1


@pytest.mark.parametrize(
    ("name", "change", "status"),
    [
        ("too many rows", {"counts": [["b" * 32, 1, 0]] * (MAX_BATCH_ROWS + 1)}, 422),
        ("a negative count", {"counts": [["b" * 32, -1, 0]]}, 422),
        ("zero hits", {"events": [["b" * 32, "scan", "2026-11-30T04:00:00Z", "mobile", None, None, 0]]}, 422),
        ("an unknown kind", {"events": [["b" * 32, "click", "2026-11-30T04:00:00Z", "mobile", None, None, 1]]}, 422),
        ("a bad time", {"events": [["b" * 32, "scan", "yesterday", "mobile", None, None, 1]]}, 422),
        ("a bad outbox id", {"outboxId": "../etc"}, 422),
        ("an unknown field", {"extra": 1}, 422),
        ("a body past the limit", {"edge": "x" * MAX_BODY_BYTES}, 413),
    ],
)
def test_a_bad_batch_is_refused(primary, name, change, status):
    body = {**batch_body("b" * 32, outbox_id=os.urandom(16).hex()), **change}
    response = httpx.post(f"{primary.internal_url}/internal/scan-batches", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


# --- an edge's scans, shipped ----------------------------------------------------------


class DropAcknowledgements(httpx.AsyncHTTPTransport):
    """The network between edge and primary: the first `drop` answers are lost after the
    primary has applied the batch (the connection breaks before the 200 arrives)."""

    def __init__(self, drop: int) -> None:
        super().__init__()
        self.drop = drop

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        await response.aread()
        if self.drop > 0 and response.status_code == 200:
            self.drop -= 1
            await response.aclose()
            raise httpx.RemoteProtocolError("connection closed before the answer", request=request)
        return response


def test_scans_at_an_edge_reach_the_primary_once_through_outages(primary, owner, tmp_path):
    card = create_card(primary.client, owner["headers"])
    state = primary.client.app.state
    # An internal port of the test's own over the primary's app, to stop and start at will.
    down_settings = dataclasses.replace(primary.settings, internal_port=free_port())
    server = InternalServer(create_internal_app(down_settings, state.db, state), down_settings)
    url = f"http://127.0.0.1:{down_settings.internal_port}"
    found = primary.card(card["slug"])
    dropping = DropAcknowledgements(drop=1)

    async def scenario() -> None:
        edge = await Edge(tmp_path / "edge", url, transport=dropping).open()
        try:
            for _ in range(5):
                edge.counters.scan(found, PHONE_UA, "https://news.example/", "AU")
            edge.counters.view(found, PHONE_UA, None, "AU")
            assert await edge.counters.flush() == 6
            assert edge.outbox.depth == 1
            # The primary is down: nothing listens.
            with pytest.raises(ShipFailed, match="ConnectError"):
                await edge.shipper.ship_waiting()
            # The primary is up but cannot write: it answers 500, nothing is applied.
            await server.start()
            async with state.db._write_lock:
                await state.db._writer.execute("PRAGMA query_only = 1")
            try:
                with pytest.raises(ShipFailed, match="answered 500"):
                    await edge.shipper.ship_waiting()
            finally:
                async with state.db._write_lock:
                    await state.db._writer.execute("PRAGMA query_only = 0")
            assert primary.counts(card["slug"]) == (0, 0) and edge.outbox.depth == 1
            # The primary applies the batch, but its answer is lost on the way.
            with pytest.raises(ShipFailed, match="RemoteProtocolError"):
                await edge.shipper.ship_waiting()
            assert primary.counts(card["slug"]) == (5, 1) and edge.outbox.depth == 1
            # More scans meanwhile; then everything is shipped, the first batch again.
            edge.counters.scan(found, PHONE_UA, None, None)
            await edge.counters.flush()
            assert await edge.shipper.ship_waiting() == 2
            assert edge.outbox.depth == 0
            # The loop retries on its own while the primary is down, and ships once it is back.
            await server.stop()
            edge.shipper.start()
            edge.counters.scan(found, PHONE_UA, None, None)
            await edge.counters.flush()
            await wait_for(lambda: edge.shipper.failures >= 2, "two failed attempts")
            assert primary.counts(card["slug"]) == (6, 1)
            await server.start()
            await wait_for(lambda: primary.counts(card["slug"]) == (7, 1), "the batch shipped after the outage")
            await wait_for(lambda: edge.outbox.depth == 0, "the outbox emptied")
        finally:
            await edge.close()
            await server.stop()

    primary.call(scenario)
    assert primary.counts(card["slug"]) == (7, 1)
    assert primary.events(card["slug"]) == [
        ("scan", "mobile", None, None, 2), ("scan", "mobile", "news.example", "AU", 5), ("view", "mobile", None, "AU", 1),
    ]


async def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    """Poll `condition` in the event loop until it holds (a liveness bound, not a speed check)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def test_a_large_flush_ships_as_several_batches_in_order(primary, owner, tmp_path):
    card = create_card(primary.client, owner["headers"])
    found = primary.card(card["slug"])

    async def scenario() -> tuple[int, int]:
        edge = await Edge(tmp_path / "edge", primary.internal_url).open()
        try:
            # Distinct referrers are distinct event rows: 2.5 batches' worth.
            for n in range(MAX_BATCH_ROWS * 5 // 2):
                edge.counters.scan(found, PHONE_UA, f"https://site{n}.example/", None)
            await edge.counters.flush()
            depth = edge.outbox.depth
            return depth, await edge.shipper.ship_waiting()
        finally:
            await edge.close()

    assert primary.call(scenario) == (3, 3)
    assert primary.counts(card["slug"]) == (MAX_BATCH_ROWS * 5 // 2, 0)
    rows = "SELECT count(*), sum(hits) FROM scan_events JOIN cards ON cards.id = scan_events.card_id WHERE slug = ?"
    assert query(primary.settings, rows, (card["slug"],)) == [(MAX_BATCH_ROWS * 5 // 2, MAX_BATCH_ROWS * 5 // 2)]


def test_an_edge_app_flushes_into_its_outbox_and_ships(primary, owner, tmp_path):
    """The wiring in create_app: at an edge the lifespan opens the outbox and ships it."""
    card = create_card(primary.client, owner["headers"])
    settings = edge_settings(tmp_path / "edge", primary.internal_url)
    settings = dataclasses.replace(settings, database_path=copy_database(primary.settings.database_path, tmp_path / "copy.db"))
    with TestClient(create_app(settings)) as edge:
        assert edge.get(f"/c/{card['slug']}", headers={"User-Agent": PHONE_UA}, follow_redirects=False).status_code == 302
        state = edge.app.state
        edge.blocking_portal.call(state.counters.flush)
        wait_until(lambda: primary.counts(card["slug"]) == (1, 0), timeout=60, what="the edge's scan at the primary")
    # The edge wrote nothing into its own database (the copy).
    assert query(settings, "SELECT scan_count FROM cards WHERE card_id = ?", (card["cardId"],)) == [(0,)]


class EdgeProcess:
    """tests/edge_counting_process.py: an edge's Counters and Shipper in a process of their own."""

    def __init__(self, data_dir: Path, primary_internal_url: str, copy: Path, slug: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.edge_counting_process", str(data_dir), primary_internal_url, TOKEN, str(copy), slug],
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
    """A live primary (`qrcontact serve`, under Litestream) stopped with SIGTERM (it drains
    both ports and exits 0) and started again while two edge processes keep counting, one
    of them killed with SIGKILL right after a flush and restarted meanwhile."""
    internal_port = free_port()
    primary = Service(tmp_path / "primary", EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal_port), **LOAD_ENV).start()
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
