"""Where the app's idle memory comes from: its RSS after each stage of a start, in one process.

    .prod/bin/python bench/idle_stages.py      # a production install's Python (see idle_memory.py)
    .venv/bin/python bench/idle_stages.py

Starts the app the way `qrcontact run-app` does (REPLICA_URL=off, a temporary DATA_DIR,
127.0.0.1), printing VmRSS after: uvicorn and uvloop imported; app.cli imported (it
brings Litestar and the settings); app.main imported (every module of the app and the
libraries they import); the app built (its routes); the server started (the database's
five connections and their threads, the background tasks); and a few seconds idle.
Run it from outside the project folder to measure the installed app.
"""

from __future__ import annotations

import gc
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import free_port, rss_mib  # noqa: E402


def stage(name: str, previous: list[float]) -> None:
    now = rss_mib(os.getpid())
    print(f"{name:58s} {now:6.1f} MiB  (+{now - previous[0]:.1f})", flush=True)
    previous[0] = now


def main() -> None:
    data = tempfile.mkdtemp(prefix="qrcontact-stages-")
    port = free_port()
    os.environ.update(DATA_DIR=data, HOST="127.0.0.1", PORT=str(port), JWT_SECRET=secrets.token_urlsafe(48), REPLICA_URL="off")
    previous = [rss_mib(os.getpid())]
    stage("the interpreter (with this script's own imports)", previous)
    import asyncio

    import uvicorn
    import uvloop

    stage("uvicorn, uvloop (and asyncio, OpenSSL)", previous)
    from app import cli

    stage("app.cli (Litestar, the settings)", previous)
    from app.main import create_app

    stage("app.main (the app's modules and their libraries)", previous)
    from app.config import Settings

    app = create_app(Settings.from_env())
    stage("create_app (the routes)", previous)
    gc.collect()
    gc.freeze()  # as run_app does
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **cli.server_options(app)))

    async def serve() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        stage("started (database connections, threads, background tasks)", previous)
        await asyncio.sleep(3)
        stage("idle 3 s", previous)
        server.should_exit = True
        await task

    try:
        uvloop.run(serve())
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
