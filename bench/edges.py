"""Edge regions: staleness, an edge's scan throughput against the primary's, and what an
edge costs in object-storage requests.

One primary (`qrcontact serve`, ROLE=primary, its internal port on) and one edge
(ROLE=edge) on 127.0.0.1, sharing a replica on moto_server as S3. The edge reaches the
store through a counting proxy of its own, so every request it makes is counted by kind
(LIST, GET, ...). Both servers are pinned to one core and wrk to the other (as
bench/scanners.py does; needs wrk and taskset).

* staleness: a card edited at the primary --writes times (PATCH acknowledged → the edge
  serving the new name), and separately until the edge answers it from its own copy
  rather than through the primary;
* throughput: wrk on /c/{slug}, then on the card page /p/{slug} (with a photo), at the
  primary, then at the edge, --rounds times each,
  alternated; the ratio of the medians (target: at least 0.9);
* object-storage requests per second at the edge: idle (nothing changes), under a scan
  load at the primary (its counters write every second), and per card change;
* the point of it: the edge reaches the primary over a link with --link-ms of round trip
  (a delaying TCP proxy, as this machine's kernel has no `tc netem`), and a scanner near
  the edge is timed at the edge and at the primary across that link.

    .venv/bin/python bench/edges.py [--writes 200] [--rounds 3] [--duration 5] [--idle 30] [--link-ms 80]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import S3_CREDENTIALS, free_port, moto_server, s3_client, s3_url  # noqa: E402
from scanners import (  # noqa: E402
    PASSWORD,
    PHONE_UA,
    QRCONTACT,
    SCANNER_LIMIT_FOR_BENCH,
    start,
    stop,
    wait_until_up,
    wrk,
)

from tests.support.store_proxy import StoreProxy  # noqa: E402  (counts what the edge asks of the store)

RATIO_TARGET = 0.9
STALENESS_TARGET = 2.0


# --- a long-distance link between regions ------------------------------------------------


class DelayLink:
    """TCP proxies on 127.0.0.1 that hold every chunk `one_way` seconds in each direction:
    the link between two regions, without `tc netem` (which this machine's kernel lacks)."""

    def __init__(self, one_way: float) -> None:
        self.one_way = one_way
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def to(self, port: int) -> str:
        """A URL whose connections reach 127.0.0.1:`port` over the link."""
        async def listen() -> int:
            server = await asyncio.start_server(lambda r, w: self.carry(r, w, port), "127.0.0.1", 0)
            return server.sockets[0].getsockname()[1]

        return f"http://127.0.0.1:{asyncio.run_coroutine_threadsafe(listen(), self.loop).result()}"

    async def carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        try:
            far_reader, far_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self.pipe(reader, far_writer), self.pipe(far_reader, writer), return_exceptions=True)

    async def pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        chunks: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

        async def deliver() -> None:
            while (item := await chunks.get()) is not None:
                due, data = item
                await asyncio.sleep(max(0.0, due - self.loop.time()))
                sink.write(data)
                await sink.drain()
            sink.close()

        delivering = asyncio.create_task(deliver())
        try:
            while data := await source.read(65536):
                chunks.put_nowait((self.loop.time() + self.one_way, data))
        except OSError:
            pass
        chunks.put_nowait(None)
        await delivering


def redirect_latencies(url: str, count: int) -> list[float]:
    """Seconds for each of `count` sequential counted scans on one kept connection."""
    times = []
    with httpx.Client(headers={"User-Agent": PHONE_UA}) as client:
        for _ in range(count):
            started = time.perf_counter()
            assert client.get(url).status_code == 302
            times.append(time.perf_counter() - started)
    return times


# --- the servers ------------------------------------------------------------------------


