"""Edge regions (SPEC §7) with real processes: one primary and two edges, each a
`qrcontact serve` on 127.0.0.1, sharing a replica on moto_server as S3, with the real
`litestream` binary. One set of servers for the module (they take seconds to start).
"""

from __future__ import annotations

import concurrent.futures
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from tests.support.app import PHONE_UA
from tests.support.edges import TOKEN, edge_env, replica_url, served_by_the_edge
from tests.support.net import free_port
from tests.support.s3 import S3_ENV, make_bucket
from tests.support.service import QRCONTACT, Service, sign_up, with_group_gone
from tests.support.waiting import wait_until

# SPEC §7: a change or deletion made at the primary is served by every edge within this.
WITHIN = 2.0
VIA = "1.1 qrcontact-edge"  # what the edge adds to an answer that came from the primary


class Regions:
    def __init__(self, primary: Service, edges: list[Service], internal_url: str, headers: dict[str, str]) -> None:
        self.primary, self.edges, self.internal_url, self.headers = primary, edges, internal_url, headers

    def create(self, slug: str, name: str = "First Name", **content) -> dict:
        response = httpx.post(
            f"{self.primary.url}/v1/cards", json={"fullName": name, "email": "card@example.com", "slug": slug, **content},
            headers=self.headers,
        )
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(scope="module")
def regions(s3_endpoint, tmp_path_factory) -> Iterator[Regions]:
    root = tmp_path_factory.mktemp("regions")
    make_bucket(s3_endpoint, "regions")
    replica = replica_url(s3_endpoint, "regions")
    internal_port = free_port()
    primary = Service(
        root / "primary", ROLE="primary", EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal_port), REPLICA_URL=replica,
        RATE_LIMIT_PER_MINUTE="100000", **S3_ENV,
    )
    started = [primary]
    regions = None
    try:
        primary.start()
        internal_url = f"http://127.0.0.1:{internal_port}"
        headers = sign_up(primary, "regions@example.com")
        for n in (1, 2):
            started.append(Service(root / f"edge{n}", **edge_env(primary, internal_url, replica)).start())
        regions = Regions(primary, started[1:], internal_url, headers)
        yield regions
    finally:
        for svc in started + (regions.edges if regions else []):  # an edge a test restarted too
            if svc.process is not None and svc.process.poll() is None:
                svc.stop()


def scan(edge: Service, slug: str) -> httpx.Response:
    return httpx.get(f"{edge.url}/c/{slug}", headers={"User-Agent": PHONE_UA})


def test_a_new_card_scans_at_both_edges_at_once_and_from_their_copy_soon_after(regions):
    # With the content of SPEC §8, read at the edges from their copy's new columns (migration 0010).
    regions.create(
        "new-card", phones=[{"type": "work", "number": "+1 555 010 9999", "ext": "204"}],
        socials=[{"url": "https://github.com/first"}], addresses=[{"locality": "Springfield", "country": "USA"}],
    )
    for edge in regions.edges:
        # The copy cannot have it yet: the edge sends the scan to the primary, never a 404.
        first = scan(edge, "new-card")
        assert (first.status_code, first.headers["location"]) == (302, "/p/new-card?src=qr")
    for edge in regions.edges:
        answer = wait_until(
            lambda edge=edge: (r := scan(edge, "new-card")).status_code == 302 and served_by_the_edge(r) and r,
            timeout=60, what="the edge to answer from its copy",
        )
        assert answer.headers["location"] == "/p/new-card?src=qr"
        page = httpx.get(f"{edge.url}/p/new-card")
        assert page.status_code == 200 and served_by_the_edge(page) and "First Name" in page.text
        assert "+1 555 010 9999 ext. 204" in page.text and "GitHub" in page.text and "Springfield, USA" in page.text
        vcard = httpx.get(f"{edge.url}/p/new-card.vcf")
        assert vcard.status_code == 200 and "FN:First Name" in vcard.text and "N:Name;First;;;" in vcard.text
        assert "TEL;TYPE=WORK,VOICE:+1 555 010 9999 x204" in vcard.text and "X-SOCIALPROFILE;TYPE=github:" in vcard.text
        version_4 = httpx.get(f"{edge.url}/p/new-card.vcf?v=4")  # left by the fast path to the edge's Litestar
        assert version_4.status_code == 200 and served_by_the_edge(version_4) and "VERSION:4.0" in version_4.text
        for extension, media_type in (("png", "image/png"), ("svg", "image/svg+xml")):
            image = httpx.get(f"{edge.url}/q/new-card.{extension}")
            assert (image.status_code, image.headers["content-type"]) == (200, media_type)


