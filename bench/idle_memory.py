"""Idle memory of the app process, the way production runs it.

    .venv/bin/python bench/idle_memory.py                          # this venv's qrcontact
    python3 bench/idle_memory.py .prod/bin/qrcontact --runs 3      # a production install's

A production install is `pip install .` without the test extras (python3 -m venv .prod
&& .prod/bin/pip install .). With the test extras installed the app holds more (PyJWT
loads `cryptography`, Litestar finds pydantic and attrs), so measure the install you
ship. This script installs nothing and needs only the standard library.

Each run starts `qrcontact serve` in a fresh temporary DATA_DIR on 127.0.0.1 (Litestream
replicating to a file replica there, as by default), waits until /health answers 200,
waits a few more seconds, and prints the VmRSS of the app process (serve's `run-app`
child under Litestream, what the issue's figure is about) and of Litestream beside it.
The service is then stopped by its process group.

Each run also measures the floor the same way: bench/litestar_floor.py, a one-route
Litestar app under the same uvicorn, started by the same venv's Python. The app's
figure less the floor is what the service itself holds (docs/performance.md, "Idle
memory and its floor").
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_port, rss_mib  # noqa: E402


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in found]


def app_pid(serve: subprocess.Popen) -> int:
    """serve's child running run-app (serve has exec'd into Litestream by then)."""
    for _ in range(100):
        for pid in children(serve.pid):
            if b"run-app" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        time.sleep(0.1)
    raise SystemExit("could not find the app process under litestream")


def wait_for_health(url: str, process: subprocess.Popen, log: Path, name: str = "qrcontact serve") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{name} exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{name} did not answer /health:\n{log.read_text()[-3000:]}")


def measure(qrcontact: str, settle: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="qrcontact-idle-") as root:
        data = Path(root) / "data"
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if k not in ("REPLICA_URL", "ROLE", "EDGE_TOKEN", "SMTP_URL")},
            "DATA_DIR": str(data), "HOST": "127.0.0.1", "PORT": str(port), "JWT_SECRET": secrets.token_urlsafe(48),
        }
        log = Path(root) / "serve.log"
        # In the temporary folder: `python -m app.cli run-app` would otherwise import the
        # app from the current directory rather than the installed one.
        process = subprocess.Popen([qrcontact, "serve"], env=env, cwd=root, stdout=open(log, "w"),
                                   stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_health(f"http://127.0.0.1:{port}/health", process, log)
            app = app_pid(process)
            time.sleep(settle)
            return rss_mib(app), rss_mib(process.pid)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def measure_floor(python: str, settle: float) -> float:
    """Idle RSS of bench/litestar_floor.py under `python`'s uvicorn (uvloop, httptools)."""
    with tempfile.TemporaryDirectory(prefix="qrcontact-floor-") as root:
        port = free_port()
        log = Path(root) / "floor.log"
        command = [python, "-m", "uvicorn", "litestar_floor:app", "--app-dir", str(Path(__file__).resolve().parent),
                   "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
                   "--no-access-log", "--log-level", "warning"]
        process = subprocess.Popen(command, cwd=root, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            wait_for_health(f"http://127.0.0.1:{port}/health", process, log, "bench/litestar_floor.py")
            time.sleep(settle)
            return rss_mib(process.pid)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("qrcontact", nargs="?", default=str(Path(sys.executable).parent / "qrcontact"),
                        help="the qrcontact command of the venv to measure (default: this Python's)")
    parser.add_argument("--runs", type=int, default=3, help="fresh starts to measure (3)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait after /health answers (5)")
    args = parser.parse_args()
    qrcontact = str(Path(args.qrcontact).absolute())  # the service runs in a temporary folder
    python = str(Path(qrcontact).parent / "python")
    figures, floors = [], []
    for run in range(1, args.runs + 1):
        app, litestream = measure(qrcontact, args.settle)
        floor = measure_floor(python, args.settle)
        figures.append(app)
        floors.append(floor)
        print(f"run {run}: app {app:.1f} MiB, litestream {litestream:.1f} MiB; "
              f"floor (one-route Litestar) {floor:.1f} MiB, the app above it {app - floor:.1f} MiB", flush=True)
    print(f"idle RSS of the app: {min(figures):.1f}–{max(figures):.1f} MiB over {len(figures)} runs; "
          f"the floor {min(floors):.1f}–{max(floors):.1f} MiB")


if __name__ == "__main__":
    main()