class Server:
    def __init__(self, root: Path, name: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        root.mkdir(parents=True, exist_ok=True)
        self.log = root / f"{name}.log"
        self.env = {**os.environ, "DATA_DIR": str(root / name), "HOST": "127.0.0.1", "PORT": str(self.port),
                    "SCANNER_RATE_LIMIT_PER_MINUTE": SCANNER_LIMIT_FOR_BENCH, "RATE_LIMIT_PER_MINUTE": "1000000",
                    **S3_CREDENTIALS, **env}
        self.process = start([QRCONTACT, "serve"], self.env, self.log)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def wait_healthy(self) -> None:
        wait_until_up(f"{self.url}/health", self.process, self.log)
        deadline = time.monotonic() + 120
        while self.http.get("/health").status_code != 200:
            if time.monotonic() > deadline:
                sys.exit(f"{self.log} never became healthy")
            time.sleep(0.1)

    def pids(self) -> list[int]:
        found = [self.process.pid]
        for _ in range(3):  # serve → (litestream →) app → follower
            found += [int(p) for pid in found for p in os.popen(f"pgrep -P {pid}").read().split()]
        return sorted(set(found))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_for(condition, timeout: float = 60.0, every: float = 0.005) -> float:
    """Poll until `condition()` holds; returns when it did (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            sys.exit("timed out")
        time.sleep(every)
    return time.perf_counter()


def camera_jpeg() -> bytes:
    """A 1,200 px JPEG with a camera's noise, for the bench card's photo."""
    from PIL import Image  # a dependency of the service; only this bench's setup draws with it

    body = io.BytesIO()
    Image.effect_noise((1200, 1200), 40).convert("RGB").save(body, "JPEG", quality=90)
    return body.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--writes", type=int, default=200, help="card edits timed for staleness (200)")
    parser.add_argument("--rounds", type=int, default=3, help="wrk runs per server, alternated; medians compared (3)")
    parser.add_argument("--duration", type=float, default=5, help="seconds per wrk run (5)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--idle", type=float, default=30, help="seconds the idle request rate is counted over (30)")
    parser.add_argument("--link-ms", type=float, default=80, help="round trip between the edge's region and the primary's (80)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-edges-"))
    with moto_server(root / "moto.log") as endpoint:
        s3_client(endpoint).create_bucket(Bucket="edges")
        proxy = StoreProxy(endpoint)
        token = secrets.token_urlsafe(32)
        internal = free_port()
        primary = Server(root, "primary", {
            "ROLE": "primary", "EDGE_TOKEN": token, "INTERNAL_PORT": str(internal),
            "REPLICA_URL": s3_url(endpoint, "edges", "db"),
        })
        edge = None
        try:
            primary.wait_healthy()
            auth = primary.http.post("/v1/auth/register", json={"email": "bench@example.com", "password": PASSWORD,
                                                                 "marketingConsent": False})
            auth.raise_for_status()
            headers = {"Authorization": f"Bearer {auth.json()['accessToken']}"}
            card = primary.http.post("/v1/cards", json={"fullName": "Name 0", "email": "b@example.com", "slug": "bench"},
                                     headers=headers).json()
            primary.http.put(f"/v1/cards/{card['cardId']}/photo", content=camera_jpeg(),  # the page as SPEC §8 draws it
                             headers={**headers, "Content-Type": "image/jpeg"}).raise_for_status()
            # The edge's region is --link-ms away from the primary's; the store is near both.
            link = DelayLink(args.link_ms / 2000)
            far_primary = link.to(primary.port)
            edge = Server(root, "edge", {
                "ROLE": "edge", "PRIMARY_URL": far_primary, "PRIMARY_INTERNAL_URL": link.to(internal),
                "EDGE_TOKEN": token, "PUBLIC_BASE_URL": primary.url, "REPLICA_URL": s3_url(proxy.url, "edges", "db"),
            })
            edge.wait_healthy()
            began = proxy.snapshot()
            wait_for(lambda: edge.http.get("/health").json()["following"] is False, every=0.05)
            print(f"edge up: its first restore and follow took {sum((proxy.snapshot() - began).values())} requests "
                  f"after it answered /health ({dict(proxy.snapshot())} in all)")

            # Idle: nothing changes at the primary.
            before, t0 = proxy.snapshot(), time.perf_counter()
            time.sleep(args.idle)
            idle = proxy.snapshot() - before
            idle_rate = sum(idle.values()) / (time.perf_counter() - t0)
            print(f"idle {args.idle:.0f} s: {dict(idle)} = {idle_rate:.3f} requests/s at the edge")

            # Staleness, and the requests each change costs.
            visible, local = [], []
            before = proxy.snapshot()
            for i in range(1, args.writes + 1):
                name = f"Name {i}"
                response = primary.http.patch(f"/v1/cards/{card['cardId']}", json={"fullName": name}, headers=headers)
                response.raise_for_status()
                acked = time.perf_counter()
                seen = wait_for(lambda name=name: name in edge.http.get("/p/bench").text)
                visible.append(seen - acked)
                from_copy = wait_for(
                    lambda name=name: "via" not in (r := edge.http.get("/p/bench")).headers and name in r.text
                )
                local.append(from_copy - acked)
            per_change = proxy.snapshot() - before
            print(f"staleness over {args.writes} edits (acknowledged at the primary → served by the edge): "
                  f"p50 {percentile(visible, 0.5):.3f} s, p99 {percentile(visible, 0.99):.3f} s, max {max(visible):.3f} s")
            print(f"  until the edge's own copy had it: p50 {percentile(local, 0.5):.3f} s, p99 {percentile(local, 0.99):.3f} s, "
                  f"max {max(local):.3f} s")
            print(f"  object-storage requests per change: {sum(per_change.values()) / args.writes:.1f} ({dict(per_change)})")

            # Throughput: the same scan, then the same card page (with its photo), at the primary
            # and at the edge (its copy and caches).
            wait_for(lambda: "via" not in edge.http.get("/c/bench", headers={"User-Agent": PHONE_UA}).headers)
            load_counts = collections.Counter()
            load_seconds = 0.0
            ratios = {}
            for path, what in (("/c/bench", "counted redirects"), ("/p/bench", "card pages")):
                runs: dict[str, list[float]] = {"primary": [], "edge": []}
                for _ in range(args.rounds):
                    for name, server in (("primary", primary), ("edge", edge)):
                        wrk(f"{server.url}{path}", 2, args.connections)  # warm-up
                        before, t0 = proxy.snapshot(), time.perf_counter()
                        run = wrk(f"{server.url}{path}", args.duration, args.connections, server=server.pids())
                        if name == "primary":  # the edge's store requests while the primary counts scans
                            load_counts += proxy.snapshot() - before
                            load_seconds += time.perf_counter() - t0
                        runs[name].append(run.rps)
                        print(f"  {name}: {run.rps:,.0f} {what}/s, p99 {run.p99_ms:.2f} ms, errors {run.errors}")
                ratios[path] = statistics.median(runs["edge"]) / statistics.median(runs["primary"])
                print(f"edge/primary {what} throughput: {ratios[path]:.2f} (target ≥ {RATIO_TARGET})")
            ratio = ratios["/c/bench"]
            load_rate = sum(load_counts.values()) / load_seconds
            # A scanner in the edge's region: its edge answers, or the primary across the link.
            at_edge = redirect_latencies(f"{edge.url}/c/bench", 300)
            at_primary = redirect_latencies(f"{far_primary}/c/bench", 300)
            print(f"a scanner in the edge's region ({args.link_ms:.0f} ms from the primary), 300 scans each: "
                  f"at its edge p50 {percentile(at_edge, 0.5) * 1000:.1f} ms, p99 {percentile(at_edge, 0.99) * 1000:.1f} ms; "
                  f"at the primary p50 {percentile(at_primary, 0.5) * 1000:.1f} ms, p99 {percentile(at_primary, 0.99) * 1000:.1f} ms")
            print(f"under scan load at the primary: {dict(load_counts)} = {load_rate:.3f} requests/s at the edge")
            print(json.dumps({
                "staleness_p50_s": round(percentile(visible, 0.5), 3), "staleness_p99_s": round(percentile(visible, 0.99), 3),
                "staleness_max_s": round(max(visible), 3), "copy_p50_s": round(percentile(local, 0.5), 3),
                "copy_p99_s": round(percentile(local, 0.99), 3), "throughput_ratio": round(ratio, 3),
                "page_throughput_ratio": round(ratios["/p/bench"], 3),
                "idle_requests_per_s": round(idle_rate, 4), "load_requests_per_s": round(load_rate, 4),
                "requests_per_change": round(sum(per_change.values()) / args.writes, 2),
                "scan_at_edge_p50_ms": round(percentile(at_edge, 0.5) * 1000, 2),
                "scan_at_far_primary_p50_ms": round(percentile(at_primary, 0.5) * 1000, 2),
            }))
            ok = ratio >= RATIO_TARGET and percentile(visible, 0.99) <= STALENESS_TARGET
            return 0 if ok else 1
        finally:
            for server in (edge, primary):
                if server is not None:
                    stop(server.process)


if __name__ == "__main__":
    sys.exit(main())
