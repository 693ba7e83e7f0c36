"""Core figures: render time of a typical card's 512 px PNG, and the idle service's memory.

    .venv/bin/python bench/core.py

Render time is printed next to segno's own PNG writer on the same symbol, measured in
the same run, because these machines are shared and noisy.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import segno

from app import qr

# A typical static code's payload: a six-field vCard 3.0.
CARD = (
    "BEGIN:VCARD\r\nVERSION:3.0\r\nN:Doe;Jane;;;\r\nFN:Jane Doe\r\nORG:Acme Corporation\r\n"
    "TITLE:Head of Partnerships\r\nTEL;TYPE=CELL:+1 555 123 4567\r\nEMAIL;TYPE=INTERNET:jane.doe@example.com\r\n"
    "URL:https://www.example.com\r\nEND:VCARD\r\n"
)
RUNS = 60


def median_ms(fn) -> float:
    times = []
    for i in range(RUNS):
        started = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def render_figures() -> None:
    drawing = qr.Drawing(size=512)
    # Distinct payloads, so nothing is reused between runs.
    ours = median_ms(lambda i: qr.render(CARD + f"NOTE:{i}\r\n", drawing))
    symbol = qr.make_symbol(CARD, "M")
    encode_only = median_ms(lambda i: qr.make_symbol(CARD + f"NOTE:{i}\r\n", "M"))
    segno_encode = median_ms(lambda i: segno.make(CARD + f"NOTE:{i}\r\n", error="M", boost_error=False, encoding="utf-8"))
    png_only = median_ms(lambda i: qr._png(symbol.matrix, drawing))
    scale = 512 // (len(symbol.matrix) + 8)
    segno_symbol = segno.make(CARD, error="M", boost_error=False, encoding="utf-8")
    segno_png = median_ms(lambda i: segno_symbol.save(io.BytesIO(), kind="png", scale=scale, border=4))
    print(f"typical card: QR version {symbol.version}, {len(symbol.matrix)} modules")
    print(f"render 512 px PNG (encode + draw), median of {RUNS}: {ours:.1f} ms")
    print(f"  encode (qr.make_symbol): {encode_only:.1f} ms; draw (our PNG writer): {png_only:.2f} ms")
    print(f"  baseline, segno.make choosing the mask itself: {segno_encode:.1f} ms")
    print(f"  baseline, segno's PNG writer drawing the same symbol: {segno_png:.2f} ms "
          f"(ours draws in {png_only / segno_png:.2f}x its time)")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def idle_rss() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "DATA_DIR": data, "HOST": "127.0.0.1", "PORT": str(port)}
        qrcontact = str(Path(sys.executable).parent / "qrcontact")
        proc = subprocess.Popen([qrcontact, "serve"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            time.sleep(3)  # let start-up garbage settle
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
            app_rss = sum(rss_kib(int(pid)) for pid in children)
            print(f"idle RSS: app {app_rss / 1024:.1f} MiB, litestream {rss_kib(proc.pid) / 1024:.1f} MiB")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


if __name__ == "__main__":
    render_figures()
    idle_rss()
