"""Memory of `qrcontact serve` under clients that send too much, measured from outside.

  1. `--big` requests to /i/{token}/open.gif, each with its own 1 MiB User-Agent;
  2. as many to /c/{slug};
  3. one 4 MiB User-Agent;
  4. `--pipelined` connections that each send 2 MiB of pipelined GET /p/{slug} and never
     read, then /health timed from another connection, then the connections closed.

The RSS of the serving process (VmRSS in /proc) is printed after each phase. Run from the
repository:

    .venv/bin/python bench/hostile_memory.py [--big 300] [--pipelined 100]

It starts `qrcontact serve` (REPLICA_URL=off) in a temporary data folder and stops it by
its process group when done.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

QRCONTACT = str(Path(sys.executable).parent / "qrcontact")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def status_of(port: int, head: bytes) -> str:
    """Send one request head and return the status code the server answers, or what happened."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(head)
            answer = conn.recv(64)
    except OSError as exc:
        return type(exc).__name__
    return answer.split(b" ", 2)[1].decode() if answer else "closed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big", type=int, default=300, help="requests with a 1 MiB User-Agent, per route")
    parser.add_argument("--pipelined", type=int, default=100, help="connections that pipeline and never read")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "DATA_DIR": tmp, "HOST": "127.0.0.1", "PORT": str(port), "REPLICA_URL": "off",
               "LOG_LEVEL": "WARNING", "SCANNER_RATE_LIMIT_PER_MINUTE": "1000000"}
        log = open(Path(tmp) / "serve.log", "w")
        process = subprocess.Popen([QRCONTACT, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("qrcontact serve did not start; see serve.log")
                time.sleep(0.1)
            http = httpx.Client(base_url=base, timeout=60)
            auth = http.post("/v1/auth/register", json={
                "email": "bench@example.com", "password": "correct horse battery staple", "marketingConsent": False,
            }).json()
            headers = {"Authorization": f"Bearer {auth['accessToken']}"}
            card = {"fullName": "Jane", "email": "jane@example.com", "slug": "bench-card"}
            assert http.post("/v1/cards", json=card, headers=headers).status_code == 201
            http.get("/c/bench-card")
            print(f"started: {rss_mib(process.pid):.0f} MiB")

            for name, path in (("/i/{token}/open.gif", "/i/t{n}/open.gif"), ("/c/{slug}", "/c/bench-card")):
                seen: dict[str, int] = {}
                for n in range(args.big):
                    agent = b"%d" % n + b"a" * (1024 * 1024)
                    head = b"GET %s HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n\r\n" % (path.format(n=n).encode(), agent)
                    status = status_of(port, head)
                    seen[status] = seen.get(status, 0) + 1
                print(f"after {args.big} x {name} with 1 MiB User-Agents {seen}: {rss_mib(process.pid):.0f} MiB")
            status = status_of(port, b"GET /c/bench-card HTTP/1.1\r\nHost: x\r\nUser-Agent: %s\r\n\r\n" % (b"a" * 4 * 1024 * 1024))
            print(f"a 4 MiB User-Agent: {status}; {rss_mib(process.pid):.0f} MiB")

            pipeline = b"GET /p/bench-card HTTP/1.1\r\nHost: x\r\n\r\n" * (2 * 1024 * 1024 // 40)
            connections = []
            for _ in range(args.pipelined):
                conn = socket.create_connection(("127.0.0.1", port))
                conn.setblocking(False)
                sent = 0
                send_deadline = time.monotonic() + 5
                while sent < len(pipeline) and time.monotonic() < send_deadline:
                    try:
                        sent += conn.send(pipeline[sent:])
                    except BlockingIOError:
                        time.sleep(0.01)
                connections.append(conn)
            started = time.monotonic()
            try:
                health = str(httpx.get(base + "/health", timeout=60).status_code)
            except httpx.TimeoutException:
                health = "no answer"
            took = time.monotonic() - started
            print(f"{args.pipelined} connections pipelining, never reading: {rss_mib(process.pid):.0f} MiB; "
                  f"/health {health} in {took:.2f} s")
            for conn in connections:
                conn.close()
            time.sleep(2)  # the server notices the closed connections
            print(f"after they closed: {rss_mib(process.pid):.0f} MiB")
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


if __name__ == "__main__":
    main()