def until_within(condition, what: str):
    """Poll `condition` until it holds; assert it held within WITHIN seconds (SPEC §7)."""
    started = time.monotonic()
    wait_until(condition, timeout=30, what=what, every=0.02)
    took = time.monotonic() - started
    assert took <= WITHIN, f"{what} took {took:.2f} s"


def test_an_edit_and_a_delete_show_at_the_edges_within_2_s(regions):
    card = regions.create("changing")
    for edge in regions.edges:
        # Answered from the copy and the edge's caches before the change.
        wait_until(lambda edge=edge: served_by_the_edge(r := httpx.get(f"{edge.url}/p/changing")) and r.status_code == 200,
                   timeout=60, what="the copy to have the card")
        assert scan(regions.edges[0], "changing").status_code == 302

    edited = httpx.patch(f"{regions.primary.url}/v1/cards/{card['cardId']}", json={"fullName": "Second Name"}, headers=regions.headers)
    assert edited.status_code == 200, edited.text
    for edge in regions.edges:
        until_within(lambda edge=edge: "Second Name" in httpx.get(f"{edge.url}/p/changing").text, "the edit at an edge")

    deleted = httpx.delete(f"{regions.primary.url}/v1/cards/{card['cardId']}", headers=regions.headers)
    assert deleted.status_code == 204
    for edge in regions.edges:
        until_within(lambda edge=edge: scan(edge, "changing").status_code == 410, "the deletion at an edge")
    for edge in regions.edges:
        # Once the copy has the deletion, the edge answers it itself.
        wait_until(lambda edge=edge: served_by_the_edge(r := scan(edge, "changing")) and r.status_code == 410,
                   timeout=60, what="the copy to have the deletion")


def test_a_brand_change_shows_on_every_card_at_the_edges_within_2_s(regions):
    regions.create("branded")
    for edge in regions.edges:
        wait_until(lambda edge=edge: served_by_the_edge(r := httpx.get(f"{edge.url}/p/branded")) and r.status_code == 200,
                   timeout=60, what="the copy to have the card")
    brand = {"name": "Edge Team", "accentColor": "#b4231a"}
    saved = httpx.put(f"{regions.primary.url}/v1/team/brand", json=brand, headers=regions.headers)  # the first account: the admin
    assert saved.status_code == 200, saved.text
    for edge in regions.edges:
        until_within(lambda edge=edge: "Edge Team" in httpx.get(f"{edge.url}/p/branded").text, "the brand at an edge")
    # Then from the copy, which holds the brand with the cards.
    wait_until(lambda: served_by_the_edge(r := httpx.get(f"{regions.edges[0].url}/p/branded")) and "--accent:#b4231a" in r.text,
               timeout=60, what="the copy to have the brand")


def test_scans_answered_at_the_edges_are_counted_once_at_the_primary(regions):
    card = regions.create("counted")
    url = f"{regions.primary.url}/v1/cards/{card['cardId']}"
    for edge in regions.edges:
        # HEAD is answered but never counted: the card reaches the copy without a scan.
        wait_until(lambda edge=edge: served_by_the_edge(httpx.head(f"{edge.url}/c/counted")),
                   timeout=60, what="the copy to have the card")
    answered = [scan(edge, "counted") for edge in regions.edges for _ in range(5)]
    assert all(r.status_code == 302 and served_by_the_edge(r) for r in answered)
    # Each edge's counters flush into its outbox file and ship it to the primary's internal port.
    wait_until(lambda: httpx.get(url, headers=regions.headers).json()["scanCount"] >= 10,
               timeout=60, what="the edges' scans at the primary")
    assert httpx.get(url, headers=regions.headers).json()["scanCount"] == 10


