"""The floor for bench/idle_memory.py: the least a Litestar app loads and keeps idle.

    python -m uvicorn litestar_floor:app --app-dir bench --loop uvloop --http httptools

One route (/health), no database, no templates, no metrics, under the same uvicorn,
event loop and HTTP parser as the service. The service's idle memory above this is
what its own modules, routes, connections and threads hold; the floor itself is what
any start of this stack holds (the interpreter, asyncio with OpenSSL, uvicorn, Litestar).
"""

from __future__ import annotations

from litestar import Litestar, get


@get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


app = Litestar([health], logging_config=None)
