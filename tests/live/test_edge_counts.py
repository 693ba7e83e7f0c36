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
import logging
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

from app.cards.types import Card
from app.config import Settings
from app.edge.internal import MAX_BODY_BYTES, InternalServer, create_internal_app
from app.edge.outbox import OUTBOX_NAME, EdgeOutbox, ShipFailed, Shipper
from app.edge.scan_batches import MAX_BATCH_ROWS
from app.main import create_app
from app.ops.replication import renew_history
from app.public.counters import Counters
from app.sqlite import sqlite3
from tests.support import ROOT
from tests.support.app import PASSWORD, PHONE_UA, create_card, make_settings, metric, register
from tests.support.db import query
from tests.support.edge_counting import TOKEN, copy_database
from tests.support.load import LOAD_ENV
from tests.support.net import free_port
from tests.support.service import Service


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
        ("an impossible date", {"events": [["b" * 32, "scan", "2026-02-30T04:00:00Z", "mobile", None, None, 1]]}, 422),
        ("an impossible time", {"events": [["b" * 32, "scan", "2026-11-30T24:00:00Z", "mobile", None, None, 1]]}, 422),
        ("a number past SQLite's integers", {"seq": 2**63}, 422),
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


def test_a_body_nested_too_deeply_is_a_400(primary):
    depth = 200_000
    response = httpx.post(
        f"{primary.internal_url}/internal/scan-batches", content="[" * depth + "]" * depth,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def ship(primary_url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{primary_url}/internal/scan-batches", json=body, headers={"Authorization": f"Bearer {TOKEN}"})


def test_a_batch_past_missing_ones_is_refused_unless_a_restore_undid_them(tmp_path):
    """A batch numbered far ahead would make the primary take every real batch below it for
    one applied already: it is refused (409), and the real ones still count. After a
    restore of the primary, the batches it undid are gone from the edge too: the next one
    is taken once."""
    settings = primary_settings(tmp_path / "primary")
    with TestClient(create_app(settings)) as client:
        here = Primary(client, settings)
        card = create_card(client, register(client)["headers"])
        outbox = os.urandom(16).hex()
        assert ship(here.internal_url, batch_body(card["cardId"], seq=1, outbox_id=outbox)).json() == {"applied": True}
        ahead = ship(here.internal_url, batch_body(card["cardId"], seq=10**12, outbox_id=outbox, scans=1000))
        assert ahead.status_code == 409, ahead.text
        assert ahead.headers["content-type"].startswith("application/problem+json")
        assert ahead.json()["errors"] == [{"field": "seq", "message": "the next batch of this outbox is 2"}]
        assert ship(here.internal_url, batch_body(card["cardId"], seq=3, outbox_id=outbox)).status_code == 409
        assert ship(here.internal_url, batch_body(card["cardId"], seq=2, outbox_id=outbox)).json() == {"applied": True}
        # A new outbox begins at 1.
        assert ship(here.internal_url, batch_body(card["cardId"], seq=2, outbox_id=os.urandom(16).hex())).status_code == 409
        assert here.counts(card["slug"]) == (2, 0)
        refused = metric(client, "edge_batches_applied_total", result="refused")
        assert refused >= 3

    # The primary restored (as `qrcontact restore` leaves it): batches 3 and 4 of the outbox
    # had been applied after the moment restored, and the edge has forgotten them.
    renew_history(settings.database_path)
    with TestClient(create_app(settings)) as client:
        here = Primary(client, settings)
        assert ship(here.internal_url, batch_body(card["cardId"], seq=5, outbox_id=outbox)).json() == {"applied": True}
        assert ship(here.internal_url, batch_body(card["cardId"], seq=7, outbox_id=outbox)).status_code == 409
        assert ship(here.internal_url, batch_body(card["cardId"], seq=4, outbox_id=os.urandom(16).hex())).json() == {"applied": True}
        assert here.counts(card["slug"]) == (4, 0)


def test_a_refused_batch_stays_first_in_the_outbox_logged_and_counted(primary, owner, tmp_path, caplog):
    card = create_card(primary.client, owner["headers"])
    found = primary.card(card["slug"])

    async def scenario() -> None:
        edge = await Edge(tmp_path / "edge", primary.internal_url).open()
        try:
            edge.counters.scan(found, PHONE_UA, None, None)
            await edge.counters.flush()
            assert await edge.shipper.ship_waiting() == 1
            # The outbox skips numbers (as a damaged or hand-edited file could): the primary
            # cannot tell the batches between from lost ones, and refuses the next.
            await edge.outbox._conn.execute("UPDATE sqlite_sequence SET seq = seq + 5 WHERE name = 'batches'")
            edge.counters.scan(found, PHONE_UA, None, None)
            await edge.counters.flush()
            for _ in range(2):
                with pytest.raises(ShipFailed, match="answered 409"):
                    await edge.shipper.ship_waiting()
                assert edge.outbox.depth == 1
        finally:
            await edge.close()

    refused_before = metric(primary.client, "edge_batches_refused_total")
    with caplog.at_level(logging.ERROR, logger="app.edge_outbox"):
        primary.call(scenario)
    assert metric(primary.client, "edge_batches_refused_total") == refused_before + 2
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR][0].startswith(
        "the primary refused scan batch 7 of"
    )
    assert primary.counts(card["slug"]) == (1, 0)


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


def test_saves_and_sources_at_an_edge_reach_the_primary_once_and_old_batches_still_apply(primary, owner, tmp_path):
    card = create_card(primary.client, owner["headers"])
    found = primary.card(card["slug"])

    async def scenario() -> None:
        # The first answer is lost after the primary applied the batch: it is sent again.
        edge = await Edge(tmp_path / "edge", primary.internal_url, transport=DropAcknowledgements(drop=1)).open()
        try:
            edge.counters.scan(found, PHONE_UA, None, None, "nfc")
            edge.counters.view(found, PHONE_UA, None, None, "nfc")
            edge.counters.save(found, PHONE_UA, None, None, "nfc")
            edge.counters.save(found, PHONE_UA, None, None)  # a plain link
            assert await edge.counters.flush() == 4
            with pytest.raises(ShipFailed, match="RemoteProtocolError"):
                await edge.shipper.ship_waiting()
            assert await edge.shipper.ship_waiting() == 1
        finally:
            await edge.close()

    primary.call(scenario)
    saved = "SELECT scan_count, view_count, save_count FROM cards WHERE slug = ?"
    assert query(primary.settings, saved, (card["slug"],)) == [(1, 1, 2)]
    sourced = """SELECT kind, source, sum(hits) FROM scan_events JOIN cards ON cards.id = scan_events.card_id
        WHERE slug = ? GROUP BY 1, 2 ORDER BY 1, 2"""
    assert query(primary.settings, sourced, (card["slug"],)) == [
        ("save", "link", 1), ("save", "nfc", 1), ("scan", "nfc", 1), ("view", "nfc", 1),
    ]
    # A batch from an edge of the version before, with no saves and no sources, is applied as it was.
    old = batch_body(card["cardId"], outbox_id=os.urandom(16).hex(), scans=2)
    assert ship(primary.internal_url, old).json() == {"applied": True}
    assert query(primary.settings, saved, (card["slug"],)) == [(3, 1, 2)]
    assert ("scan", None, 2) in query(primary.settings, sourced, (card["slug"],))


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


EDGE_SCRIPT = """
import asyncio, sys
from app.cards.store import get_card_by_slug
from app.public.counters import Counters
from app.edge.outbox import EdgeOutbox
from app.sqlite import sqlite3
import aiosqlite

async def main(copy, data_dir, slug, scans):
    # The card as an edge has it: read from a copy of the primary's database.
    conn = await aiosqlite.Connection(lambda: sqlite3.connect(f"file:{copy}?mode=ro", uri=True), iter_chunk_size=64)
    conn.row_factory = sqlite3.Row
    card = await get_card_by_slug(conn, slug)
    await conn.close()
    from pathlib import Path
    outbox = EdgeOutbox(Path(data_dir) / "edge-outbox.db", "syd")
    await outbox.open()
    counters = Counters(outbox)
    for _ in range(int(scans)):
        counters.scan(card, "Mozilla/5.0 (iPhone) Mobile", None, None)
    await counters.flush()
    print("flushed", outbox.depth, flush=True)
    await asyncio.Event().wait()  # killed here, before any shipping

asyncio.run(main(*sys.argv[1:]))
"""


def test_an_edge_killed_between_flush_and_ship_ships_after_restart(primary, owner, tmp_path):
    card = create_card(primary.client, owner["headers"])
    copy = copy_database(primary.settings.database_path, tmp_path / "copy.db")
    data_dir = tmp_path / "edge"
    process = subprocess.Popen(
        [sys.executable, "-c", EDGE_SCRIPT, str(copy), str(data_dir), card["slug"], "40"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        assert process.stdout.readline().strip() == "flushed 1", process.stderr.read()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert (data_dir / OUTBOX_NAME).exists() and primary.counts(card["slug"]) == (0, 0)

    async def restart() -> tuple[int, int]:
        edge = await Edge(data_dir, primary.internal_url).open()
        try:
            return edge.outbox.depth, await edge.shipper.ship_waiting()
        finally:
            await edge.close()

    assert primary.call(restart) == (1, 1)
    assert primary.counts(card["slug"]) == (40, 0)
    assert primary.events(card["slug"]) == [("scan", "mobile", None, None, 40)]
    assert primary.call(restart) == (0, 0)  # nothing left to ship after the next start


def test_serve_with_an_edge_token_serves_the_internal_port_and_still_drains(tmp_path):
    """`qrcontact serve` as a primary (under Litestream): the internal port answers, and
    SIGTERM still drains both servers and exits 0, with the batch written."""
    internal_port = free_port()
    svc = Service(tmp_path / "data", EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal_port), **LOAD_ENV).start()
    try:
        auth = httpx.post(f"{svc.url}/v1/auth/register", json={"email": "serve@example.com", "password": PASSWORD,
                                                                  "marketingConsent": False}).json()
        card = httpx.post(f"{svc.url}/v1/cards", json={"fullName": "Live", "email": "serve@example.com"},
                          headers={"Authorization": f"Bearer {auth['accessToken']}"}).json()
        url = f"http://127.0.0.1:{internal_port}/internal/scan-batches"
        assert httpx.post(url, json=batch_body(card["cardId"])).status_code == 401
        answer = httpx.post(url, json=batch_body(card["cardId"], scans=4), headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.json() == {"applied": True}
    finally:
        assert svc.stop() == 0, svc.log.read_text()
    conn = sqlite3.connect(tmp_path / "data" / "qrcontact.db")
    try:
        assert conn.execute("SELECT scan_count FROM cards").fetchall() == [(4,)]
    finally:
        conn.close()