def test_the_api_and_other_pages_at_an_edge_reach_the_primary(regions):
    edge = regions.edges[0]
    me = httpx.get(f"{edge.url}/v1/me", headers=regions.headers)
    assert me.status_code == 200 and me.json()["email"] == "regions@example.com"
    assert me.headers["via"] == VIA
    # A body and a query string go through too.
    created = httpx.post(f"{edge.url}/v1/cards?x=1", json={"fullName": "Via Edge", "email": "v@example.com", "slug": "via-edge"},
                         headers=regions.headers)
    assert created.status_code == 201, created.text
    listed = httpx.get(f"{edge.url}/v1/cards", headers=regions.headers)
    assert listed.status_code == 200 and "via-edge" in [c["slug"] for c in listed.json()["items"]]
    for path in ("/app", "/schema", "/verify-email?token=x", "/i/nothing-here"):
        direct, through = httpx.get(f"{regions.primary.url}{path}"), httpx.get(f"{edge.url}{path}")
        assert (through.status_code, through.headers["via"]) == (direct.status_code, VIA), path
    # A slug no one has: the primary's 404, not the edge's.
    missing = scan(edge, "no-such-card")
    assert (missing.status_code, missing.headers["via"]) == (404, VIA)


def test_many_large_bodies_through_an_edge_leave_it_answering(regions):
    """Bodies over the primary's limit, 40 at once through an edge: each is answered (the
    primary's 413, passed back), and the edge's next proxied request is answered at once.
    They once tied up the edge's connections to the primary for good."""
    edge = regions.edges[0]
    body = b"{" + b" " * 300_000

    def post(_: int) -> int | str:
        try:
            return httpx.post(f"{edge.url}/v1/cards", content=body, timeout=30,
                              headers={**regions.headers, "content-type": "application/json"}).status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__

    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        answers = list(pool.map(post, range(40)))
    assert answers == [413] * 40, [
        line for svc in (edge, regions.primary) for line in svc.log.read_text().splitlines() if '"WARNING"' in line
    ][-8:]
    me = httpx.get(f"{edge.url}/v1/me", headers=regions.headers, timeout=5)
    assert me.status_code == 200 and me.headers["via"] == VIA


def test_idle_edges_stop_following_the_replica(regions):
    # Nothing changes: each edge's copy holds the newest card change, and its follower
    # is stopped (it costs no object-storage request until the next change).
    for edge in regions.edges:
        health = wait_until(lambda edge=edge: (h := httpx.get(f"{edge.url}/health").json())["following"] is False and h,
                            timeout=60, what="the follower to stop")
        assert health["lagSeconds"] == 0.0 and health["hasCopy"] is True


