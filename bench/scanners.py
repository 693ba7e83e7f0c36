"""Scanner paths under load: the counted redirect, the cached QR image and the card page, against a bare ASGI app.

    .venv/bin/python bench/scanners.py        # about 3 minutes; --help for the knobs

Needs wrk (Debian: apt-get update && apt-get install -y wrk) and taskset (util-linux).

It starts the real service (`qrcontact serve`, Litestream replicating to a folder) and
bench/bare.py under uvicorn (uvloop, httptools), both pinned to one core, and drives each
from the other core with the same wrk load (one thread, 64 connections, a phone
User-Agent, 127.0.0.1 only, bounded duration); this script's own threads run on that
core too. Scan counting, metrics and the scanner
rate limit are all on; the limit is set above what one load generator can send in a
minute, so it is checked on every request but never answers 429.

Printed: requests per second and p99 of `GET /c/{slug}`, of a cached
`GET /q/{slug}.png` and of `GET /p/{slug}` (the card page with its photo, a view counted), each as a
ratio to the bare app in the same run (the ratio is what holds across machines);
errors; that the card's scanCount grows by exactly the number of counted requests once
the counters are flushed; the median time to render an
uncached 512 px PNG of a typical card; the app's resident memory idle and after 10,000
distinct images are cached. Litestream's own process is reported beside it, not in it.
And the replication lag the service's /health reports (read every second from the start
of the load to its end, and right after it), against the bound litestream.yml promises.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.ops.replication import ltx_files, meta_dir  # noqa: E402

HERE = Path(__file__).resolve().parent
QRCONTACT = str(Path(sys.executable).parent / "qrcontact")
PHONE_UA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
PASSWORD = "correct horse battery staple"
BENCH_EMAIL = "bench@example.com"
SERVER_CPU, LOAD_CPU = "0", "1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SETTLE_SECONDS = 3
# The scanner limit is per client IP, and every wrk connection comes from 127.0.0.1.
SCANNER_LIMIT_FOR_BENCH = "1000000000"
# Issue 23's bounds: the scan path ahead of a bare ASGI app on the same core.
TARGETS = {"redirect_ratio": 1.1, "redirect_p99_ms": 3.0, "png_ratio": 0.9, "page_ratio": 0.8, "render_ms": 20.0,
           "rss_idle_mib": 80.0, "rss_images_mib": 120.0}


@dataclass
class Run:
    rps: float
    p99_ms: float
    requests: int
    errors: int
    output: str
    others: float = 0.0  # cores' worth of CPU other processes used during the run
    cpu_us: float = 0.0  # the server's CPU time per request, in microseconds


@dataclass
class Series:
    """The same load run several times, interleaved with the others."""

    name: str
    runs: list[Run]

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    @property
    def others(self) -> float:
        return max(r.others for r in self.runs)

    @property
    def cpu_us(self) -> float:
        return statistics.median(r.cpu_us for r in self.runs)

    def ratio(self, base: Series) -> float:
        """Median of the per-round ratios: each round's runs follow each other within seconds."""
        return statistics.median(r.rps / b.rps for r, b in zip(self.runs, base.runs, strict=True))


# --- processes -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What litestream.yml promises a restore loses at most (monitor-interval + sync-interval + an upload).
LAG_BOUND_SECONDS = 1.0


class LagWatch(threading.Thread):
    """Reads /health's replication lag every second until stopped; keeps every reading, and
    prints those past the bound as they come, with the newest TXID cut locally by Litestream
    and the newest on the replica (which of the two steps is behind)."""

    def __init__(self, url: str, data: Path) -> None:
        super().__init__(daemon=True)
        self.url, self.data, self.stopped = url, data, threading.Event()
        # One client for every reading: a new one each second cost this process 25-30 ms
        # of CPU (its TLS context), once a second during the measured runs.
        self.http = httpx.Client(timeout=10)
        self.readings: list[float] = []
        self.started = time.monotonic()

    def read(self) -> float | None:
        try:
            return self.http.get(f"{self.url}/health").json()["replication"]["lagSeconds"]
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    def positions(self) -> str:
        local = ltx_files(meta_dir(self.data / "qrcontact.db") / "ltx" / "0")
        replica = ltx_files(self.data / "replica" / "ltx" / "0")
        age = time.time() - local[-1][1] if local else math.nan
        return (f"local TXID {local[-1][0] if local else 0} (cut {age:.1f} s ago), "
                f"replica TXID {replica[-1][0] if replica else 0}")

    def run(self) -> None:
        while not self.stopped.wait(1.0):
            if (lag := self.read()) is not None:
                self.readings.append(lag)
                if lag > LAG_BOUND_SECONDS:
                    print(f"  lag {lag:.2f} s at {time.monotonic() - self.started:.0f} s: {self.positions()}", flush=True)

    def finish(self) -> None:
        self.stopped.set()
        self.join(30)


def wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{process.args} exited:\n{log.read_text()[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    sys.exit(f"{process.args} did not come up:\n{log.read_text()[-3000:]}")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`command` pinned to the server core, in its own process group (stopped by stop()).

    It runs in the temporary folder: `python -m app.cli` would otherwise import the app
    from the current directory rather than the one installed in this Python."""
    return subprocess.Popen(
        ["taskset", "-c", SERVER_CPU, *command], env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
        start_new_session=True, cwd=log.parent,
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def app_pid(serve: subprocess.Popen) -> int:
    """The Python app under `litestream replicate -exec` (serve's child running run-app)."""
    for _ in range(50):
        for pid in children(serve.pid):
            if b"run-app" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        time.sleep(0.1)
    sys.exit("could not find the app process under litestream")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- load ----------------------------------------------------------------------------

_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_wrk(output: str) -> Run:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$", output, re.M)
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    if non_3xx := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(non_3xx.group(1))
    return Run(rps, float(p99.group(1)) * _UNIT[p99.group(2)], requests, errors, output)


def busy_cpu_seconds() -> float:
    """CPU time processes (and, under a hypervisor, other guests) took on all cores since boot.

    Interrupt time is left out: loopback traffic is handled there, and it is this run's."""
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + steal) / CLOCK_TICKS


def process_cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def wrk(url: str, seconds: float, connections: int, *script: str, server: list[int] = ()) -> Run:
    """One wrk run from the load core. With `server` pids, also measures the server's CPU
    time per request, and how much CPU other processes on the machine took meanwhile (this
    machine may be shared)."""
    command = [
        "taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", f"-d{math.ceil(seconds)}s", "--latency",
        "--timeout", "5s", "-H", f"User-Agent: {PHONE_UA}",
    ]
    if script:
        command += ["-s", script[0], url, "--", *script[1:]]
    else:
        command.append(url)
    busy, ours, children = busy_cpu_seconds(), process_cpu_seconds(server), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        sys.exit(f"wrk failed ({result.returncode}): {result.stdout}{result.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    run = parse_wrk(result.stdout)
    server_cpu = process_cpu_seconds(server) - ours
    run.cpu_us = server_cpu / max(run.requests, 1) * 1e6
    run.others = max(0.0, busy_cpu_seconds() - busy - server_cpu - wrk_cpu) / math.ceil(seconds)
    return run


# --- the service ---------------------------------------------------------------------


class Service:
    def __init__(self, root: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = root / "data"
        self.log = root / "service.log"
        self.env = {
            **os.environ, "DATA_DIR": str(self.data), "HOST": "127.0.0.1", "PORT": str(self.port),
            "PUBLIC_BASE_URL": self.url,
            "SCANNER_RATE_LIMIT_PER_MINUTE": SCANNER_LIMIT_FOR_BENCH, **env,
        }
        self.env.pop("REPLICA_URL", None)  # the default: a file:// replica in DATA_DIR
        self.process = start([QRCONTACT, "serve"], self.env, self.log)
        wait_until_up(f"{self.url}/health", self.process, self.log)
        self.app_pid = app_pid(self.process)
        self.pids = [self.process.pid, self.app_pid]  # litestream and the app
        self.http = httpx.Client(base_url=self.url, timeout=30)
        auth = self.http.post("/v1/auth/register", json={"email": BENCH_EMAIL, "password": PASSWORD, "marketingConsent": False})
        auth.raise_for_status()
        self.headers = {"Authorization": f"Bearer {auth.json()['accessToken']}"}

    def create_card(self, slug: str, **fields) -> dict:
        body = {"fullName": "Jane Doe", "email": "jane.doe@example.com", "slug": slug, **fields}
        response = self.http.post("/v1/cards", json=body, headers=self.headers)
        response.raise_for_status()
        return response.json()

    def put_photo(self, slug: str) -> None:
        """A 1,200 px camera-like JPEG as the card's photo, through the API."""
        from PIL import Image  # a runtime dependency of the service; only this bench's setup draws with it

        picture = Image.effect_noise((1200, 1200), 40).convert("RGB")
        body = io.BytesIO()
        picture.save(body, "JPEG", quality=90)
        card = self.http.get("/v1/cards", headers=self.headers).json()["items"]
        card_id = next(c["cardId"] for c in card if c["slug"] == slug)
        response = self.http.put(f"/v1/cards/{card_id}/photo", content=body.getvalue(),
                                 headers={**self.headers, "Content-Type": "image/jpeg"})
        response.raise_for_status()

    def scan_count_in_database(self, slug: str) -> int:
        conn = sqlite3.connect(f"file:{self.data / 'qrcontact.db'}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT scan_count FROM cards WHERE slug = ?", (slug,)).fetchone()[0]
        finally:
            conn.close()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of a metric's samples whose labels include `labels`."""
        total = 0.0
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


async def each(count: int, request) -> int:
    """`request(client, i)` for i in range(count), 16 at a time; returns how many succeeded."""
    done = 0
    indexes = iter(range(count))
    async with httpx.AsyncClient(timeout=60, headers={"User-Agent": PHONE_UA}) as client:

        async def worker() -> None:
            nonlocal done
            for i in indexes:
                ok = await request(client, i)  # not `done += await ...`: that reads `done` before waiting
                done += ok

        await asyncio.gather(*(worker() for _ in range(16)))
    return done


def cache_images(service: Service, count: int) -> tuple[int, float]:
    """Fetch /q/{slug}.png of `count` new cards once each, so the service renders and caches
    `count` distinct images. Returns (images fetched with 200, images rendered meanwhile).

    The cards are written straight into the database (one transaction, as the owner the
    bench registered): through the API, 10,000 creations take minutes and measure the API.
    """
    conn = sqlite3.connect(service.data / "qrcontact.db", timeout=30)
    try:
        (user_id,) = conn.execute("SELECT user_id FROM users WHERE email = ?", (BENCH_EMAIL,)).fetchone()
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
        with conn:
            conn.executemany(
                """INSERT INTO cards (card_id, user_id, slug, full_name, organization, title, email, created_at, updated_at)
                VALUES (?, ?, ?, ?, 'Example Events', 'Visitor', ?, ?, ?)""",
                [(f"bench{i:027d}", user_id, f"guest-{i:05d}", f"Guest Number {i}", f"guest{i}@example.com", now, now)
                 for i in range(count)],
            )
    finally:
        conn.close()

    async def fetch(client: httpx.AsyncClient, i: int) -> bool:
        response = await client.get(f"{service.url}/q/guest-{i:05d}.png")
        return response.status_code == 200

    rendered_before = service.metric("qr_generations_total")
    fetched = asyncio.run(each(count, fetch))
    return fetched, service.metric("qr_generations_total") - rendered_before


# --- render time ---------------------------------------------------------------------


def render_figures() -> dict:
    """Run in a child process pinned to the server core: median uncached 512 px render times."""
    sys.path.insert(0, str(HERE))
    from core import CARD  # bench/core.py: the typical card

    from app import qr

    def median_ms(payloads: list[str]) -> float:
        drawing = qr.Drawing(size=512)
        times = []
        for payload in payloads:
            started = time.perf_counter()
            qr.render(payload, drawing)
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    # Distinct payloads of the same length, so nothing is reused between runs.
    cards = [CARD + f"NOTE:{i:04d}\r\n" for i in range(101)]
    urls = [f"https://qr.example.com/c/{i:07d}" for i in range(101)]
    median_ms(cards[:5])  # imports and first-call set-up
    return {
        "version": qr.make_symbol(cards[0], "M").version,
        "card_ms": median_ms(cards),
        "url_ms": median_ms(urls),
    }


# --- report --------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


class WebhookReceiver:
    """A receiver on loopback that answers 200 to every delivery and counts them (its thread
    runs in this process, which wrk's core shares, not the server's)."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self
        self.received = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.received += 1
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5, help="seconds per measured wrk run (5)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of bare, redirect, image runs; medians are printed (3)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of wrk before each measured run (3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument("--counted", type=int, default=50_000, help="requests in the exact scan-count run (50,000)")
    parser.add_argument("--images", type=int, default=10_000, help="distinct images cached for the RSS figure (10,000)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder and logs")
    parser.add_argument("--webhook", action="store_true", help="a webhook for every event delivering to a local receiver meanwhile")
    parser.add_argument("--render-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.render_only:
        print(json.dumps(render_figures()))
        return 0
    for tool, install in (("wrk", "apt-get update && apt-get install -y wrk"), ("taskset", "apt-get install -y util-linux")):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed; on Debian: {install}")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two CPUs: one for the server, one for wrk")

    root = Path(tempfile.mkdtemp(prefix="qrcontact-bench-"))
    service = bare = None
    try:
        print(f"server on CPU {SERVER_CPU}, wrk -t1 -c{args.connections} on CPU {LOAD_CPU}, "
              f"{args.duration:g} s per run after {args.warmup:g} s of warm-up; data in {root}", flush=True)
        # --webhook: every event (card.scanned each second under load) delivered to a receiver
        # on loopback while the scanner paths are measured (SPEC §9: their ratios unchanged).
        receiver = WebhookReceiver() if args.webhook else None
        # This process's threads (the lag readings, the receiver) stay off the server's core.
        os.sched_setaffinity(0, {int(LOAD_CPU)})
        service = Service(root, **({"WEBHOOK_ALLOW_PRIVATE": "true"} if receiver else {}))
        if receiver is not None:
            hook = service.http.post("/v1/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=service.headers)
            hook.raise_for_status()
        card = service.create_card("bench", organization="Acme Corporation", title="Head of Partnerships",
                                   phone="+1 555 123 4567", website="https://www.example.com")
        service.create_card("bench-spare")
        assert service.http.get("/q/bench.png").status_code == 200  # rendered and cached
        time.sleep(3)  # let start-up garbage settle
        rss_idle = rss_mib(service.app_pid)
        litestream_idle = rss_mib(service.process.pid)
        service.put_photo("bench")  # the card page as SPEC §8 draws it, photo included (after the idle figure)

        bare_port = free_port()
        bare_log = root / "bare.log"
        bare = start(
            [sys.executable, "-m", "uvicorn", "bare:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
             "--port", str(bare_port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
             "--lifespan", "off", "--log-level", "warning"],
            dict(os.environ), bare_log,
        )
        wait_until_up(f"http://127.0.0.1:{bare_port}/", bare, bare_log)

        lag_watch = LagWatch(service.url, service.data)
        lag_watch.start()
        bare_pids = [bare.pid, *children(bare.pid)]
        targets = {
            "bare": (f"http://127.0.0.1:{bare_port}/c/bench", bare_pids),
            "redirect": (f"{service.url}/c/bench", service.pids),
            "png": (f"{service.url}/q/bench.png", service.pids),
            "page": (f"{service.url}/p/bench", service.pids),
        }
        for name, (url, _pids) in targets.items():
            print(f"warm-up: {name} ...", flush=True)
            wrk(url, args.warmup, args.connections)
        series = {name: Series(name, []) for name in targets}
        for round_ in range(args.rounds):
            for name, (url, pids) in targets.items():
                print(f"round {round_ + 1}/{args.rounds}: {name} ... ({time.monotonic() - lag_watch.started:.0f} s)", flush=True)
                # The counted scans of the run before are still being written (events, the
                # replica): each run starts once that is done, the bare app's runs alike.
                time.sleep(SETTLE_SECONDS)
                series[name].runs.append(wrk(url, args.duration, args.connections, server=pids))
        stop(bare)
        base, redirect, png, page = series["bare"], series["redirect"], series["png"], series["page"]

        print(f"exact count: {args.counted:,} counted scans ... ({time.monotonic() - lag_watch.started:.0f} s)", flush=True)
        time.sleep(2.5)  # two flush intervals: everything counted so far is in the database
        before = service.scan_count_in_database("bench")
        # Long enough for every counted request to be answered, at the rate just measured.
        seconds = max(3.0, 2 * args.counted / max(redirect.rps, 1.0) + 2)
        count_run = wrk(f"{service.url}/c/bench", seconds, args.connections, str(HERE / "count.lua"),
                        str(args.counted), "/c/bench", "/p/bench?src=qr", "/c/bench-spare", "/p/bench-spare?src=qr")
        seen = int(re.search(r"counted_seen (\d+)", count_run.output).group(1))
        others_seen = int(re.search(r"others_seen (\d+)", count_run.output).group(1))
        lag_watch.finish()
        lag_after = lag_watch.read()
        time.sleep(2.5)
        in_database = service.scan_count_in_database("bench") - before
        via_api = service.http.get(f"/v1/cards/{card['cardId']}", headers=service.headers).json()["scanCount"]

        print("render: 101 uncached 512 px PNGs ...", flush=True)
        result = subprocess.run(
            ["taskset", "-c", SERVER_CPU, sys.executable, str(Path(__file__).resolve()), "--render-only"],
            capture_output=True, text=True, check=True,
        )
        render = json.loads(result.stdout)

        print(f"memory: caching {args.images:,} distinct images ...", flush=True)
        fetched, rendered = cache_images(service, args.images)
        time.sleep(3)
        rss_images = rss_mib(service.app_pid)
        litestream_images = rss_mib(service.process.pid)
        errors_logged = sum('"level": "ERROR"' in line for line in service.log.read_text().splitlines())
        if receiver is not None:
            print(f"webhook deliveries received during the bench: {receiver.received:,}")
    finally:
        for process in (bare, service and service.process):
            if process is not None:
                stop(process)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    redirect_ratio, png_ratio, page_ratio = redirect.ratio(base), png.ratio(base), page.ratio(base)
    t = TARGETS
    print()
    print(f"medians of {args.rounds} rounds of {args.duration:g} s; 'CPU/req' is the server's CPU time per request "
          f"(it rises for the bare app too when the machine is slow); 'others' is the most CPU (in cores) that "
          f"processes outside this benchmark took during a run")
    print(f"{'':44}{'req/s':>9}{'p99':>10}{'errors':>8}{'x bare':>8}{'CPU/req':>9}{'others':>8}   target")
    for row, ratio, target in (
        (base, 1.0, ""),
        (redirect, redirect_ratio, f">= {t['redirect_ratio']} x bare, p99 <= {t['redirect_p99_ms']:g} ms, 0 errors: "
         + verdict(redirect_ratio >= t["redirect_ratio"] and redirect.p99_ms <= t["redirect_p99_ms"] and redirect.errors == 0)),
        (png, png_ratio, f">= {t['png_ratio']} x bare, 0 errors: " + verdict(png_ratio >= t["png_ratio"] and png.errors == 0)),
        (page, page_ratio, f">= {t['page_ratio']} x bare, 0 errors: " + verdict(page_ratio >= t["page_ratio"] and page.errors == 0)),
    ):
        label = {"bare": "bare ASGI 302 (uvicorn, uvloop, httptools)", "redirect": "GET /c/{slug}: counted 302",
                 "png": "GET /q/{slug}.png: cached image", "page": "GET /p/{slug}: card page, view counted"}[row.name]
        print(f"{label:44}{row.rps:>9,.0f}{row.p99_ms:>8.2f}ms{row.errors:>8}{ratio:>8.2f}{row.cpu_us:>7.1f}us"
              f"{row.others:>8.2f}   {target}")
    print("each round (req/s, p99, CPU/req): " + "; ".join(
        f"{row.name} " + ", ".join(f"{r.rps:,.0f} {r.p99_ms:.2f} ms {r.cpu_us:.0f} us" for r in row.runs)
        for row in (base, redirect, png, page)
    ))
    exact = seen == in_database and seen >= args.counted - 1 and others_seen > 0 and count_run.errors == 0
    print(f"scan count: {seen:,} counted requests answered 302 (then {others_seen:,} to another card), scanCount "
          f"+{in_database:,} in the database after a flush (API: {via_api:,} in all), {count_run.errors} errors: "
          f"{verdict(exact)}")
    print(f"uncached 512 px PNG render, median of 101: typical card (QR version {render['version']}) "
          f"{render['card_ms']:.1f} ms (target <= {t['render_ms']:g}: {verdict(render['card_ms'] <= t['render_ms'])}); "
          f"short URL {render['url_ms']:.1f} ms")
    print(f"RSS idle: app {rss_idle:.1f} MiB (target <= {t['rss_idle_mib']:g}: {verdict(rss_idle <= t['rss_idle_mib'])}), "
          f"litestream {litestream_idle:.1f} MiB")
    print(f"RSS with {args.images:,} distinct cached images: app {rss_images:.1f} MiB (target <= {t['rss_images_mib']:g}: "
          f"{verdict(rss_images <= t['rss_images_mib'])}), litestream {litestream_images:.1f} MiB "
          f"[{fetched:,} images fetched, {rendered:,.0f} rendered]")
    lag_max = max(lag_watch.readings, default=math.nan)
    lag_ok = lag_max <= LAG_BOUND_SECONDS and lag_after is not None and lag_after <= LAG_BOUND_SECONDS
    print(f"replication lag (/health, every second through the load): max {lag_max:.2f} s over "
          f"{len(lag_watch.readings)} readings, {lag_after if lag_after is not None else math.nan:.2f} s right after it "
          f"(bound {LAG_BOUND_SECONDS:g} s: {verdict(lag_ok)})")
    if errors_logged:
        print(f"the service logged {errors_logged} errors")
    busiest = max(base.others, redirect.others, png.others, page.others)
    if busiest > 0.2:
        print(f"WARNING: other processes took up to {busiest:.2f} cores during the runs; the figures are not "
              f"this machine's best (ratios suffer least). Run again when it is quiet.")
    if base.p99_ms > t["redirect_p99_ms"]:
        print(f"NOTE: the bare app's own p99 was {base.p99_ms:.2f} ms, over the redirect's {t['redirect_p99_ms']:g} ms "
              f"target: the server core was held up (other guests of the machine count too). Run again when it is quiet.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