def test_the_change_sequence_needs_the_edge_token(regions):
    url = f"{regions.internal_url}/internal/changes"
    assert httpx.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    answer = httpx.get(url, params={"after": 0}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200
    assert answer.json()["latest"] >= len(answer.json()["changes"]) > 0


def test_an_edge_without_a_copy_is_not_healthy(regions, s3_endpoint, tmp_path):
    regions.create("no-copy-yet")
    make_bucket(s3_endpoint, "nothing-yet")
    env = edge_env(regions.primary, regions.internal_url, replica_url(s3_endpoint, "nothing-yet"))
    edge = Service(tmp_path / "edge", **env)
    edge.process = subprocess.Popen([QRCONTACT, "serve"], env=edge.env, stdout=open(edge.log, "w"),
                                    stderr=subprocess.STDOUT, start_new_session=True)
    try:
        health = wait_until(lambda: answer(f"{edge.url}/health"), timeout=30, what="the edge to listen")
        assert health.status_code == 503 and health.json()["hasCopy"] is False
        # Scanners are still answered, by the primary.
        assert scan(edge, "no-copy-yet").status_code == 302
    finally:
        edge.stop()
        with_group_gone(edge.process.pid)


def answer(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return None


def test_an_edge_killed_and_restarted_serves_from_a_fresh_copy(regions):
    edge = regions.edges[1]
    edge.stop(signal.SIGKILL)
    regions.create("while-down")
    # The old copy cannot be followed again: the edge restores a fresh one at start.
    restarted = Service(edge.data_dir, **{k: v for k, v in edge.env.items() if k not in ("DATA_DIR", "PORT")}).start()
    regions.edges[1] = restarted
    answer = wait_until(lambda: served_by_the_edge(r := scan(restarted, "while-down")) and r,
                        timeout=60, what="the restarted edge to answer from its copy")
    assert answer.status_code == 302
    assert sorted(p.name for p in (edge.data_dir / "copy").glob("*.db")) == ["copy-1.db"]


def test_options_asterisk_at_an_edge_is_answered_as_at_the_primary(regions):
    """`OPTIONS *` asks a server about itself, not about a path: the edge answers it, as
    the primary does (it used to fail building the primary's URL: 500)."""
    answers = [raw_request(svc, b"OPTIONS * HTTP/1.1\r\nHost: qr.example.test\r\nConnection: close\r\n\r\n")
               for svc in (regions.primary, regions.edges[0])]
    at_primary, at_edge = (status_and_allow(a) for a in answers)
    assert at_edge == at_primary and at_edge[0] < 500, answers


def raw_request(svc: Service, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as conn:
        conn.sendall(request)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received


def status_and_allow(answer: bytes) -> tuple[int, str | None]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in head[1:])
    return int(head[0].split()[1]), headers.get("allow")


def test_after_a_restore_of_the_primary_the_edge_serves_only_what_it_has(s3_endpoint, tmp_path):
    """A point-in-time restore undoes a card the edge has in its copy and has heard of. The
    restored primary's change sequence is another history, and says so: the edge forgets
    its copy and what it heard, and answers as the primary does within seconds."""
    make_bucket(s3_endpoint, "restored")
    replica = replica_url(s3_endpoint, "restored")
    internal_port = free_port()
    env = dict(ROLE="primary", EDGE_TOKEN=TOKEN, INTERNAL_PORT=str(internal_port), REPLICA_URL=replica,
               RATE_LIMIT_PER_MINUTE="100000", **S3_ENV)
    primary = Service(tmp_path / "primary", **env).start()
    internal_url = f"http://127.0.0.1:{internal_port}"
    edge = None
    try:
        regions = Regions(primary, [], internal_url, sign_up(primary, "restored@example.com"))
        regions.create("before-t")
        primary.wait_until_replicated()
        moment = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        regions.create("after-t")
        primary.wait_until_replicated()
        history = changes(internal_url).get("history")
        edge = Service(tmp_path / "edge", **edge_env(primary, internal_url, replica)).start()
        for slug in ("before-t", "after-t"):
            wait_until(lambda slug=slug: served_by_the_edge(r := scan(edge, slug)) and r.status_code == 302,
                       timeout=60, what=f"the edge to answer {slug} from its copy")

        assert primary.stop() == 0
        restore = subprocess.run([QRCONTACT, "restore", "--timestamp", moment], env=primary.env,
                                 capture_output=True, text=True, timeout=120)
        assert restore.returncode == 0, restore.stderr
        primary = same_ports(primary).start()

        # The primary has no "after-t" now; within seconds, neither has the edge.
        until_within_seconds(lambda: scan(edge, "after-t").status_code == 404, 15, "the edge to forget after-t")
        assert scan(edge, "before-t").status_code == 302
        # And it serves from a copy of the restored history once it has one.
        wait_until(lambda: served_by_the_edge(r := scan(edge, "before-t")) and r.status_code == 302,
                   timeout=60, what="the edge to answer from a copy of the new history")
        assert scan(edge, "after-t").status_code == 404
        health = httpx.get(f"{edge.url}/health").json()
        assert health["status"] == "ok"
        # What told the edge: the restored database's change sequence is another history.
        assert changes(internal_url)["history"] != history
    finally:
        for svc in (edge, primary):
            if svc is not None and svc.process is not None and svc.process.poll() is None:
                svc.stop()


def changes(internal_url: str) -> dict:
    return httpx.get(f"{internal_url}/internal/changes", params={"after": 0}, headers={"Authorization": f"Bearer {TOKEN}"}).json()


def same_ports(svc: Service) -> Service:
    """A new `serve` on the service's data folder and ports (the edges know them)."""
    again = Service(svc.data_dir, **{k: v for k, v in svc.env.items() if k != "DATA_DIR"})
    again.port, again.url = svc.port, svc.url
    return again


def until_within_seconds(condition, seconds: float, what: str) -> None:
    started = time.monotonic()
    wait_until(condition, timeout=60, what=what, every=0.05)
    took = time.monotonic() - started
    assert took <= seconds, f"{what} took {took:.1f} s"
